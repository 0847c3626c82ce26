/**
 * Failover with the compiled egressd and two exits, in the lab (`exits: 2`), with the default
 * failover settings (probe every 3 s, timeout 2 s, down after 3 misses, up after 3 successes,
 * preempt). curl in the client namespace asks the lab's echo server, through the proxy, which
 * address it came from: exit A is 198.51.100.2, exit B 203.0.113.130, home 192.0.2.2.
 *
 * Two runs kill exit A: first its UDP is dropped (nft in A's namespace), then its WireGuard stops
 * (the interface down: wireguard-go closes its socket). Each measures the time until new connections
 * leave by B and, once A is back, until they return to A, and captures the gateway's WAN throughout:
 * no TCP to the echo server may leave it (a leak of the proxy's traffic), while the unmarked
 * control's does (the positive control). A listener pinned to A shows A's address or fails, never
 * B's or home's; a connection held open through A is reset once A is declared down.
 *
 * The figures are printed (`failover:`), not asserted: the machine may be loaded. The polls only
 * give up after a minute, which no working failover needs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLab, labUnsupported, type Lab } from "../lab/index.ts";
import { dropWireguardUdp } from "../lab/outage.ts";
import { type LabDaemon, poll, removeDaemonDirs, startLabDaemon, unmarkedControl, useLabExits, whoamiThrough } from "./helpers.ts";

const skip = labUnsupported();
const name = (n: string) => (skip ? `${n} [skipped: ${skip}]` : n);
const ECHO = 8080;
const PROBE = 8081;
const CONTROL = 8082;
const HOLD = 8083;
const A_WAN = "198.51.100.2";
const B_WAN = "203.0.113.130";

let lab: Lab;
let daemon: LabDaemon | null = null;

beforeAll(async () => {
  if (skip) return;
  lab = await createLab({ prefix: "egdfo", exits: 2 });
  await lab.startEchoServer(ECHO);
  await lab.startEchoServer(PROBE);
  await lab.startEchoServer(CONTROL);
  // Holds every connection open and answers nothing (no child process that would outlive the lab).
  lab.spawn(lab.ns.inet, ["ncat", "-l", "-k", "--recv-only", "-p", String(HOLD)]);
  daemon = await startLabDaemon(lab, {
    config: (c) => {
      useLabExits(c, lab, { count: 2, probePort: PROBE });
      c.proxy.listen = [`${lab.addr.gwLan}:1080`, `${lab.addr.gwLan}:1081`];
      c.proxy.pinnedListeners = { [`${lab.addr.gwLan}:1081`]: "lab-exit" };
    },
  });
}, 90_000);

afterAll(async () => {
  const t = performance.now();
  if (daemon) {
    const code = await daemon.stop();
    console.log(`failover: daemon stopped with ${code} after ${((performance.now() - t) / 1000).toFixed(1)} s`);
    if (performance.now() - t > 20_000) console.log(daemon.logText().split("\n").slice(-15).join("\n"));
  }
  console.log(`failover: lab destroy starts at ${((performance.now() - t) / 1000).toFixed(1)} s`);
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

/**
 * Polls new connections through :1080 until they show `wan` (each attempt gives up after 1 s, so the
 * figure is within about a second of the switch); returns the seconds it took from `since`.
 * Meanwhile the pinned listener is tried in a loop of its own, and what it showed is collected.
 */
async function until(wan: string, since: number, what: string, pinnedSeen: Set<string>): Promise<number> {
  let done = false;
  const pinned = (async () => {
    while (!done) pinnedSeen.add((await through(1081, 2)) || "(failed)");
  })();
  try {
    await poll(async () => (await through(1080, 1)) === wan, 60_000, what);
    return (performance.now() - since) / 1000;
  } finally {
    done = true;
    await pinned;
  }
}

async function outage(kind: "udp" | "wireguard", on: boolean): Promise<void> {
  const a = lab.exits[0]!;
  if (kind === "udp") {
    await dropWireguardUdp(lab, a.ns, on);
  } else {
    await lab.exec(a.ns, ["ip", "link", "set", "dev", a.wg, on ? "down" : "up"]);
  }
}

