/**
 * `egressd status` rendering and `egressd check` judgement, as pure tables over a DaemonStatus; then
 * the compiled `egressd check` against a control socket that serves those statuses, for the exit codes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlServer } from "../../lib/daemon/control.ts";
import {
  type CheckResult,
  type CheckStateName,
  type DaemonStatus,
  type ExitStatusLine,
  evaluateHealth,
  formatAge,
  formatBytes,
  renderStatus,
  worstState,
} from "../../lib/daemon/status.ts";
import { pinnedTo } from "../../lib/daemon/views.ts";
import { runBinary } from "./helpers.ts";

const NOW = 1_800_000_000_000;
const EXIT_KEY = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";
const GW_KEY = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";

/** A healthy daemon whose latest handshake was `handshakeAge` seconds ago (null: never). */
function healthy(handshakeAge: number | null = 10): DaemonStatus {
  return {
    version: "0.1.0",
    pid: 4242,
    startedAt: NOW - 3_723_000,
    now: NOW,
    tunnel: { interface: "wg-egress", implementation: "kernel", up: true, publicKey: GW_KEY, listenPort: 51820, addresses: ["10.100.0.2/32"] },
    peers: [
      {
        name: "hetzner",
        publicKey: EXIT_KEY,
        endpoint: "198.51.100.2:51820",
        allowedIps: ["0.0.0.0/0", "::/0"],
        latestHandshake: handshakeAge === null ? 0 : NOW / 1000 - handshakeAge,
        rxBytes: 1536,
        txBytes: 5 * 1024 * 1024,
        persistentKeepalive: 25,
      },
    ],
    proxy: { listeners: ["10.1.0.1:1080"], active: 3, total: 120, bytesUp: 100, bytesDown: 2048, refusals: { notAllowed: 2, hostUnreachable: 0 } },
    routing: { fwmark: 0xca6c, table: 51820, rulesInPlace: true, firewallInPlace: true },
    killSwitch: { enabled: true, droppedPackets: 0, droppedBytes: 0 },
    reconcile: { runs: 1860, repairs: 1, last: { at: NOW - 1000, durationMs: 12, ok: true, error: null, repairs: [] } },
    metrics: { listen: "http://10.1.0.1:9586" },
  };
}

const states = (rs: CheckResult[]): Record<string, CheckStateName> => Object.fromEntries(rs.map((r) => [r.name, r.state]));

