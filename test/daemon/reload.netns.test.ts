/**
 * SIGHUP reload of the compiled egressd in the lab, with 200 proxied connections held open from the
 * client namespace to an echo server on the internet host, through the tunnel:
 * - a reload that adds a listener and moves the metrics port keeps all 200 alive, and both changes
 *   take effect;
 * - an invalid config is refused with a clear log line and changes nothing;
 * - a valid config that cannot be applied (the metrics address is not on the host) is undone whole,
 *   including the listener it had already added;
 * - a config that changes the host state (tunnel, rules, nft) is refused: applying it in place would
 *   leave the proxy's traffic outside the tunnel for a moment.
 * Each step is its own test; they run in order on one daemon.
 *
 * Needs root and the lab's tools; skipped (with the reason in the name) otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createLab, labUnsupported, type Lab } from "../lab/index.ts";
import type { ChildHandle } from "../../lib/exec/runner.ts";
import { BUN, FIXTURES, hostDump, kindOf, type LabDaemon, poll, removeDaemonDirs, runBinary, type SocksHolder as Holder, startLabDaemon, startSocksHolder } from "./helpers.ts";

const skip = labUnsupported();
const name = (n: string) => (skip ? `${n} [skipped: ${skip}]` : n);

const CONNECTIONS = 200;
const ECHO_PORT = 9000;

let lab: Lab;
let daemon: LabDaemon;
let echo: ChildHandle;
let holder: Holder;
let config: Record<string, any>;
/** The gateway's host state before egressd ran. */
let before: Record<string, string>;

function startHolder(): Holder {
  return startSocksHolder(lab, { target: `${lab.addr.host4}:${ECHO_PORT}`, connections: CONNECTIONS });
}

async function curl(ns: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await lab.exec(ns, ["curl", "-sS", "-m", "10", ...args], { timeoutMs: 15_000 });
  return { code: r.exitCode, out: r.stdout, err: r.stderr };
}

/** Proxies one request from the client namespace to the lab's echo server (port 8080) through `port`. */
async function viaListener(port: number): Promise<{ code: number | null; out: string; err: string }> {
  return curl(lab.ns.client, ["--http0.9", "--socks5", `${lab.addr.gwLan}:${port}`, `http://${lab.addr.host4}:8080/`]);
}

async function metricsAt(port: number): Promise<{ code: number | null; out: string; err: string }> {
  return curl(lab.ns.client, [`http://${lab.addr.gwLan}:${port}/metrics`]);
}

/** Sends SIGHUP; waits for RELOADING=1, then READY=1, and for the log line that ends the reload. */
async function reload(): Promise<{ ready: string; log: any }> {
  const n = daemon.notify;
  const fromNotify = n.messages.length;
  const fromLog = daemon.logs.length;
  daemon.signal("SIGHUP");
  const reloading = await n.waitFor((m) => kindOf(m) === "RELOADING", 20_000, "RELOADING=1", fromNotify);
  const ready = await n.waitFor((m) => kindOf(m) === "READY", 20_000, "READY=1 after RELOADING=1", n.messages.indexOf(reloading) + 1);
  const log = await daemon.waitLog((l) => /^(reloaded$|reload refused|reload failed)/.test(l.msg), 20_000, "the log line that ends the reload", fromLog);
  return { ready: ready.fields.STATUS ?? "", log };
}

beforeAll(async () => {
  if (skip) return;
  lab = await createLab({ prefix: "egdrl" });
  echo = lab.spawn(lab.ns.inet, [BUN, join(FIXTURES, "echo-server.ts"), lab.addr.host4, String(ECHO_PORT)]);
  await poll(async () => (await lab.exec(lab.ns.inet, ["ncat", "-z", "-w", "1", lab.addr.host4, String(ECHO_PORT)])).exitCode === 0 || echo.exitStatus !== null, 10_000, "the echo server");
  if (echo.exitStatus !== null) throw new Error(`echo server exited: ${echo.outputTail()}`);
  await lab.startEchoServer(8080);
  before = await hostDump(lab);
  daemon = await startLabDaemon(lab);
  config = JSON.parse(await Bun.file(daemon.configPath).text());
}, 90_000);

afterAll(async () => {
  holder?.kill();
  await holder?.exited;
  if (daemon) {
    daemon.signal("SIGKILL");
    await daemon.exited;
    await daemon.notify.close().catch(() => undefined);
  }
  await lab?.destroy();
  removeDaemonDirs();
}, 60_000);

