/**
 * alerts/egressd.rules.yml: `promtool check rules` accepts it, `promtool test rules` passes
 * alerts/egressd.rules.test.yml, and that unit test covers every alert both firing and quiet. A
 * copy of the rules with one threshold broken must fail the same unit test, so the test can fail.
 * Every metric name the rules use is one the dashboard test finds in a real scrape, or `up`.
 */
import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { metricNames } from "../metrics/promql.ts";

const DIR = join(import.meta.dir, "../../alerts");
const RULES = join(DIR, "egressd.rules.yml");
const TESTS = join(DIR, "egressd.rules.test.yml");
const skip = Bun.which("promtool") === null ? "needs promtool (Debian: prometheus)" : null;

interface Rule {
  alert: string;
  expr: string;
}
const rules: Rule[] = (Bun.YAML.parse(readFileSync(RULES, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const unit = Bun.YAML.parse(readFileSync(TESTS, "utf8")) as { tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] };

function promtool(...args: string[]) {
  const r = Bun.spawnSync(["promtool", ...args], { cwd: DIR });
  return { code: r.exitCode, output: r.stdout.toString() + r.stderr.toString() };
}

describe("alert rules", () => {
  test("the alerts the issue asks for", () => {
    expect(rules.map((r) => r.alert).sort()).toEqual(["EgressdDown", "EgressdLeakGuardDrops", "EgressdNotReady", "EgressdProxyErrorRatio", "EgressdProxyOutOfFds", "EgressdReconcileRepairs", "EgressdTunnelDown", "EgressdTunnelStale"]);
  });

  test("the unit test has a firing and a quiet case for every alert", () => {
    const cases = unit.tests.flatMap((t) => t.alert_rule_test);
    for (const r of rules) {
      const mine = cases.filter((c) => c.alertname === r.alert);
      expect({ alert: r.alert, firing: mine.some((c) => c.exp_alerts.length > 0), quiet: mine.some((c) => c.exp_alerts.length === 0) }).toEqual({ alert: r.alert, firing: true, quiet: true });
    }
  });

  test("they use only egressd's own metric names (and Prometheus' up)", () => {
    const names = [...new Set(rules.flatMap((r) => metricNames(r.expr)))].sort();
    expect(names).toEqual(["egressd_leak_guard_dropped_packets_total", "egressd_proxy_accept_paused_total", "egressd_proxy_connections_total", "egressd_ready", "egressd_reconcile_repairs_total", "egressd_tunnel_up", "up", "wireguard_latest_handshake_seconds"]);
  });

  test.skipIf(skip !== null)("promtool check rules", () => {
    const r = promtool("check", "rules", "egressd.rules.yml");
    expect(r.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(r.code).toBe(0);
  });

  test.skipIf(skip !== null)("promtool test rules", () => {
    const r = promtool("test", "rules", "egressd.rules.test.yml");
    expect(r.output).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  test.skipIf(skip !== null)("the unit test catches a broken threshold (stale after 600 s instead of 300 s)", () => {
    const dir = mkdtempSync(join(tmpdir(), "egressd-alerts-"));
    try {
      writeFileSync(join(dir, "egressd.rules.yml"), readFileSync(RULES, "utf8").replace("(wireguard_latest_handshake_seconds{friendly_name!=\"\"}) > 300", "(wireguard_latest_handshake_seconds{friendly_name!=\"\"}) > 600"));
      copyFileSync(TESTS, join(dir, "egressd.rules.test.yml"));
      const r = Bun.spawnSync(["promtool", "test", "rules", "egressd.rules.test.yml"], { cwd: dir });
      expect(r.stdout.toString() + r.stderr.toString()).toContain("alertname: EgressdTunnelStale");
      expect(r.exitCode).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
