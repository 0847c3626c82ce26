/**
 * systemd/egressd.service: `systemd-analyze verify` is clean, the `security --offline=yes` exposure
 * stays at or below 2.0, and the settings the daemon relies on are there.
 *
 * Type=notify-reload needs systemd-analyze >= 253: scripts/setup.sh unpacks one into .cache/systemd
 * when the host's is older (the lookup is test/nix/helpers.ts's, repeated here because that module
 * evaluates nix at import). Without one, the systemd-analyze tests are skipped, saying why.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { egressdBinary, ROOT } from "./helpers.ts";

const UNIT = join(ROOT, "systemd/egressd.service");
const MAX_EXPOSURE = 2.0;

function onPath(tool: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => d && existsSync(join(d, tool)));
}

/** systemd-analyze that understands Type=notify-reload, or why there is none. */
function systemdAnalyze(): { argv: string[]; env: Record<string, string | undefined> } | { skip: string } {
  const cached = join(ROOT, ".cache/systemd/usr/bin/systemd-analyze");
  if (existsSync(cached)) {
    return { argv: [cached], env: { ...process.env, LD_LIBRARY_PATH: join(ROOT, ".cache/systemd/usr/lib/x86_64-linux-gnu/systemd") } };
  }
  if (!onPath("systemd-analyze")) return { skip: "needs systemd-analyze" };
  const v = /systemd (\d+)/.exec(spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" }).stdout ?? "");
  if (!v || Number(v[1]) < 253) return { skip: "needs systemd-analyze >= 253 for Type=notify-reload (scripts/setup.sh unpacks one into .cache/)" };
  return { argv: ["systemd-analyze"], env: process.env };
}

const sa = systemdAnalyze();
const skip = "skip" in sa ? sa.skip : null;
const name = (n: string) => (skip ? `${n} [skipped: ${skip}]` : n);

function analyze(args: string[]): { code: number; stdout: string; stderr: string } {
  if ("skip" in sa) throw new Error(sa.skip);
  const r = spawnSync(sa.argv[0]!, [...sa.argv.slice(1), ...args], { env: sa.env, encoding: "utf8", timeout: 60_000 });
  return { code: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

let dir: string;
/** The unit with ExecStart pointed at the compiled binary (verify checks that the program exists). */
let unit: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "egressd-unit-"));
  unit = join(dir, "egressd.service");
  const text = readFileSync(UNIT, "utf8");
  expect(text).toContain("\nExecStart=/usr/local/bin/egressd run ");
  writeFileSync(unit, text.replace("\nExecStart=/usr/local/bin/egressd ", `\nExecStart=${egressdBinary()} `));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("systemd/egressd.service", () => {
  test.skipIf(skip !== null)(name("passes systemd-analyze verify with nothing on stderr"), () => {
    const r = analyze(["verify", unit]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  test.skipIf(skip !== null)(name("verify would catch a broken unit (this check can fail)"), () => {
    const broken = join(dir, "broken", "egressd.service");
    mkdirSync(join(dir, "broken"));
    writeFileSync(broken, readFileSync(unit, "utf8").replace("ProtectSystem=strict", "ProtectSystem=strictest"));
    const r = analyze(["verify", broken]);
    expect(r.stderr).toContain("Failed to parse protect system value, ignoring: strictest");
  });

  test.skipIf(skip !== null)(name(`has a systemd-analyze security --offline=yes exposure of at most ${MAX_EXPOSURE}`), () => {
    const r = analyze(["security", "--offline=yes", unit]);
    const m = /Overall exposure level for egressd\.service: ([\d.]+)/.exec(r.stdout);
    if (!m) throw new Error(`no exposure score in:\n${r.stdout}\n${r.stderr}`);
    console.log(`systemd-analyze security --offline=yes systemd/egressd.service: ${m[1]}`);
    expect(Number(m[1])).toBeLessThanOrEqual(MAX_EXPOSURE);
  });

  test("has what the daemon relies on", () => {
    const text = readFileSync(UNIT, "utf8");
    const values = (key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]!.trim());
    expect(values("Type")).toEqual(["notify-reload"]); // READY=1, RELOADING=1 + MONOTONIC_USEC, SIGHUP
    expect(values("NotifyAccess")).toEqual(["main"]);
    expect(values("WatchdogSec").length).toBe(1);
    expect(values("Restart")).toEqual(["on-failure"]);
    expect(values("User")).toEqual(["egressd"]); // marking by uid: stable, dedicated, non-root
    expect(values("Group")).toEqual(["egressd"]);
    expect(values("AmbientCapabilities")).toEqual(["CAP_NET_ADMIN"]);
    expect(values("CapabilityBoundingSet")).toEqual(["CAP_NET_ADMIN"]);
    expect(values("LoadCredential")[0]).toStartWith("private-key:");
    expect(values("RuntimeDirectory")[0]!.split(/\s+/)).toContain("egressd"); // /run/egressd/control.sock
    expect(values("ProtectSystem")).toEqual(["strict"]);
    expect(values("ProtectHome")).toEqual(["yes"]);
    expect(values("PrivateTmp")).toEqual(["yes"]);
    expect(values("NoNewPrivileges")).toEqual(["yes"]);
    expect(values("RestrictAddressFamilies")[0]!.split(/\s+/).sort()).toEqual(["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]);
    expect(values("SystemCallArchitectures")).toEqual(["native"]);
    // The JIT writes and then executes code; the reason must stay next to the setting.
    expect(text).toMatch(/#[^\n]*JIT[^\n]*\n(#[^\n]*\n)*MemoryDenyWriteExecute=false\n/);
    // Stopping drains connections for daemon.drainTimeout (10 s by default) before the teardown.
    expect(Number(/^TimeoutStopSec=(\d+)s$/m.exec(text)?.[1])).toBeGreaterThan(10);
    // wg, ip, nft and wireguard-go are found on the unit's PATH.
    expect(values("Environment").some((v) => /^PATH=.*\/usr\/sbin/.test(v))).toBe(true);
  });
});
