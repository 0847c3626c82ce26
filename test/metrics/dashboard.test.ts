/**
 * dashboards/egressd.json: it loads as a Grafana dashboard model (schemaVersion, panels with grid
 * positions, a datasource variable every query uses), its expressions are valid PromQL (promtool
 * checks them as recording rules), and every metric name in them exists in a real scrape of the
 * compiled daemon in the lab (the metrics lab harness).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { egressdBinary } from "../lab/binary.ts";
import { createLab, labUnsupported, type Lab } from "../lab/index.ts";
import { type LabDaemon, startLabDaemon } from "./lab/harness.ts";
import { metricNames, plain } from "./promql.ts";

const DASHBOARD = join(import.meta.dir, "../../dashboards/egressd.json");
const dash = JSON.parse(readFileSync(DASHBOARD, "utf8"));

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: { expr: string; datasource: { uid: string }; refId: string }[];
  fieldConfig?: { defaults: { thresholds?: { steps: { value: number | null }[] } } };
  repeat?: string;
}

const panels: Panel[] = dash.panels;
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));

describe("the dashboard model", () => {
  test("schemaVersion, a uid and title, panels with unique ids and grid positions", () => {
    expect(typeof dash.schemaVersion).toBe("number");
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dash.uid).toBe("egressd");
    expect(panels.length).toBeGreaterThan(10);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels) {
      expect({ title: p.title, type: typeof p.type, grid: Object.keys(p.gridPos).sort() }).toEqual({ title: p.title, type: "string", grid: ["h", "w", "x", "y"] });
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    }
  });

  test("a datasource variable, used by every panel and query", () => {
    const vars: { type: string; name: string; query: unknown }[] = dash.templating.list;
    const ds = vars.find((v) => v.type === "datasource");
    expect(ds).toMatchObject({ name: "datasource", query: "prometheus" });
    for (const p of panels.filter((p) => p.type !== "row")) {
      expect({ panel: p.title, uid: p.datasource?.uid }).toEqual({ panel: p.title, uid: "${datasource}" });
      for (const t of p.targets ?? []) expect({ panel: p.title, uid: t.datasource.uid }).toEqual({ panel: p.title, uid: "${datasource}" });
    }
  });

  test("handshake age panels have thresholds at 150 s and 300 s; the tunnel row repeats per exit", () => {
    const age = panels.filter((p) => p.title === "Handshake age");
    expect(age.length).toBe(2);
    for (const p of age) expect(p.fieldConfig!.defaults.thresholds!.steps.map((s) => s.value)).toEqual([null, 150, 300]);
    expect(panels.find((p) => p.type === "row" && p.repeat === "exit")).toBeDefined();
  });

  test("connections are split by result and protocol, so the panel keeps working when the protocol label appears", () => {
    const q = queries.find((q) => q.panel === "Connections by result and protocol")!;
    expect(q.expr).toContain("sum by (result, protocol)");
  });

  test("the name extraction itself: functions, labels, ranges and keywords are not metric names", () => {
    expect(metricNames('sum by (le) (rate(a_bucket{x=~"y|z"}[$__rate_interval])) / on (i) group_left b_total or vector(0) and c > 1e3')).toEqual(["a_bucket", "b_total", "c"]);
  });

  test.skipIf(Bun.which("promtool") === null)("every expression is valid PromQL (promtool check rules)", () => {
    const dir = mkdtempSync(join(tmpdir(), "egressd-dash-"));
    try {
      const rules = queries.map((q, i) => `      - record: dashboard:q${i}\n        expr: ${JSON.stringify(plain(q.expr))}`).join("\n");
      const file = join(dir, "rules.yml");
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
      const r = Bun.spawnSync(["promtool", "check", "rules", file]);
      expect(r.stderr.toString() + r.stdout.toString()).toContain(`SUCCESS: ${queries.length} rules found`);
      expect(r.exitCode).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const skip = labUnsupported();
let lab: Lab;
let daemon: LabDaemon;

beforeAll(async () => {
  if (skip !== null) return;
  lab = await createLab({ prefix: "egtd" });
  daemon = await startLabDaemon(lab, { binary: egressdBinary() });
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await lab?.destroy();
}, 60_000);

describe.skipIf(skip !== null)("the dashboard against a real scrape", () => {
  test("every metric name in the dashboard's expressions is in the daemon's exposition", async () => {
    const scrape = await daemon.scrape();
    const have = new Set(scrape.samples.map((s) => s.name));
    const used = [...new Set(queries.flatMap((q) => metricNames(q.expr)))].sort();
    console.log(`dashboard uses ${used.length} metric names: ${used.join(", ")}`);
    expect(used.length).toBeGreaterThan(12);
    expect(used.filter((n) => !have.has(n))).toEqual([]);
  });

  test("so is every metric name of the alert rules (but Prometheus' own up)", async () => {
    const scrape = await daemon.scrape();
    const have = new Set(scrape.samples.map((s) => s.name));
    const doc = Bun.YAML.parse(readFileSync(join(import.meta.dir, "../../alerts/egressd.rules.yml"), "utf8")) as { groups: { rules: { expr: string }[] }[] };
    const used = [...new Set(doc.groups.flatMap((g) => g.rules.flatMap((r) => metricNames(r.expr))))].filter((n) => n !== "up").sort();
    expect(used.length).toBeGreaterThan(4);
    expect(used.filter((n) => !have.has(n))).toEqual([]);
  });
});
