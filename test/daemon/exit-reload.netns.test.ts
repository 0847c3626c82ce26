/**
 * Reloading the compiled egressd with a standby exit added and removed, in the lab with three VPS
 * namespaces (`exits: 3`): A (198.51.100.2), B (203.0.113.130) and C (203.0.113.66); home is
 * 192.0.2.2. The daemon starts with A and B; A is active.
 *
 * - SIGHUP with C appended (and a listener pinned to C), while 50 connections through A are held
 *   open, new connections are made in a loop, and the gateway's WAN is captured: every held
 *   connection survives, every new one leaves by A, the WAN sees no proxied TCP (the unmarked control
 *   does: the positive control), status and metrics list C, the pinned listener shows C's address.
 * - With A and B's UDP dropped, new connections fail over to C; a reload removing C while it is active
 *   is refused and C stays; back to A once A and B return.
 * - Refused, with the reason, and nothing changed: dropping the first exit or inserting one in the
 *   middle (another exit would be renumbered), changing the active exit's endpoint.
 * - A reload removing C again (and its pinned listener): the held connections survive, nothing leaks,
 *   C's interface, table and source rules are gone, its metric series too.
 *
 * Needs root and the lab's tools; skipped (with the reason in the name) otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { ChildHandle } from "../../lib/exec/runner.ts";
import { createLab, labUnsupported, type Lab } from "../lab/index.ts";
import { dropWireguardUdp } from "../lab/outage.ts";
import { BUN, FIXTURES, type LabDaemon, poll, removeDaemonDirs, runBinary, type SocksHolder, startLabDaemon, startSocksHolder, unmarkedControl, labExitEntry, useLabExits, whoamiThrough } from "./helpers.ts";

const skip = labUnsupported();
const name = (n: string) => (skip ? `${n} [skipped: ${skip}]` : n);
const ECHO = 8080;
const PROBE = 8081;
const CONTROL = 8082;
const LINES = 9000;
const HELD = 50;
const A_WAN = "198.51.100.2";
const C_WAN = "203.0.113.66";

let lab: Lab;
let daemon: LabDaemon | null = null;
let holder: SocksHolder | null = null;
let lineEcho: ChildHandle;
let config: Record<string, any>;

const exitEntry = (i: number) => labExitEntry(lab, i);

beforeAll(async () => {
  if (skip) return;
  lab = await createLab({ prefix: "egdxr", exits: 3 });
  await lab.startEchoServer(ECHO);
  await lab.startEchoServer(PROBE);
  await lab.startEchoServer(CONTROL);
  lineEcho = lab.spawn(lab.ns.inet, [BUN, join(FIXTURES, "echo-server.ts"), lab.addr.host4, String(LINES)]);
  await poll(async () => (await lab.exec(lab.ns.inet, ["ncat", "-z", "-w", "1", lab.addr.host4, String(LINES)])).exitCode === 0 || lineEcho.exitStatus !== null, 10_000, "the line echo server");
  daemon = await startLabDaemon(lab, {
    config: (c) => {
      useLabExits(c, lab, { count: 2, probePort: PROBE });
    },
  });
  config = JSON.parse(await Bun.file(daemon.configPath).text());
}, 90_000);

afterAll(async () => {
  holder?.kill();
  await holder?.exited;
  if (daemon) await daemon.stop();
  await lab?.destroy();
  removeDaemonDirs();
}, 120_000);

/** One request through the proxy's `port`; the echo server's answer (the source address), or "" when it failed. */
function through(port: number, seconds = 3): Promise<string> {
  return whoamiThrough(lab, port, { echo: ECHO, seconds });
}

/** The unmarked control: straight out of the gateway's WAN, as another uid. */
function control(): Promise<string> {
  return unmarkedControl(lab, CONTROL);
}

async function metrics(): Promise<string> {
  return (await lab.exec(lab.ns.client, ["curl", "-sS", "-m", "5", `http://${lab.addr.gwLan}:9586/metrics`])).stdout;
}

async function gw(...argv: string[]): Promise<string> {
  return (await lab.exec(lab.ns.gw, argv)).stdout;
}

/** Proxied TCP to the lab's servers on a WAN capture's lines (the control's port excluded). */
function proxiedOnWan(lines: readonly string[]): string[] {
  return lines.filter((l) => [ECHO, LINES].some((p) => l.includes(`.${p}:`) || l.includes(`.${p} `)));
}

function controlOnWan(lines: readonly string[]): string[] {
  return lines.filter((l) => l.includes(`.${CONTROL}:`) || l.includes(`.${CONTROL} `));
}

/** Runs new connections through :1080 in a loop until stopped; what each showed. */
function newConnections(): { stop(): Promise<string[]> } {
  let done = false;
  const seen: string[] = [];
  const loop = (async () => {
    while (!done) seen.push((await through(1080, 3)) || "(failed)");
  })();
  return {
    async stop() {
      done = true;
      await loop;
      return seen;
    },
  };
}

