/**
 * The compiled egressd, run the way systemd runs it — a non-root uid with ambient CAP_NET_ADMIN
 * (setpriv), inside the lab's gateway namespace, with a fake NOTIFY_SOCKET — through its whole
 * lifecycle: the sd_notify sequence, the watchdog, teardown on SIGTERM, recovery after SIGKILL, and
 * `egressd status` / `egressd check` against the live daemon.
 *
 * Needs root and the lab's tools; skipped (with the reason in the name) otherwise.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnection } from "node:net";
import { createLab, labUnsupported, type Lab } from "../lab/index.ts";
import { monotonicUsec } from "../../lib/daemon/notify.ts";
import { hostDump, kindOf, type LabDaemon, removeDaemonDirs, runBinary, startLabDaemon } from "./helpers.ts";

const skip = labUnsupported();
const name = (n: string) => (skip ? `${n} [skipped: ${skip}]` : n);

let lab: Lab;
const daemons: LabDaemon[] = [];

beforeAll(async () => {
  if (skip) return;
  lab = await createLab({ prefix: "egdlc" });
}, 60_000);

/** Kills the daemons a failed test left running, so that the next test starts on a clean host. */
async function killLeftovers(): Promise<void> {
  for (const d of daemons.splice(0)) {
    d.signal("SIGKILL");
    await d.exited;
    await d.notify.close().catch(() => undefined);
  }
}

afterEach(killLeftovers, 30_000);

afterAll(async () => {
  await killLeftovers();
  await lab?.destroy();
  removeDaemonDirs();
}, 60_000);

async function start(opts: Parameters<typeof startLabDaemon>[1] = {}): Promise<LabDaemon> {
  const d = await startLabDaemon(lab, opts);
  daemons.push(d);
  return d;
}

/** Proxies one request from the client namespace to the lab's echo server; returns what it said. */
async function curlThrough(port: number, echoPort: number): Promise<string> {
  const r = await lab.exec(lab.ns.client, ["curl", "-sS", "-m", "10", "--http0.9", "--socks5", `${lab.addr.gwLan}:${port}`, `http://${lab.addr.host4}:${echoPort}/`], { timeoutMs: 15_000 });
  if (r.exitCode !== 0) throw new Error(`curl through :${port} failed (${r.exitCode}): ${r.stderr}`);
  return r.stdout.trim();
}

/** The kinds of notifications in order, without WATCHDOG, with runs of STATUS collapsed to one. */
function kindSequence(d: LabDaemon): string[] {
  const out: string[] = [];
  for (const m of d.notify.messages) {
    const k = kindOf(m);
    if (k === "WATCHDOG") continue;
    if (k === "STATUS" && out.at(-1) === "STATUS") continue;
    out.push(k);
  }
  return out;
}

/** Our rules, table routes, nft tables and WireGuard links, counted from machine-readable dumps. */
async function ownedState(): Promise<{ rules: string[]; routes: string[]; nftTables: number; links: number }> {
  const json = async (argv: string[]) => {
    const r = await lab.exec(lab.ns.gw, argv);
    if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    return JSON.parse(r.stdout || "[]");
  };
  const rules: string[] = [];
  const routes: string[] = [];
  for (const f of ["-4", "-6"]) {
    for (const r of await json(["ip", "-j", f, "rule"])) if (r.priority >= 5000 && r.priority < 5010) rules.push(`${f} ${JSON.stringify(r)}`);
    for (const r of await json(["ip", "-j", f, "route", "show", "table", "51820"])) routes.push(`${f} ${JSON.stringify(r)}`);
  }
  const nft = (await json(["nft", "-j", "list", "tables"])).nftables as { table?: { name: string } }[];
  const links = (await json(["ip", "-j", "link"])) as { ifname: string }[];
  return {
    rules,
    routes,
    nftTables: nft.filter((e) => e.table?.name === "egressd").length,
    links: links.filter((l) => l.ifname === lab.gateway.wgName).length,
  };
}