describe("evaluateHealth", () => {
  test.each([
    // handshake age (s), state of the handshake check, worst state
    [0, "ok", "ok"],
    [179, "ok", "ok"],
    [180, "ok", "ok"],
    [181, "warning", "warning"],
    [300, "warning", "warning"],
    [301, "critical", "critical"],
    [86_400, "critical", "critical"],
    [null, "critical", "critical"],
  ] as [number | null, CheckStateName, CheckStateName][])("handshake %p s ago -> %s", (age, state, worst) => {
    const rs = evaluateHealth(healthy(age));
    expect(states(rs).handshake).toBe(state);
    expect(worstState(rs)).toBe(worst);
  });

  test("names the exit and the age", () => {
    const rs = evaluateHealth(healthy(181));
    expect(rs.find((r) => r.name === "handshake")!.message).toBe("latest handshake with hetzner 181s ago (> 180s)");
    expect(evaluateHealth(healthy(null)).find((r) => r.name === "handshake")!.message).toBe("no handshake with hetzner yet");
  });

  test.each([
    ["the interface is down", (s: DaemonStatus) => (s.tunnel.up = false), "interface", "wg-egress is down or missing"],
    ["the exit peer is missing", (s: DaemonStatus) => (s.peers = []), "handshake", "the exit peer is not configured"],
    ["the rules are missing", (s: DaemonStatus) => (s.routing.rulesInPlace = false), "rules", "policy rules or table 51820 routes missing"],
    ["the nft table is missing", (s: DaemonStatus) => (s.routing.firewallInPlace = false), "firewall", "nft table inet egressd missing"],
    ["the proxy is not listening", (s: DaemonStatus) => (s.proxy.listeners = []), "proxy", "the proxy is not listening"],
  ] as [string, (s: DaemonStatus) => void, string, string][])("%s -> critical", (_name, breakIt, check, message) => {
    const s = healthy();
    breakIt(s);
    const rs = evaluateHealth(s);
    expect(rs.find((r) => r.name === check)).toEqual({ name: check, state: "critical", message });
    expect(worstState(rs)).toBe("critical");
    // Only that check fails.
    expect(rs.filter((r) => r.state !== "ok").map((r) => r.name)).toEqual([check]);
  });

  // Regression: the handshake check looked at whichever peer `wg show dump` listed first.
  test("judges the exit's handshake although a stranger peer is listed first", () => {
    const s = healthy(10);
    const stranger = { ...s.peers[0]!, name: "(unknown)", isExit: false, publicKey: GW_KEY, latestHandshake: 0 };
    s.peers = [stranger, { ...s.peers[0]!, isExit: true }];
    expect(evaluateHealth(s).find((r) => r.name === "handshake")).toEqual({ name: "handshake", state: "ok", message: "latest handshake with hetzner 10s ago" });
    s.peers = [stranger];
    expect(evaluateHealth(s).find((r) => r.name === "handshake")).toEqual({ name: "handshake", state: "critical", message: "the exit peer is not configured" });
  });

  test("names what is missing when the daemon says", () => {
    const s = healthy();
    s.routing.rulesInPlace = false;
    s.routing.missing = ["IPv4 route unreachable default metric 4294967295", "IPv6 rule priority 5000 fwmark 0xca6d lookup main"];
    expect(evaluateHealth(s).find((r) => r.name === "rules")).toEqual({
      name: "rules",
      state: "critical",
      message: "missing IPv4 route unreachable default metric 4294967295; IPv6 rule priority 5000 fwmark 0xca6d lookup main",
    });
    expect(renderStatus(s)).toContain(
      "rules MISSING, nft table in place\n  missing: IPv4 route unreachable default metric 4294967295\n  missing: IPv6 rule priority 5000 fwmark 0xca6d lookup main\n",
    );
  });

  test("a healthy daemon: five checks, all ok, in a fixed order", () => {
    const rs = evaluateHealth(healthy());
    expect(rs.map((r) => `${r.state} ${r.name}`)).toEqual(["ok interface", "ok handshake", "ok rules", "ok firewall", "ok proxy"]);
  });
});

describe("worstState", () => {
  const r = (state: CheckResult["state"]): CheckResult => ({ name: "x", state, message: "" });
  test.each([
    [[], "ok"],
    [["ok", "ok"], "ok"],
    [["ok", "warning"], "warning"],
    [["critical", "warning", "ok"], "critical"],
    [["warning", "unknown", "critical"], "unknown"],
  ] as [CheckResult["state"][], CheckStateName][])("%p -> %s", (list, want) => {
    expect(worstState(list.map(r))).toBe(want);
  });
});

describe("formatAge and formatBytes, as wg show prints them", () => {
  test.each([
    [0, "0 seconds"],
    [1, "1 second"],
    [59, "59 seconds"],
    [60, "1 minute"],
    [65, "1 minute, 5 seconds"],
    [3723, "1 hour, 2 minutes, 3 seconds"],
    [90_061, "1 day, 1 hour, 1 minute, 1 second"],
    [172_800, "2 days"],
  ])("%p s -> %s", (s, want) => expect(formatAge(s)).toBe(want));

  test.each([
    [0, "0 B"],
    [1023, "1023 B"],
    [1024, "1.00 KiB"],
    [1536, "1.50 KiB"],
    [5 * 1024 * 1024, "5.00 MiB"],
    [3 * 1024 ** 4, "3.00 TiB"],
    [2 * 1024 ** 5, "2048.00 TiB"],
  ])("%p -> %s", (n, want) => expect(formatBytes(n)).toBe(want));
});

