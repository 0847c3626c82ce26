// Layer 2: an idle relayed connection survives, and TCP keepalive probes really flow on both of
// the proxy's legs. The proxy has no idle reaper by default, so no clock is shortened here: only
// the kernel's keepalive idle time (--keepalive-idle 1s instead of 60s), which is the same
// setsockopt call. The hour-long hold against microsocks's 15-minute reaper is bench/idle-hold.ts.
import { afterAll, expect, test } from "bun:test";
import { cleanup, echoServer, host, socksConnect, spawnProxy } from "./helpers.ts";

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
  const proxy = await spawnProxy(["--allow-destination", "127.0.0.0/8", "--keepalive-idle", "1s"]);
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