describe("egressd run in a network namespace", () => {
  test.skipIf(skip !== null)(name("sends READY → STATUS → RELOADING+MONOTONIC_USEC → READY → STOPPING across start, SIGHUP and SIGTERM"), async () => {
    const d = await start();
    const n = d.notify;
    const ready = n.messages.findIndex((m) => kindOf(m) === "READY");
    // STATUS= follows READY=1 as the reconcile loop refreshes it (every 2 s by default).
    await n.waitFor((m) => kindOf(m) === "STATUS", 15_000, "STATUS= after READY=1", ready + 1);
    d.signal("SIGHUP");
    const reloading = await n.waitFor((m) => kindOf(m) === "RELOADING", 15_000, "RELOADING=1");
    await n.waitFor((m) => kindOf(m) === "READY", 15_000, "READY=1 after RELOADING=1", n.messages.indexOf(reloading) + 1);
    expect(await d.stop()).toBe(0);

    expect(kindSequence(d).join(" ")).toMatch(/^(STATUS )?READY STATUS RELOADING READY (STATUS )?STOPPING$/);
    // MONOTONIC_USEC is CLOCK_MONOTONIC (systemd matches it against its own clock), taken just
    // before sending: the receiver's CLOCK_MONOTONIC at receipt is at most a little later.
    const usec = Number(reloading.fields.MONOTONIC_USEC);
    expect(reloading.msg).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+$/);
    expect(reloading.t - usec / 1e6).toBeGreaterThanOrEqual(-0.01);
    expect(reloading.t - usec / 1e6).toBeLessThan(2);
    // READY=1 carries a STATUS= line, and STATUS lines are readable.
    const readies = n.messages.filter((m) => kindOf(m) === "READY");
    for (const r of readies) expect(r.fields.STATUS).toMatch(/^(handshake .* ago|no handshake yet); \d+ active connections?$/);
  }, 90_000);

  test.skipIf(skip !== null)(name("leaves the host exactly as before `run` after SIGTERM"), async () => {
    const before = await hostDump(lab);
    const echo = await lab.startEchoServer(8080);
    const d = await start();
    const during = await hostDump(lab);
    // The dump must be able to see the daemon's state, or the comparison below proves nothing.
    expect(during["ip rule"]).not.toBe(before["ip rule"]);
    expect(during["nft list ruleset"]).toContain("table inet egressd");
    expect(during["ip -br link"]).toContain(lab.gateway.wgName);
    // Traffic through the tunnel (the exit sees its own address), then a reload, then SIGTERM.
    expect(await curlThrough(1080, 8080)).toBe(lab.addr.exitWan4);
    d.signal("SIGHUP");
    await d.waitLog((l) => l.msg === "reloaded", 15_000, "reloaded");
    expect(await d.stop()).toBe(0);
    echo.kill();
    expect(await hostDump(lab)).toEqual(before);
    expect(existsSync(d.controlPath)).toBe(false);
    expect(d.logs.filter((l) => l.level === "error")).toEqual([]);
  }, 90_000);

  test.skipIf(skip !== null)(name("regression: SIGTERM during start-up sent READY=1 after STOPPING=1 and bound the proxy after the stop began"), async () => {
    const before = await hostDump(lab);
    // SIGTERM as soon as start-up reaches the host (the slowest step, ~100 ms here); twice, because
    // the first run also warms the page cache and the second lands earlier in host.up().
    for (let run = 0; run < 2; run++) {
      const d = await start({ waitReady: false });
      await d.notify.waitFor((m) => m.msg === "STATUS=bringing up the tunnel", 15_000, "start-up to reach the host");
      d.signal("SIGTERM");
      expect(await d.exited).toBe(0);
      await d.notify.close();
      const kinds = d.notify.messages.map(kindOf).filter((k) => k !== "WATCHDOG" && k !== "STATUS");
      expect(kinds.slice(kinds.indexOf("STOPPING"))).toEqual(["STOPPING"]);
      const signalled = d.logs.findIndex((l) => l.msg === "signal received");
      expect(signalled).toBeGreaterThanOrEqual(0);
      expect(d.logs.slice(signalled).map((l) => l.msg)).not.toContain("proxy listening");
      expect(d.logs.slice(signalled).map((l) => l.msg)).not.toContain("ready");
      expect(await hostDump(lab)).toEqual(before);
    }
  }, 90_000);

  test.skipIf(skip !== null)(name("a second egressd on the same control socket is refused before it touches the host"), async () => {
    const first = await start();
    const running = await hostDump(lab);
    const second = await start({ dir: first.dir, waitReady: false });
    expect(await second.exited).toBe(1);
    expect(second.logText()).toContain(`${first.controlPath} is in use: is another egressd running?`);
    expect(second.logs.map((l) => l.msg)).not.toContain("tunnel configured");
    expect(second.notify.messages.map((m) => m.msg)).toEqual([]);
    await second.notify.close();
    // The first one is untouched and still answers.
    expect(await hostDump(lab)).toEqual(running);
    expect((await first.control("status")).pid).toBe(first.pid);
    // The control command `stop` stops it like SIGTERM does.
    expect(await first.control("stop")).toEqual({ stopping: true });
    expect(await first.exited).toBe(0);
    await first.notify.close();
    expect(first.notify.messages.map(kindOf).at(-1)).toBe("STOPPING");
  }, 90_000);

  test.skipIf(skip !== null)(name("logs no secret, even at debug level"), async () => {
    const d = await start({ config: (c) => (c.daemon = { logLevel: "debug" }) });
    d.signal("SIGHUP");
    await d.waitLog((l) => l.msg === "reloaded", 15_000, "reloaded");
    expect(await d.stop()).toBe(0);
    const key = (await Bun.file(lab.gateway.privateKeyFile).text()).trim();
    const log = d.logText();
    expect(d.logs.some((l) => l.level === "debug")).toBe(true); // the runner's `[#] wg ...` lines are there
    expect(log).not.toContain(key);
    expect(log).not.toContain(key.slice(0, 20));
    expect(d.notify.messages.map((m) => m.msg).join("\n")).not.toContain(key.slice(0, 20));
  }, 90_000);

  test.skipIf(skip !== null)(name("pings WATCHDOG=1 every WATCHDOG_USEC/2, stops while the daemon cannot run, then resumes"), async () => {
    const d = await start({ env: { WATCHDOG_USEC: "2000000" } });
    const n = d.notify;
    const pings = () => n.messages.filter((m) => kindOf(m) === "WATCHDOG").map((m) => m.t);
    await Bun.sleep(5000);
    const steady = pings();
    expect(steady.length).toBeGreaterThanOrEqual(4);
    const gaps = steady.slice(1).map((t, i) => t - steady[i]!);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    expect(mean).toBeGreaterThan(0.8);
    expect(mean).toBeLessThan(1.4);

    // Freeze the daemon itself, as a wedged event loop would (nothing on it runs, no timer fires):
    // SIGSTOP from outside, so no test hook lives in the daemon. The pid is egressd's own (the
    // namespace and setpriv wrappers exec it), which /proc confirms before and after.
    const stat = () => readFileSync(`/proc/${d.pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")[0];
    expect(readFileSync(`/proc/${d.pid}/cmdline`, "utf8").split("\0")).toContain("run");
    const blockS = 4;
    d.signal("SIGSTOP");
    const blocked = Number(monotonicUsec()) / 1e6;
    try {
      await Bun.sleep(200);
      expect(stat()).toBe("T"); // stopped
      await Bun.sleep(blockS * 1000 - 200);
    } finally {
      d.signal("SIGCONT");
    }
    const resumedAt = Number(monotonicUsec()) / 1e6;
    await Bun.sleep(3500);
    expect(stat()).not.toBe("T");
    const all = pings();
    // Stopped: none between a moment after SIGSTOP (a ping already on the wire) and SIGCONT.
    expect(all.filter((t) => t > blocked + 0.3 && t < resumedAt - 0.05)).toEqual([]);
    const resumed = all.filter((t) => t >= resumedAt - 0.05);
    expect(resumed.length).toBeGreaterThanOrEqual(2); // and resumed
    for (const [i, t] of resumed.slice(1).entries()) expect(t - resumed[i]!).toBeLessThan(2);
    // Still serving after the freeze: the control socket answers and the tunnel is up.
    expect((await d.control("status")).tunnel.up).toBe(true);
    expect(await d.stop()).toBe(0);
  }, 90_000);

  test.skipIf(skip !== null)(name("converges after SIGKILL and a restart: no duplicate rules, routes or tables, and the stale control socket is replaced"), async () => {
    const first = await start();
    const clean = await ownedState();
    const cleanDump = await hostDump(lab);
    expect(clean.rules.length).toBeGreaterThan(0);
    expect(clean.routes.length).toBeGreaterThan(0);
    expect(clean.nftTables).toBe(1);
    expect(clean.links).toBe(1);

    first.signal("SIGKILL");
    expect(await first.exited).toBe(128 + 9);
    await first.notify.close();
    // What a crash leaves behind: the socket file, with nobody listening.
    expect(lstatSync(first.controlPath).isSocket()).toBe(true);
    const refused = await new Promise<string>((resolve) => {
      const s = createConnection(first.controlPath);
      s.once("connect", () => resolve("connected"));
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
    });
    expect(refused).toBe("ECONNREFUSED");

    const second = await start({ dir: first.dir });
    const again = await ownedState();
    expect(again.rules.length).toBe(clean.rules.length);
    expect(new Set(again.rules).size).toBe(again.rules.length);
    expect(again.routes.length).toBe(clean.routes.length);
    expect(again.nftTables).toBe(1);
    expect(again.links).toBe(1);
    // The whole dump matches the first run's, but for nft counters and the new tun device's random
    // link-local address (which also reorders the local table).
    const norm = (dump: Record<string, string>) => {
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(dump)) {
        out[k] = v
          .replace(/packets \d+ bytes \d+/g, "packets N bytes N")
          .split("\n")
          .map((l) => (l.includes(lab.gateway.wgName) ? l.replace(/fe80::[0-9a-f:]+/g, "fe80::(random)") : l))
          .sort()
          .join("\n");
      }
      return out;
    };
    expect(norm(await hostDump(lab))).toEqual(norm(cleanDump));
    const status = await second.control("status");
    expect(status.pid).toBe(second.pid);
    expect(await second.stop()).toBe(0);
  }, 90_000);

  test.skipIf(skip !== null)(name("daemon.teardownOnStop: false keeps the rules, kill switch and nft table after SIGTERM; the next start converges"), async () => {
    const before = await hostDump(lab);
    const d = await start({ config: (c) => (c.daemon = { teardownOnStop: false }) });
    const running = await ownedState();
    expect(await d.stop()).toBe(0);
    const left = await ownedState();
    expect(left.rules).toEqual(running.rules);
    expect(left.nftTables).toBe(1);
    // wireguard-go dies with the daemon (parent-death signal), taking its routes; the kill switch's
    // unreachable routes stay, so marked traffic still fails closed.
    expect(left.routes.filter((r) => r.includes('"unreachable"')).length).toBe(2);
    // The next run (default config: teardownOnStop true) adopts what was left, then removes it all.
    const again = await start({ dir: d.dir });
    const converged = await ownedState();
    expect(converged.rules).toEqual(running.rules);
    expect(converged.routes.length).toBe(running.routes.length);
    expect(converged.links).toBe(1);
    expect(await again.stop()).toBe(0);
    expect(await hostDump(lab)).toEqual(before);
  }, 90_000);

  test.skipIf(skip !== null)(name("reads the private key from $CREDENTIALS_DIRECTORY, as LoadCredential= delivers it"), async () => {
    // As systemd lays it out: a directory only the service's user can read, the key 0400 inside.
    const creds = mkdtempSync(join(tmpdir(), "egressd-creds-"));
    copyFileSync(lab.gateway.privateKeyFile, join(creds, "wg-key"));
    chmodSync(join(creds, "wg-key"), 0o400);
    chownSync(join(creds, "wg-key"), lab.uid, lab.uid);
    chmodSync(creds, 0o500);
    chownSync(creds, lab.uid, lab.uid);
    try {
      const d = await start({ env: { CREDENTIALS_DIRECTORY: creds }, config: (c) => (c.interface.privateKeyFile = "wg-key") });
      expect(existsSync(join(d.dir, "wg-key"))).toBe(false); // not beside the config: only the credential
      expect((await d.control("status")).tunnel.publicKey).toBe(lab.gateway.publicKey);
      expect(await d.stop()).toBe(0);
    } finally {
      rmSync(creds, { recursive: true, force: true });
    }
  }, 90_000);

  test.skipIf(skip !== null)(name("`egressd status` and `egressd check` describe the live daemon"), async () => {
    // No timer-driven reconcile, so that what check sees after a deletion stays until we repair it.
    const d = await start({ config: (c) => (c.daemon = { reconcileInterval: "1h" }) });
    const echo = await lab.startEchoServer(8081);
    for (let i = 0; i < 3; i++) expect(await curlThrough(1080, 8081)).toBe(lab.addr.exitWan4);
    echo.kill();

    const status = await runBinary(["status", "--socket", d.controlPath]);
    console.log(`egressd status:\n${status.stdout}`);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`tunnel: ${lab.gateway.wgName} (userspace) up`);
    expect(status.stdout).toContain(`peer: ${lab.exit.publicKey} (lab-exit)`);
    expect(status.stdout).toContain(`endpoint: ${lab.exit.endpoint}`);
    expect(status.stdout).toContain(`proxy: ${lab.addr.gwLan}:1080`);
    expect(status.stdout).toMatch(/connections: 0 active, 3 total/);
    expect(status.stdout).toMatch(/routing: fwmark 0xca6c -> table 51820, rules in place, nft table in place/);
    expect(status.stdout).toContain(`metrics: http://${lab.addr.gwLan}:9586`);

    const json = await runBinary(["status", "--json", "--socket", d.controlPath]);
    const s = JSON.parse(json.stdout);
    expect(s.pid).toBe(d.pid);
    expect(s.tunnel.publicKey).toBe(lab.gateway.publicKey);
    expect(s.peers.map((p: { publicKey: string }) => p.publicKey)).toEqual([lab.exit.publicKey]);
    expect(s.peers[0].latestHandshake).toBeGreaterThan(0);
    expect(s.proxy.total).toBe(3);
    expect(s.proxy.bytesDown).toBeGreaterThan(0);

    const ok = await runBinary(["check", "--socket", d.controlPath]);
    console.log(`egressd check:\n${ok.stdout}`);
    expect(ok.stdout.trim().split("\n")).toEqual([
      `OK: interface: ${lab.gateway.wgName} is up (userspace)`,
      expect.stringMatching(/^OK: handshake: latest handshake with lab-exit \d+s ago$/),
      "OK: rules: policy rules and table 51820 in place",
      "OK: firewall: nft table inet egressd in place",
      `OK: proxy: listening on ${lab.addr.gwLan}:1080`,
    ]);
    expect(ok.code).toBe(0);

    // Break the host behind the daemon's back: check goes CRITICAL, naming what is wrong.
    expect((await lab.exec(lab.ns.gw, ["nft", "delete", "table", "inet", "egressd"])).exitCode).toBe(0);
    const broken = await runBinary(["check", "--socket", d.controlPath]);
    expect(broken.stdout).toContain("CRITICAL: firewall: nft table inet egressd missing");
    expect(broken.code).toBe(2);
    // A reconcile (as the timer would run it) repairs it, and check is OK again.
    const pass = await d.control("reconcile");
    expect(pass.ok).toBe(true);
    expect(pass.repairs.map((r: { object: string }) => r.object)).toContain("firewall");
    const repaired = await runBinary(["check", "--socket", d.controlPath]);
    expect(repaired.code).toBe(0);
    const after = await runBinary(["status", "--socket", d.controlPath]);
    expect(after.stdout).toMatch(/reconcile: \d+ runs, [1-9]\d* repairs; last .* ago, ok, [1-9]\d* repair\(s\)/);
    expect(after.stdout).toMatch(/repaired firewall: /);

    // regression: check said OK with the kill switch's route and one policy rule deleted, because
    // "rules in place" only asked whether any rule and any route of ours existed.
    expect((await lab.exec(lab.ns.gw, ["ip", "-4", "rule", "del", "priority", "5000"])).exitCode).toBe(0);
    expect((await lab.exec(lab.ns.gw, ["ip", "-4", "route", "del", "unreachable", "default", "table", "51820", "metric", "4294967295"])).exitCode).toBe(0);
    const holes = await runBinary(["check", "--socket", d.controlPath]);
    expect(holes.stdout).toContain(
      "CRITICAL: rules: missing IPv4 rule priority 5000 fwmark 0xca6d lookup main; IPv4 route unreachable default metric 4294967295\n",
    );
    expect(holes.code).toBe(2);
    const holesStatus = await runBinary(["status", "--socket", d.controlPath]);
    expect(holesStatus.stdout).toContain("rules MISSING, nft table in place\n  missing: IPv4 rule priority 5000");
    const pass2 = await d.control("reconcile");
    expect(pass2.repairs.map((r: { object: string }) => r.object).sort()).toEqual(["routes", "rules"]);
    expect((await runBinary(["check", "--socket", d.controlPath])).code).toBe(0);

    expect(await d.stop()).toBe(0);
    // No daemon: check is UNKNOWN (3), status fails (1), both saying why.
    const gone = await runBinary(["check", "--socket", d.controlPath]);
    expect(gone.code).toBe(3);
    expect(gone.stdout).toMatch(/^UNKNOWN: control socket .* does not exist: is egressd running\?/);
    const noStatus = await runBinary(["status", "--socket", d.controlPath]);
    expect(noStatus.code).toBe(1);
    expect(noStatus.stderr).toContain("does not exist");
  }, 90_000);
});

