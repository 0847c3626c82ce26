// Layer 2: admission under a handshake flood, with real sockets on loopback. Clients that send
// one byte and stall must not lock out a client that completes its handshake.
import { afterEach, expect, test } from "bun:test";
import { parseCidr } from "../../lib/net/ip.ts";
import { ProxyServer } from "../../lib/proxy/server.ts";
import { cleanup, echoServer, host, onCleanup, RawConn, socksConnect } from "./helpers.ts";

afterEach(cleanup);

/** Milliseconds until a real client gets through to the echo server, trying every 50 ms. */
async function lockout(proxyPort: number, echoPort: number, giveUpMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < giveUpMs) {
    try {
      const { conn, reply } = await socksConnect(proxyPort, host("127.0.0.1"), echoPort);
      if (reply.reply === 0) {
        conn.write("x");
        await conn.readBytes(1, 1000);
        conn.end();
        return Math.round(performance.now() - t0);
      }
    } catch {
      // closed at accept: try again
    }
    await Bun.sleep(50);
  }
  return Infinity;
}

// Regression: 50 clients that each sent one byte and stalled took every slot of a small
// maxConnections, and every other client was closed at accept until the handshake deadline.
test("a handshake flood does not lock out a client that completes its handshake", async () => {
  const echo = echoServer();
  const handshakeTimeoutMs = 5000;
  const server = new ProxyServer({
    listeners: [{ host: "127.0.0.1", port: 0 }],
    allowClients: [parseCidr("127.0.0.0/8")],
    allowDestinations: [parseCidr("127.0.0.0/8")],
    maxConnections: 40,
    handshakeTimeoutMs,
  });
  server.start();
  onCleanup(() => server.stop());
  const port = Number(/:(\d+)$/.exec(server.listening[0]!)![1]);
  const stallers = await Promise.all(Array.from({ length: 50 }, () => RawConn.connect(port)));
  for (const s of stallers) s.write(new Uint8Array([5])); // the first byte of a greeting, then nothing
  await Bun.sleep(50);
  const ms = await lockout(port, echo.port, handshakeTimeoutMs * 2);
  console.log(`handshake flood: a good client was locked out for ${ms} ms (handshake deadline ${handshakeTimeoutMs} ms)`);
  // Well before the stalled handshakes time out.
  expect(ms).toBeLessThan(handshakeTimeoutMs / 2);
  expect(server.stats.handshakeEvictions).toBeGreaterThan(0);
  expect(server.stats.handshakeTimeouts).toBe(0);
  expect(server.stats.connectionsTotal.ok).toBe(1);
}, 30_000);