/** Writes `c` and reloads over the control socket; the outcome. */
async function reloadWith(c: Record<string, any>): Promise<{ ok: boolean; error?: string; changed?: string[] }> {
  daemon!.writeConfig(c);
  return daemon!.control("reload");
}

describe.skipIf(skip !== null)("reload adds and removes a standby exit (compiled egressd, three VPSes)", () => {
  test(name("A and B come up; A carries new connections; 50 connections are held open through it"), async () => {
    await poll(async () => (await through(1080)) === A_WAN, 30_000, "traffic through exit A");
    await poll(async () => (await daemon!.control("status")).exits.every((e: any) => e.health === "up"), 30_000, "both exits up");
    holder = startSocksHolder(lab, { target: `${lab.addr.host4}:${LINES}`, connections: HELD });
    expect(await holder.first).toEqual({ opened: HELD, failed: [] });
    expect(await holder.ask("ping before")).toEqual({ alive: HELD, dead: [] });
  }, 90_000);

  test(name("SIGHUP appending C: held connections survive, new ones leave by A, the WAN sees nothing; C is probed, listed and pinnable"), async () => {
    const cap = await lab.capture(lab.ns.gw, "wan", `tcp and host ${lab.addr.host4}`);
    const load = newConnections();
    await Bun.sleep(1000);
    const next = structuredClone(config);
    next.exits = [exitEntry(0), exitEntry(1), exitEntry(2)];
    next.proxy.listen = [`${lab.addr.gwLan}:1080`, `${lab.addr.gwLan}:1081`];
    next.proxy.pinnedListeners = { [`${lab.addr.gwLan}:1081`]: "lab-exit3" };
    const from = daemon!.logs.length;
    daemon!.writeConfig(next);
    daemon!.signal("SIGHUP");
    const line = await daemon!.waitLog((l) => /^(reloaded$|reload refused|reload failed)/.test(l.msg), 30_000, "the end of the reload", from);
    await Bun.sleep(1000);
    const seen = await load.stop();
    const controlSource = await control(); // the positive control, same capture
    const { lines } = await cap.stop();
    config = next;
    // Every fact in one comparison, and the daemon's log of the reload when it fails: a failure here
    // under load must say which fact broke, not only that one did.
    const facts = {
      reload: line.msg,
      changed: String(line.changed).split(",").includes("exits"),
      newConnections: seen.length > 1,
      notThroughA: seen.filter((s) => s !== A_WAN),
      proxiedOnWan: proxiedOnWan(lines),
      control: controlSource,
      controlOnWan: controlOnWan(lines).length > 0,
      held: await holder!.ask("ping after-add"),
    };
    const expected = { reload: "reloaded", changed: true, newConnections: true, notThroughA: [], proxiedOnWan: [], control: lab.addr.gwWan4, controlOnWan: true, held: { alive: HELD, dead: [] } };
    if (!Bun.deepEquals(facts, expected)) console.error(`the daemon's log since the reload:\n${daemon!.logs.slice(from).map((l) => JSON.stringify(l)).join("\n")}`);
    expect(facts).toEqual(expected);
    const s = await daemon!.control("status");
    expect(s.exits.map((e: any) => [e.name, e.active])).toEqual([["lab-exit", true], ["lab-exit2", false], ["lab-exit3", false]]);
    await poll(async () => (await daemon!.control("status")).exits.every((e: any) => e.health === "up"), 30_000, "C up");
    expect(await through(1081)).toBe(C_WAN);
    expect(await through(1080)).toBe(A_WAN);
    const m = await metrics();
    expect(m).toContain('egressd_exit_up{exit="lab-exit3"} 1');
    expect(m).toContain('friendly_name="lab-exit3"');
    expect(await gw("ip", "-4", "rule", "show")).toContain(`from ${lab.addr.tunnel3Gw4.split("/")[0]} lookup 51823`);
    const status = await runBinary(["status", "--socket", daemon!.controlPath]);
    expect(status.stdout).toMatch(new RegExp(`lab-exit3 via ${lab.exits[2]!.gatewayWg}: up`));
    const check = await runBinary(["check", "--socket", daemon!.controlPath]);
    expect(check.code).toBe(0);
  }, 120_000);

  test(name("with A and B's UDP dropped, new connections fail over to C, and return to A; nothing leaks"), async () => {
    const cap = await lab.capture(lab.ns.gw, "wan", `tcp and host ${lab.addr.host4}`);
    await dropWireguardUdp(lab, lab.exits[0]!.ns, true);
    await dropWireguardUdp(lab, lab.exits[1]!.ns, true);
    try {
      await poll(async () => (await through(1080, 1)) === C_WAN, 60_000, "new connections through C");
      expect(await control()).toBe(lab.addr.gwWan4);
      // C is active now: a reload removing it is refused, and C stays.
      const without = structuredClone(config);
      without.exits = [exitEntry(0), exitEntry(1)];
      without.proxy.listen = [`${lab.addr.gwLan}:1080`];
      delete without.proxy.pinnedListeners;
      const r = await reloadWith(without);
      daemon!.writeConfig(config);
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/removing the active exit "lab-exit3" \(exits\[2\]\) is refused: it carries the live traffic/);
      expect((await daemon!.control("status")).exits.map((e: any) => [e.name, e.active])).toEqual([["lab-exit", false], ["lab-exit2", false], ["lab-exit3", true]]);
      expect(await through(1080)).toBe(C_WAN);
    } finally {
      await dropWireguardUdp(lab, lab.exits[0]!.ns, false);
      await dropWireguardUdp(lab, lab.exits[1]!.ns, false);
    }
    await poll(async () => (await through(1080, 1)) === A_WAN, 60_000, "new connections back through A");
    const { lines } = await cap.stop();
    expect(proxiedOnWan(lines)).toEqual([]);
    expect(controlOnWan(lines).length).toBeGreaterThan(0);
    await poll(async () => (await daemon!.control("status")).exits.every((e: any) => e.health === "up"), 60_000, "all three up again");
    // The held connections went out through A before it was declared down: they were reset then.
    holder?.kill();
    await holder?.exited;
    holder = startSocksHolder(lab, { target: `${lab.addr.host4}:${LINES}`, connections: HELD });
    expect(await holder.first).toEqual({ opened: HELD, failed: [] });
  }, 180_000);

  test(name("refused, naming what and why, with nothing changed: dropping the first exit, an insertion, the active exit's endpoint"), async () => {
    const rulesBefore = await gw("ip", "rule", "show");
    const dropFirst = structuredClone(config);
    dropFirst.exits = [exitEntry(1), exitEntry(2)];
    const r1 = await reloadWith(dropFirst);
    expect(r1.ok).toBe(false);
    expect(r1.error).toContain('exit "lab-exit2" would move from exits[1] to exits[0]');
    const insert = structuredClone(config);
    insert.exits = [exitEntry(0), exitEntry(2), exitEntry(1)];
    const r2 = await reloadWith(insert);
    expect(r2.error).toMatch(/exit "lab-exit2" would move from exits\[1\] to exits\[2\], renumbering its table \(51822 -> 51823\)/);
    const moved = structuredClone(config);
    moved.exits[0].endpoint = `${lab.addr.inetGw4}:51820`;
    const r3 = await reloadWith(moved);
    expect(r3.error).toMatch(/changing the active exit "lab-exit" \(exits\[0\]: endpoint\) is refused/);
    expect(await gw("ip", "rule", "show")).toBe(rulesBefore);
    expect((await daemon!.control("status")).exits).toHaveLength(3);
    expect(await through(1080)).toBe(A_WAN);
    expect(await holder!.ask("ping after-refusals")).toEqual({ alive: HELD, dead: [] });
    daemon!.writeConfig(config);
  }, 90_000);

  test(name("a reload removing C: held connections survive, nothing leaks, C's interface, table, rules and series are gone"), async () => {
    const cap = await lab.capture(lab.ns.gw, "wan", `tcp and host ${lab.addr.host4}`);
    const load = newConnections();
    await Bun.sleep(1000);
    const next = structuredClone(config);
    next.exits = [exitEntry(0), exitEntry(1)];
    next.proxy.listen = [`${lab.addr.gwLan}:1080`];
    delete next.proxy.pinnedListeners;
    const r = await reloadWith(next);
    expect(r).toMatchObject({ ok: true });
    expect(r.changed).toContain("exits");
    await Bun.sleep(1000);
    const seen = await load.stop();
    expect(await control()).toBe(lab.addr.gwWan4);
    const { lines } = await cap.stop();
    config = next;
    expect(seen.filter((s) => s !== A_WAN)).toEqual([]);
    expect(proxiedOnWan(lines)).toEqual([]);
    expect(controlOnWan(lines).length).toBeGreaterThan(0);
    expect(await holder!.ask("ping after-remove")).toEqual({ alive: HELD, dead: [] });
    expect((await daemon!.control("status")).exits.map((e: any) => e.name)).toEqual(["lab-exit", "lab-exit2"]);
    expect((await lab.exec(lab.ns.gw, ["ip", "link", "show", lab.exits[2]!.gatewayWg])).exitCode).not.toBe(0);
    expect(await gw("ip", "-4", "route", "show", "table", "51823")).toBe("");
    expect(await gw("ip", "-4", "rule", "show")).not.toContain(lab.addr.tunnel3Gw4.split("/")[0]!);
    const m = await metrics();
    expect(m).not.toContain("lab-exit3");
    expect(m).toContain('egressd_exit_active{exit="lab-exit"} 1');
  }, 90_000);
});