describe.skipIf(skip !== null)("failover between two exits (compiled egressd)", () => {
  test(name("both exits come up; the first carries new connections; status lists both"), async () => {
    await poll(async () => (await through(1080)) === A_WAN, 30_000, "traffic through exit A");
    expect(await through(1081)).toBe(A_WAN);
    const s = await daemon!.control("status");
    expect(s.exits.map((e: any) => [e.name, e.active])).toEqual([["lab-exit", true], ["lab-exit2", false]]);
    await poll(async () => (await daemon!.control("status")).exits.every((e: any) => e.health === "up"), 30_000, "both exits up");
  }, 60_000);

  for (const kind of ["udp", "wireguard"] as const) {
    test(name(`exit A's ${kind === "udp" ? "UDP dropped" : "WireGuard stopped"}: new connections move to B, return after A is back; nothing leaks`), async () => {
      const cap = await lab.capture(lab.ns.gw, "wan", `tcp and host ${lab.addr.host4}`);
      // A connection held open through A: it must be reset once A is declared down.
      const holder = await poll(async () => {
        const h = lab.spawn(lab.ns.client, ["ncat", "--recv-only", "--proxy", `${lab.addr.gwLan}:1080`, "--proxy-type", "socks5", lab.addr.host4, String(HOLD)]);
        await Bun.sleep(1000);
        return h.exitStatus === null ? h : false;
      }, 20_000, "a connection held open through exit A");
      const from = daemon!.logs.length;
      const pinnedSeen = new Set<string>();
      const t0 = performance.now();
      await outage(kind, true);
      const down = await until(B_WAN, t0, "new connections through exit B", pinnedSeen);
      await poll(() => holder.exitStatus !== null, 60_000, "the held connection through A to be reset");
      const reset = (performance.now() - t0) / 1000;
      const line = await daemon!.waitLog((l) => l.msg === "switched exit", 10_000, "the switch's log line", from);
      expect(line).toMatchObject({ from: "lab-exit", to: "lab-exit2" });
      expect(String(line.reason)).toContain("lab-exit is down");
      expect(await control()).toBe(lab.addr.gwWan4); // positive control, during the outage
      const t1 = performance.now();
      await outage(kind, false);
      const back = await until(A_WAN, t1, "new connections back through exit A (preempt)", pinnedSeen);
      const { lines } = await cap.stop();
      console.log(`failover: ${kind}: to B after ${down.toFixed(1)} s, held connection reset after ${reset.toFixed(1)} s, back to A ${back.toFixed(1)} s after restore`);
      console.log(`failover: ${kind}: switch logged as ${JSON.stringify(line)}`);
      const leaks = lines.filter((l) => l.includes(`.${ECHO}:`) || l.includes(`.${ECHO} `) || l.includes(`.${HOLD}:`));
      if (leaks.length) console.log(`failover: ${kind}: WAN lines:\n${leaks.join("\n")}`);
      // The pinned listener showed A's address or failed: never B's, never home's.
      expect([...pinnedSeen].filter((s) => s !== A_WAN && s !== "(failed)")).toEqual([]);
      expect(pinnedSeen.has("(failed)")).toBe(true);
      expect(lines.filter((l) => l.includes(`.${ECHO}:`) || l.includes(`.${ECHO} `) || l.includes(`.${HOLD}:`)).length).toBe(0);
      expect(lines.filter((l) => l.includes(`.${CONTROL}:`) || l.includes(`.${CONTROL} `)).length).toBeGreaterThan(0);
      const m = (await lab.exec(lab.ns.client, ["curl", "-sS", "-m", "5", `http://${lab.addr.gwLan}:9586/metrics`])).stdout;
      expect(m).toContain('egressd_exit_active{exit="lab-exit"} 1');
      expect(m).toContain('egressd_exit_active{exit="lab-exit2"} 0');
      expect(m).toMatch(/egressd_exit_failovers_total [1-9]/);
      expect(m).toContain('friendly_name="lab-exit2"');
    }, 180_000);
  }

  test(name("both exits down: every connection fails, pinned or not; nothing leaks"), async () => {
    const cap = await lab.capture(lab.ns.gw, "wan", `tcp and host ${lab.addr.host4}`);
    await outage("udp", true);
    await dropWireguardUdp(lab, lab.exits[1]!.ns, true);
    try {
      await poll(async () => (await daemon!.control("status")).exits.every((e: any) => e.health === "down"), 60_000, "both exits down");
      expect((await daemon!.control("status")).exits.some((e: any) => e.active)).toBe(false);
      for (let i = 0; i < 3; i++) {
        expect(await through(1080)).toBe("");
        expect(await through(1081)).toBe("");
      }
      expect(await control()).toBe(lab.addr.gwWan4);
    } finally {
      await outage("udp", false);
      await dropWireguardUdp(lab, lab.exits[1]!.ns, false);
    }
    const { lines } = await cap.stop();
    expect(lines.filter((l) => l.includes(`.${ECHO}:`) || l.includes(`.${ECHO} `)).length).toBe(0);
    expect(lines.filter((l) => l.includes(`.${CONTROL}:`) || l.includes(`.${CONTROL} `)).length).toBeGreaterThan(0);
    await poll(async () => (await through(1080)) === A_WAN, 60_000, "traffic through A after both are back");
  }, 180_000);
});