describe("SIGHUP with 200 live proxied connections", () => {
  test.skipIf(skip !== null)(name(`opens ${CONNECTIONS} connections through the proxy and the tunnel`), async () => {
    holder = startHolder();
    expect(await holder.first).toEqual({ opened: CONNECTIONS, failed: [] });
    expect(await holder.ask("ping before")).toEqual({ alive: CONNECTIONS, dead: [] });
    const s = await daemon.control("status");
    expect(s.proxy.active).toBe(CONNECTIONS);
  }, 90_000);

  test.skipIf(skip !== null)(name("a reload that adds a listener and moves the metrics port keeps all 200 alive and applies both"), async () => {
    expect((await metricsAt(9586)).code).toBe(0);
    config.proxy.listen = [`${lab.addr.gwLan}:1080`, `${lab.addr.gwLan}:1081`];
    config.metrics.listen = `${lab.addr.gwLan}:9587`;
    daemon.writeConfig(config);
    const { log } = await reload();
    expect(log.msg).toBe("reloaded");
    expect(String(log.changed).split(",").sort()).toEqual(["metrics", "proxy"]);

    expect(await holder.ask("ping after-reload")).toEqual({ alive: CONNECTIONS, dead: [] });
    const viaNew = await viaListener(1081);
    expect(viaNew.err).toBe("");
    expect(viaNew.out.trim()).toBe(lab.addr.exitWan4); // through the tunnel, like the old listener
    expect((await viaListener(1080)).out.trim()).toBe(lab.addr.exitWan4);
    const moved = await metricsAt(9587);
    expect(moved.code).toBe(0);
    expect(moved.out).toContain("egressd_build_info");
    const old = await metricsAt(9586);
    expect(old.code).toBe(7); // curl: could not connect
    const s = await daemon.control("status");
    expect(s.proxy.listeners).toEqual([`${lab.addr.gwLan}:1080`, `${lab.addr.gwLan}:1081`]);
    expect(s.metrics.listen).toBe(`http://${lab.addr.gwLan}:9587`);
    expect(s.proxy.active).toBe(CONNECTIONS);
  }, 90_000);

  test.skipIf(skip !== null)(name("an invalid config is refused with a clear log line and changes nothing"), async () => {
    const before = await daemon.control("status");
    const bad = JSON.stringify({ ...config, proxy: { ...config.proxy, listen: [`${lab.addr.gwLan}:1080`] } }).slice(0, -2); // cut off: not JSON
    daemon.writeConfig(bad);
    const { ready, log } = await reload();
    expect(log.level).toBe("error");
    expect(log.msg).toBe("reload refused: the new config is invalid; the old one stays in force");
    expect(String(log.error)).toMatch(/not valid JSON at line \d+ column \d+/);
    expect(ready).toMatch(/^reload refused: not valid JSON/);

    const after = await daemon.control("status");
    expect(after.proxy.listeners).toEqual(before.proxy.listeners);
    expect(after.metrics.listen).toBe(before.metrics.listen);
    expect((await metricsAt(9587)).code).toBe(0);
    expect((await metricsAt(9586)).code).toBe(7);
    expect((await viaListener(1081)).out.trim()).toBe(lab.addr.exitWan4);
    expect(await holder.ask("ping after-invalid")).toEqual({ alive: CONNECTIONS, dead: [] });

    // A config that parses but breaks the schema is refused the same way, naming the field.
    daemon.writeConfig({ ...config, proxy: { ...config.proxy, listen: ["not-an-address"] } });
    const schema = await reload();
    expect(schema.log.msg).toBe("reload refused: the new config is invalid; the old one stays in force");
    expect(String(schema.log.error)).toContain("proxy.listen[0]");
    expect((await daemon.control("status")).proxy.listeners).toEqual(before.proxy.listeners);
  }, 90_000);

  test.skipIf(skip !== null)(name("a config that cannot be applied is undone whole: the listener it added is closed again"), async () => {
    // Valid, but the metrics address is on no interface: the proxy step (a third listener) succeeds,
    // the metrics move fails, and the reload must take the third listener back.
    daemon.writeConfig({
      ...config,
      proxy: { ...config.proxy, listen: [...config.proxy.listen, `${lab.addr.gwLan}:1082`] },
      metrics: { ...config.metrics, listen: "10.1.0.99:9588" },
    });
    const { log } = await reload();
    expect(log.msg).toBe("reload failed; the old config stays in force");
    expect(String(log.error)).toContain("10.1.0.99:9588");
    const s = await daemon.control("status");
    expect(s.proxy.listeners).toEqual([`${lab.addr.gwLan}:1080`, `${lab.addr.gwLan}:1081`]);
    expect(s.metrics.listen).toBe(`http://${lab.addr.gwLan}:9587`);
    expect((await viaListener(1082)).code).not.toBe(0);
    expect((await metricsAt(9587)).code).toBe(0);
    expect(await holder.ask("ping after-undo")).toEqual({ alive: CONNECTIONS, dead: [] });
  }, 90_000);

  test.skipIf(skip !== null)(name("regression: a reload that changed the host state took the kill switch down and leaked proxied packets out of the WAN"), async () => {
    // The old reload took the host state down (rules, routes, nft table) and brought the new one up
    // while the proxy kept relaying: for that gap the proxy's packets left by the WAN, straight to
    // the destination (68 in one lab run). Any packet to the internet host on gw's WAN is a leak:
    // proxied traffic reaches it only inside the tunnel, as UDP to the exit.
    const capture = await lab.capture(lab.ns.gw, "wan", `host ${lab.addr.host4}`);
    daemon.writeConfig({ ...config, exit: { ...config.exit, persistentKeepalive: 20 } });
    let pinging = true;
    const pings: any[] = [];
    const pinger = (async () => {
      for (let i = 0; pinging; i++) pings.push(await holder.ask(`ping during-${i}`));
    })();
    await Bun.sleep(300);
    const { log } = await reload();
    await Bun.sleep(500);
    pinging = false;
    await pinger;
    const leaked = await capture.stop();
    expect(leaked.lines).toEqual([]);
    expect(log.msg).toBe("reload failed; the old config stays in force");
    expect(String(log.error)).toBe("exit.persistentKeepalive cannot change on reload without taking the tunnel's rules and kill switch down; restart egressd to apply it");
    expect(pings.every((p) => p.alive === CONNECTIONS)).toBe(true);
    const s = await daemon.control("status");
    expect(s.peers[0].persistentKeepalive).toBe(25);
    expect(s.routing.rulesInPlace).toBe(true);
  }, 90_000);

  test.skipIf(skip !== null)(name("the control command `reload` applies the good config again (and daemon.drainTimeout)"), async () => {
    config.daemon = { drainTimeout: "2s" };
    daemon.writeConfig(config);
    const from = daemon.notify.messages.length;
    expect(await daemon.control("reload")).toEqual({ ok: true, changed: ["proxy"] });
    await daemon.notify.waitFor((m) => kindOf(m) === "READY", 10_000, "READY=1 after the reload", from);
    const kinds = daemon.notify.messages.slice(from).map(kindOf).filter((k) => k !== "WATCHDOG" && k !== "STATUS");
    expect(kinds).toEqual(["RELOADING", "READY"]);
    expect(await holder.ask("ping after-control-reload")).toEqual({ alive: CONNECTIONS, dead: [] });
  }, 90_000);

  // `systemctl reload` cannot learn that a reload was refused (notify-reload has no such message);
  // `egressd reload` waits for the outcome and says it.
  test.skipIf(skip !== null)(name("`egressd reload`: exit 1 with the reason when refused, 0 naming what changed"), async () => {
    daemon.writeConfig({ ...config, proxy: { ...config.proxy, maxConnections: 0 } });
    const refused = await runBinary(["reload", "--socket", daemon.controlPath]);
    expect({ code: refused.code, stdout: refused.stdout }).toEqual({ code: 1, stdout: "" });
    expect(refused.stderr).toBe("egressd reload: refused, the old config stays in force: proxy.maxConnections: 0 is below the minimum 1\n");
    daemon.writeConfig(config);
    expect(await runBinary(["reload", "--socket", daemon.controlPath])).toEqual({ code: 0, stdout: "reloaded: proxy\n", stderr: "" });
    expect(await holder.ask("ping after-cli-reload")).toEqual({ alive: CONNECTIONS, dead: [] });
  }, 90_000);

  test.skipIf(skip !== null)(name("a reload applies a new daemon.reconcileInterval to the running loop"), async () => {
    config.daemon = { drainTimeout: "2s", reconcileInterval: "250ms" };
    daemon.writeConfig(config);
    expect(await daemon.control("reload")).toEqual({ ok: true, changed: ["proxy", "daemon.reconcileInterval"] });
    const before = (await daemon.control("status")).reconcile.runs;
    await Bun.sleep(2000);
    const after = (await daemon.control("status")).reconcile.runs;
    // At the old 2 s interval this would be 1 or 2 passes; at 250 ms it is about 8.
    expect(after - before).toBeGreaterThanOrEqual(4);
    expect(await holder.ask("ping after-interval-reload")).toEqual({ alive: CONNECTIONS, dead: [] });
  }, 90_000);

  test.skipIf(skip !== null)(name("SIGTERM drains the 200 for daemon.drainTimeout, resets them, tears the host down and exits 0"), async () => {
    const started = performance.now();
    const code = await daemon.stop();
    const took = performance.now() - started;
    expect(code).toBe(0);
    expect(took).toBeGreaterThan(1500); // it waited for the connections
    const draining = daemon.logs.find((l) => l.msg === "proxy draining");
    expect(draining).toMatchObject({ connections: CONNECTIONS, drainMs: 2000 });
    expect(daemon.logs.find((l) => l.msg === "proxy stopped")).toMatchObject({ reset: CONNECTIONS });
    const after = await holder.ask("ping after-stop");
    expect(after.alive).toBe(0);
    expect(await hostDump(lab)).toEqual(before);
    expect(daemon.logs.filter((l) => l.level === "error").map((l) => l.msg)).toEqual([
      "reload refused: the new config is invalid; the old one stays in force",
      "reload refused: the new config is invalid; the old one stays in force",
      "reload failed; the old config stays in force",
      "reload failed; the old config stays in force",
      "reload refused: the new config is invalid; the old one stays in force", // `egressd reload`
    ]);
  }, 90_000);
});
