// The splice relay engine in process: the tunnel really leaves Bun for the relay thread (its pipes
// appear in /proc/self/fd), the counters are exact, and the idle timeout and shutdown reach it.
// The behaviour of the relay itself (half-close, resets, backpressure, 1 GiB checksums, keepalive)
// is covered by the rest of test/proxy, which runs on the default engine (splice).
import { afterEach, expect, test } from "bun:test";
import { readdirSync, readlinkSync } from "node:fs";
import { parseCidr } from "../../lib/net/ip.ts";
import { ProxyServer, type ProxyServerOptions } from "../../lib/proxy/server.ts";
import { Reply } from "../../lib/proxy/socks5.ts";
import { cleanup, echoServer, host, onCleanup, socksConnect, until } from "./helpers.ts";

afterEach(cleanup);

const LOOPBACK = [parseCidr("127.0.0.0/8")];

function start(opts: Partial<ProxyServerOptions> = {}): { server: ProxyServer; port: number } {
  const server = new ProxyServer({ listeners: [{ host: "127.0.0.1", port: 0 }], allowClients: LOOPBACK, allowDestinations: LOOPBACK, relay: "splice", ...opts });
  server.start();
  onCleanup(() => server.stop());
  return { server, port: Number(/:(\d+)$/.exec(server.listening[0]!)![1]) };
}

function pipes(): number {
  let n = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith("pipe:")) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** One tunnel with an echo through it; the first starts the relay thread and stays on the JS relay. */
async function warmUp(port: number, echoPort: number): Promise<void> {
  const { conn } = await socksConnect(port, host("127.0.0.1"), echoPort);
  conn.write("w");
  await conn.readBytes(1);
  conn.end();
  await Bun.sleep(200);
}

test("an established tunnel moves to the relay thread: two pipes more while it lasts, exact counters after", async () => {
  const echo = echoServer();
  const { server, port } = start();
  await warmUp(port, echo.port);
  const before = pipes();
  const up0 = server.stats.bytesClientToTarget;
  const down0 = server.stats.bytesTargetToClient;
  const { conn, reply } = await socksConnect(port, host("127.0.0.1"), echo.port);
  expect(reply.reply).toBe(Reply.succeeded);
  const payload = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
  conn.write(payload);
  const back = await conn.readBytes(payload.length, 10_000);
  expect(Buffer.compare(Buffer.from(back), Buffer.from(payload))).toBe(0);
  expect(pipes() - before).toBe(4); // a pipe each way, two fds each, held by the relay thread
  conn.shutdown();
  expect((await conn.readToEnd()).length).toBe(0); // the echo server's FIN came back through
  await until(() => server.stats.connectionsActive === 0);
  expect(server.stats.bytesClientToTarget - up0).toBe(payload.length);
  expect(server.stats.bytesTargetToClient - down0).toBe(payload.length);
  expect(server.stats.byProtocol.socks5.bytesClientToTarget).toBe(server.stats.bytesClientToTarget);
  await until(() => pipes() === before);
});

test("the idle timeout resets a tunnel on the relay thread", async () => {
  const echo = echoServer();
  const { server, port } = start({ idleTimeoutMs: 300 });
  await warmUp(port, echo.port);
  const { conn } = await socksConnect(port, host("127.0.0.1"), echo.port);
  conn.write("x");
  await conn.readBytes(1);
  const t0 = performance.now();
  await conn.closed;
  expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
  await until(() => server.stats.connectionsActive === 0);
});

test("stop() resets tunnels on the relay thread once the drain time is up", async () => {
  const echo = echoServer();
  const { server, port } = start();
  await warmUp(port, echo.port);
  const { conn } = await socksConnect(port, host("127.0.0.1"), echo.port);
  conn.write("x");
  await conn.readBytes(1);
  await server.stop({ drainMs: 200 });
  await conn.closed;
  expect(server.stats.connectionsActive).toBe(0);
});
