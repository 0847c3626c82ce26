/**
 * The failover loop's decisions, round by round, with scripted probes and handshakes (the real
 * probe is tested on loopback in test/exits, the real switch in the lab): when it switches, why it
 * says it did, what it reports as down, and that it binds each probe to the exit's own address.
 */
import { describe, expect, test } from "bun:test";
import { FAILOVER_DEFAULTS } from "../../lib/config/schema.ts";
import { FailoverLoop, type ProbedExit } from "../../lib/daemon/failover.ts";
import type { ProbeResult } from "../../lib/exits/probe.ts";
import type { WgDump } from "../../lib/host/wgdump.ts";
import type { Fields, Logger } from "../../lib/log/logger.ts";

const NOW = 1_700_000_000_000;
const EXITS: ProbedExit[] = [
  { name: "a", publicKey: "A", addresses: ["10.100.0.2", "fd00::2"], target: { kind: "tcp", host: "192.0.2.80", port: 443 } },
  { name: "b", publicKey: "B", addresses: ["10.100.1.2"], target: { kind: "tcp", host: "192.0.2.80", port: 443 } },
];

function dump(key: string, handshake: number): WgDump {
  return { interface: { privateKey: "", publicKey: "", listenPort: 1, fwmark: null }, peers: [{ publicKey: key, presharedKey: null, hasPresharedKey: false, endpoint: null, allowedIps: [], latestHandshake: handshake, rxBytes: 0, txBytes: 0, persistentKeepalive: 25 }] } as unknown as WgDump;
}

/** A loop over EXITS whose probe answers from `up` (exit name -> ok?) and records what it was asked. */
function setup(opts: { failback?: "preempt" | "stay" } = {}) {
  const up: Record<string, boolean> = { a: true, b: true };
  const asked: string[] = [];
  const down: string[] = [];
  const lines: { msg: string; fields?: Fields }[] = [];
  const host = {
    active: "a" as string | null,
    switches: [] as (string | null)[],
    async setActive(name: string | null) {
      this.active = name;
      this.switches.push(name);
      return [];
    },
  };
  const log = { debugEnabled: false, debug() {}, info: (msg: string, fields?: Fields) => lines.push({ msg, fields }), warn: (msg: string, fields?: Fields) => lines.push({ msg, fields }), error: (msg: string, fields?: Fields) => lines.push({ msg, fields }) } as unknown as Logger;
  const loop = new FailoverLoop({
    exits: EXITS,
    settings: { ...FAILOVER_DEFAULTS, failback: opts.failback ?? "preempt" },
    host,
    dump: async (exit) => dump(exit === "a" ? "A" : "B", NOW / 1000 - 10),
    onExitDown: (e) => down.push(e),
    log,
    now: () => NOW,
    probe: async (_t, o): Promise<ProbeResult> => {
      asked.push(`${o.localAddress}/${o.timeoutMs}`);
      const name = EXITS.find((e) => e.addresses.includes(o.localAddress!))!.name;
      return up[name] ? { ok: true, latencySeconds: 0.012 } : { ok: false, reason: "no answer within 2000 ms" };
    },
  });
  return { loop, host, up, asked, down, lines };
}

