// Layer 2: an idle relayed connection survives, and TCP keepalive probes really flow on both of
// the proxy's legs. Layer 3: the probe schedule decides whether an idle connection outlives an
// outage of its path. The proxy has no idle reaper by default, so no clock is shortened here: only
// the kernel's keepalive timers (--keepalive-idle 1s and --keepalive-interval 1s instead of 60s
// and 15s), which are the same setsockopt calls. The hour-long hold against microsocks's 15-minute reaper is bench/idle-hold.ts.
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { BUN, cleanup, echoServer, host, socksConnect, spawnProxy } from "./helpers.ts";

afterAll(cleanup);

interface SsSocket {
  readonly line: string;
  readonly timer: string | undefined;
  readonly lastsnd: number;
  readonly lastack: number;
}

/** The proxy's socket from `local` to `peer` as `ss -tnoi` shows it. */
async function ss(local: number, peer: number): Promise<SsSocket> {
  const proc = Bun.spawn(["ss", "-tnoiH", "state", "established", `( sport = :${local} and dport = :${peer} )`], { stdout: "pipe" });
  const out = await new Response(proc.stdout).text();
  await proc.exited;
  const num = (k: string) => Number(new RegExp(`\\b${k}:(\\d+)`).exec(out)?.[1] ?? NaN);
  return { line: out.replace(/\s+/g, " ").trim(), timer: /timer:\((\w+)/.exec(out)?.[1], lastsnd: num("lastsnd"), lastack: num("lastack") };
}

test("an idle connection stays up while keepalive probes are answered on both legs", async () => {
  const echo = echoServer();
  const proxy = await spawnProxy(["--allow-destination", "127.0.0.0/8", "--keepalive-idle", "1s", "--keepalive-interval", "1s"]);
  const { conn, reply } = await socksConnect(proxy.port, host("127.0.0.1"), echo.port);
  conn.write("before");
  await conn.readBytes(6);
  await Bun.sleep(4500); // idle: about three probes per leg
  const clientLeg = await ss(proxy.port, conn.socket.localPort);
  const targetLeg = await ss(reply.port, echo.port);
  for (const leg of [clientLeg, targetLeg]) {
    expect({ timer: leg.timer, line: leg.line }).toEqual({ timer: "keepalive", line: leg.line });
    // No data for 4.5 s, yet an ACK came back within the last ~1 s: that ACK answered a probe.
    expect(leg.lastsnd).toBeGreaterThan(4000);
    expect(leg.lastack).toBeLessThan(2000);
  }
  conn.write("after");
  expect(new TextDecoder().decode(await conn.readBytes(5))).toBe("after");
  expect(conn.eof).toBe(false);
}, 20_000);

describe("a path outage while a connection is idle (own network namespaces, nftables drop)", () => {
  const namespaces: string[] = [];
  afterAll(async () => {
    for (const ns of namespaces) await Bun.spawn(["ip", "netns", "del", ns]).exited;
  });

  /** Runs keepalive-outage.ts in a fresh namespace with only loopback; returns its verdict. */
  async function outage(schedule: [idle: string, interval: string, count: string], outageMs: number): Promise<{ survived: boolean; closedAtMs: number | null }> {
    // The lab's naming (egt-<pid>-<seq>-...), so that cleanupStaleLabs removes it if this process dies.
    const ns = `egt-${process.pid}-${900 + namespaces.length}-ka`;
    namespaces.push(ns);
    for (const argv of [["ip", "netns", "add", ns], ["ip", "-n", ns, "link", "set", "lo", "up"]]) {
      expect(await Bun.spawn(argv).exited).toBe(0);
    }
    const p = Bun.spawn(["ip", "netns", "exec", ns, BUN, join(import.meta.dir, "keepalive-outage.ts"), ...schedule, String(outageMs)], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`keepalive-outage.ts exited ${code}: ${err}`);
    return JSON.parse(out);
  }

  // Regression: Bun's setKeepAlive fixes the probes at 1 s x 10, so an idle connection whose path
  // went dark for more than ~11 s was reset although the path came back. Both runs go at once.
  test("a 14 s outage: survived with 2 s x 8 probes; reset with Bun's fixed 1 s x 10", async () => {
    const [ours, buns] = await Promise.all([outage(["1s", "2s", "8"], 14_000), outage(["1s", "1s", "10"], 14_000)]);
    expect(ours).toEqual({ survived: true, closedAtMs: null });
    expect(buns.survived).toBe(false);
    // Reset after the idle second and ten unanswered probes a second apart, before the path came back.
    expect(buns.closedAtMs).toBeGreaterThanOrEqual(9_000);
    expect(buns.closedAtMs).toBeLessThan(14_000);
  }, 40_000);
});