describe("the exits' lines", () => {
  const exit = (name: string, active: boolean, pinned?: string[]): ExitStatusLine => ({
    name, interface: `wg-${name}`, active, health: "up", lastReason: "", probeSeconds: 0.012, linkUp: true, latestHandshake: 0, ...(pinned ? { pinned } : {}),
  });

  test("name what is pinned to each exit; nothing for an exit without pins or a daemon that predates them", () => {
    const s = healthy();
    s.exits = [exit("a", true, []), exit("b", false, ["listener 10.1.0.1:1081", "user alice"]), exit("c", false)];
    const text = renderStatus(s);
    expect(text).toContain("exits: a active\n");
    expect(text).toMatch(/\n {2}\* a via wg-a: up, handshake never, probe 12 ms\n/);
    expect(text).toMatch(/\n {4}b via wg-b: up, handshake never, probe 12 ms; pinned: listener 10\.1\.0\.1:1081, user alice\n/);
    expect(text).toMatch(/\n {4}c via wg-c: up, handshake never, probe 12 ms\n/);
  });

  test.each([
    ["no pins", {}, null, "b", []],
    ["a listener", { "10.1.0.1:1081": "b" }, null, "b", ["listener 10.1.0.1:1081"]],
    ["another exit's listener", { "10.1.0.1:1081": "a" }, null, "b", []],
    ["the one-account form", {}, { username: "alice", passwordFile: "/p", exit: "b" }, "b", ["user alice"]],
    ["an unpinned account", {}, { username: "alice", passwordFile: "/p" }, "b", []],
    [
      "listeners first, then users, in config order",
      { "10.1.0.1:1081": "b", "10.1.0.1:1082": "a" },
      { users: [{ username: "carol", passwordFile: "/c", exit: "b" }, { username: "bob", passwordFile: "/b" }, { username: "alice", passwordFile: "/a", exit: "b" }] },
      "b",
      ["listener 10.1.0.1:1081", "user carol", "user alice"],
    ],
  ])("pinnedTo: %s", (_, pinnedListeners, auth, name, want) => {
    expect(pinnedTo({ proxy: { pinnedListeners, auth: auth as any } }, name)).toEqual(want);
  });
});

describe("renderStatus", () => {
  test("UDP associations get a line once there has been one, and none before", () => {
    const s = healthy(65);
    s.proxy.udp = { active: 0, total: 0, datagramsUp: 0, datagramsDown: 0, dropped: 0 };
    expect(renderStatus(s)).not.toContain("  udp:");
    s.proxy.udp = { active: 2, total: 9, datagramsUp: 40, datagramsDown: 38, dropped: 3 };
    expect(renderStatus(s)).toContain("  relayed: 100 B up, 2.00 KiB down\n  udp: 2 associations active, 9 total; 40 datagrams up, 38 down, 3 dropped\n");
  });

  test("a healthy daemon", () => {
    expect(renderStatus(healthy(65))).toBe(
      [
        "egressd 0.1.0, pid 4242, up 1 hour, 2 minutes, 3 seconds",
        "",
        "tunnel: wg-egress (kernel) up",
        `  public key: ${GW_KEY}`,
        "  listening port: 51820",
        "  addresses: 10.100.0.2/32",
        "",
        `peer: ${EXIT_KEY} (hetzner)`,
        "  endpoint: 198.51.100.2:51820",
        "  allowed ips: 0.0.0.0/0, ::/0",
        "  latest handshake: 1 minute, 5 seconds ago",
        "  transfer: 1.50 KiB received, 5.00 MiB sent",
        "  persistent keepalive: every 25 seconds",
        "",
        "proxy: 10.1.0.1:1080",
        "  connections: 3 active, 120 total",
        "  relayed: 100 B up, 2.00 KiB down",
        "  refused: notAllowed 2",
        "",
        "routing: fwmark 0xca6c -> table 51820, rules in place, nft table in place",
        "kill switch: on, leak guard dropped 0 packets (0 B)",
        "reconcile: 1860 runs, 1 repairs; last 1 second ago, ok, 0 repair(s)",
        "metrics: http://10.1.0.1:9586",
        "",
      ].join("\n"),
    );
  });

  test("shouts what is wrong", () => {
    const s = healthy(null);
    s.tunnel = { ...s.tunnel, up: false, implementation: null, publicKey: null, listenPort: null };
    s.proxy.listeners = [];
    s.proxy.refusals = {};
    s.routing.rulesInPlace = false;
    s.routing.firewallInPlace = false;
    s.killSwitch = { enabled: false, droppedPackets: 7, droppedBytes: 420 };
    s.reconcile.last = { at: NOW - 2000, durationMs: 5, ok: false, error: "nft: permission denied", repairs: [] };
    s.peers[0]!.endpoint = null;
    s.peers[0]!.persistentKeepalive = 0;
    s.metrics.listen = null;
    const text = renderStatus(s);
    expect(text).toContain("tunnel: wg-egress (not created) DOWN\n");
    expect(text).not.toContain("public key: \n");
    expect(text).toContain("  endpoint: (none)\n");
    expect(text).toContain("  latest handshake: never\n");
    expect(text).not.toContain("persistent keepalive");
    expect(text).toContain("proxy: NOT LISTENING\n");
    expect(text).toContain("  refused: none\n");
    expect(text).toContain("rules MISSING, nft table MISSING");
    expect(text).toContain("kill switch: OFF, leak guard dropped 7 packets (420 B)");
    expect(text).toContain("last 2 seconds ago, FAILED: nft: permission denied");
    expect(text).toContain("metrics: off\n");
  });

  test("lists the last pass's repairs; before any pass says so", () => {
    const s = healthy();
    s.reconcile.last!.repairs = [{ object: "rules", detail: "add-rule (rule priority 5000 is missing)" }];
    expect(renderStatus(s)).toContain("ok, 1 repair(s)\n  repaired rules: add-rule (rule priority 5000 is missing)\n");
    s.reconcile.last = null;
    expect(renderStatus(s)).toContain("reconcile: 1860 runs, 1 repairs; last not yet\n");
  });
});