describe("FailoverLoop", () => {
  test("probes each exit from its own address in the target's family, with the configured timeout", async () => {
    const s = setup();
    await s.loop.round();
    expect(s.asked.sort()).toEqual(["10.100.0.2/2000", "10.100.1.2/2000"]);
    expect(s.loop.exits.map((e) => [e.name, e.state, e.probeSeconds])).toEqual([["a", "up", 0.012], ["b", "up", 0.012]]);
    expect(s.host.switches).toEqual([]);
  });

  test("an exit is down after downAfter misses; then the switch, one log line with the reason, and its connections reset", async () => {
    const s = setup();
    await s.loop.round();
    s.up.a = false;
    await s.loop.round();
    await s.loop.round();
    expect(s.host.switches).toEqual([]); // two misses: not yet
    await s.loop.round();
    expect(s.host.switches).toEqual(["b"]);
    expect(s.down).toEqual(["a"]);
    expect(s.loop.failovers).toBe(1);
    const line = s.lines.find((l) => l.msg === "switched exit")!;
    expect(line.fields).toEqual({ from: "a", to: "b", reason: "a is down: probe failed: no answer within 2000 ms" });
    await s.loop.round();
    expect(s.down).toEqual(["a"]); // reported once, not every round
  });

  test("preempt: back to the first exit after upAfter successes", async () => {
    const s = setup();
    await s.loop.round();
    s.up.a = false;
    for (let i = 0; i < 3; i++) await s.loop.round();
    s.up.a = true;
    await s.loop.round();
    await s.loop.round();
    expect(s.host.active).toBe("b");
    await s.loop.round();
    expect(s.host.switches).toEqual(["b", "a"]);
    expect(s.lines.filter((l) => l.msg === "switched exit").at(-1)!.fields!.reason).toContain("failback preempt");
  });

  test("stay: keeps the exit that took over while it is up", async () => {
    const s = setup({ failback: "stay" });
    await s.loop.round();
    s.up.a = false;
    for (let i = 0; i < 3; i++) await s.loop.round();
    s.up.a = true;
    for (let i = 0; i < 5; i++) await s.loop.round();
    expect(s.host.switches).toEqual(["b"]);
  });

  test("every exit down: no exit active (the kill switch holds); the first to come back takes over", async () => {
    const s = setup();
    await s.loop.round();
    s.up.a = false;
    s.up.b = false;
    for (let i = 0; i < 3; i++) await s.loop.round();
    expect(s.host.switches).toEqual([null]);
    expect(s.down.sort()).toEqual(["a", "b"]);
    expect(s.lines.find((l) => l.msg === "switched exit")!.fields!.reason).toContain("no exit is up");
    s.up.b = true;
    for (let i = 0; i < 3; i++) await s.loop.round();
    expect(s.host.switches).toEqual([null, "b"]);
  });

  test("the first exit down at start-up: the first round switches at once (no waiting for downAfter)", async () => {
    const s = setup();
    s.up.a = false;
    await s.loop.round();
    expect(s.host.switches).toEqual(["b"]);
  });

  test("an exit without an address in the target's family is a miss, with the reason", async () => {
    const s = setup();
    const loop = new FailoverLoop({
      exits: [{ ...EXITS[0]!, addresses: ["fd00::2"] }, EXITS[1]!],
      settings: FAILOVER_DEFAULTS,
      host: s.host,
      dump: async (exit) => dump(exit === "a" ? "A" : "B", NOW / 1000 - 10),
      now: () => NOW,
      probe: async () => ({ ok: true, latencySeconds: 0.01 }),
    });
    await loop.round();
    expect(loop.exits[0]).toMatchObject({ state: "down", lastReason: "probe failed: the exit has no tunnel address of the probe target's family" });
  });

  test("a successor loop (a reload with new exits) keeps the health, latency and failover count of the exits probed the same way", async () => {
    const s = setup();
    s.up.a = false;
    await s.loop.round(); // a down, b up: one switch to b
    expect(s.loop.failovers).toBe(1);
    const c: ProbedExit = { name: "c", publicKey: "C", addresses: ["10.100.2.2"], target: EXITS[0]!.target };
    const rekeyed: ProbedExit = { ...EXITS[0]!, publicKey: "A2" };
    const next = new FailoverLoop({ exits: [rekeyed, EXITS[1]!, c], settings: FAILOVER_DEFAULTS, host: s.host, dump: async () => null, carry: s.loop });
    expect(next.failovers).toBe(1);
    expect(next.exits.map((e) => [e.name, e.state, e.probeSeconds])).toEqual([
      ["a", "unknown", null], // a new key: judged afresh
      ["b", "up", 0.012],
      ["c", "unknown", null], // new: judged from its first round
    ]);
  });
});