describe("egressd check (compiled) against a control socket serving a status", () => {
  let dir: string;
  let server: ControlServer;
  let current: DaemonStatus = healthy();
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "egressd-check-"));
    // Served as if taken now: the same ages, relative to the real clock the CLI does not read anyway.
    const shift = (t: number) => (t === 0 ? 0 : t - NOW / 1000 + Date.now() / 1000);
    server = new ControlServer(join(dir, "control.sock"), {
      status: () => ({ ...current, now: Date.now(), peers: current.peers.map((p) => ({ ...p, latestHandshake: shift(p.latestHandshake) })) }),
    });
    await server.start();
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test.each([
    ["healthy", () => healthy(5), 0, /^OK: interface: wg-egress is up \(kernel\)\nOK: handshake: latest handshake with hetzner \ds ago\n/],
    ["a stale handshake", () => healthy(200), 1, /\nWARNING: handshake: latest handshake with hetzner 20\ds ago \(> 180s\)\n/],
    ["a dead handshake", () => healthy(400), 2, /\nCRITICAL: handshake: latest handshake with hetzner 40\ds ago \(> 300s\)\n/],
    ["no listener", () => ({ ...healthy(), proxy: { ...healthy().proxy, listeners: [] } }), 2, /\nCRITICAL: proxy: the proxy is not listening\n$/],
  ] as [string, () => DaemonStatus, number, RegExp][])("%s: exit %p", async (_name, make, code, out) => {
    current = make();
    const r = await runBinary(["check", "--socket", server.path]);
    expect(r.stdout).toMatch(out);
    expect(r.stdout.trim().split("\n").length).toBe(5); // one line per check
    expect(r.code).toBe(code);
  });

  test("no daemon: UNKNOWN, exit 3", async () => {
    const r = await runBinary(["check", "--socket", join(dir, "none.sock")]);
    expect(r.stdout).toBe(`UNKNOWN: control socket ${join(dir, "none.sock")} does not exist: is egressd running?\n`);
    expect(r.code).toBe(3);
  });

  test("status --json prints what the daemon said; the text form renders it", async () => {
    current = healthy();
    const j = await runBinary(["status", "--json", "--socket", server.path]);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout).proxy).toEqual(healthy().proxy);
    const t = await runBinary(["status", "--socket", server.path]);
    expect(t.stdout).toStartWith("egressd 0.1.0, pid 4242, up ");
    expect(t.stdout).toContain("proxy: 10.1.0.1:1080\n");
  });
});
