/**
 * Pinned listeners and resetting what left by an exit, on loopback: a pinned listener's outbound
 * socket binds its source address (an exit's tunnel address in production, 127.0.0.2 here), a
 * family the pin has no address for fails instead of dialing unbound, and `resetFrom` ends exactly
 * the connections whose outbound leg left from the given addresses.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { parseCidr } from "../../lib/net/ip.ts";
import { ProxyServer } from "../../lib/proxy/server.ts";
import { Reply } from "../../lib/proxy/socks5.ts";
import { cleanup, host, onCleanup, socksConnect, until } from "./helpers.ts";

afterEach(cleanup);

const LOOPBACK = [parseCidr("127.0.0.0/8"), parseCidr("::1/128")];

/** A free TCP port on 127.0.0.1 (a pinned listener is keyed by its address, so port 0 will not do). */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** A server that records the address each connection came from and keeps it open. */
function sourceRecorder(): { port: number; sources: string[]; open: () => number } {
  const sources: string[] = [];
  let open = 0;
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        sources.push(s.remoteAddress);
        open++;
      },
      data() {},
      close() {
        open--;
      },
    },
  });
  onCleanup(() => l.stop(true));
  return { port: l.port, sources, open: () => open };
}

function start(pinned: Map<string, { 4?: string; 6?: string }>): { plain: number; pinnedPort: number; server: ProxyServer } {
  const plain = freePort();
  const pinnedPort = freePort();
  const server = new ProxyServer({
    listeners: [{ host: "127.0.0.1", port: plain }, { host: "127.0.0.1", port: pinnedPort }],
    allowClients: LOOPBACK,
    allowDestinations: LOOPBACK,
    pinned: new Map([...pinned].map(([k, v]) => [k.replace("PORT", String(pinnedPort)), v])),
  });
  server.start();
  onCleanup(() => server.stop());
  return { plain, pinnedPort, server };
}

describe("pinned listeners", () => {
  test("the outbound socket of a pinned listener binds the pin's address; the other listener's does not", async () => {
    const target = sourceRecorder();
    const { plain, pinnedPort } = start(new Map([["127.0.0.1:PORT", { 4: "127.0.0.2" }]]));
    const a = await socksConnect(pinnedPort, host("127.0.0.1"), target.port);
    expect(a.reply.reply).toBe(Reply.succeeded);
    expect(a.reply.host).toEqual(host("127.0.0.2")); // BND.ADDR is the bound source
    const b = await socksConnect(plain, host("127.0.0.1"), target.port);
    expect(b.reply.reply).toBe(Reply.succeeded);
    await until(() => target.sources.length === 2);
    expect(target.sources).toEqual(["127.0.0.2", "127.0.0.1"]);
  });

  test("a destination family the pin has no address in fails: never dialed unbound (another route)", async () => {
    const target = sourceRecorder();
    const { pinnedPort } = start(new Map([["127.0.0.1:PORT", { 6: "::1" }]]));
    const r = await socksConnect(pinnedPort, host("127.0.0.1"), target.port);
    expect(r.reply.reply).not.toBe(Reply.succeeded);
    await Bun.sleep(100);
    expect(target.sources).toEqual([]);
  });

  test("resetFrom ends the connections that left from the given addresses, and only those", async () => {
    const target = sourceRecorder();
    const { plain, pinnedPort, server } = start(new Map([["127.0.0.1:PORT", { 4: "127.0.0.2" }]]));
    const pinned = await socksConnect(pinnedPort, host("127.0.0.1"), target.port);
    const other = await socksConnect(plain, host("127.0.0.1"), target.port);
    await until(() => target.open() === 2);
    expect(server.resetFrom(["127.0.0.2"], "exit went down")).toBe(1);
    await until(() => target.open() === 1);
    await pinned.conn.closed;
    expect(other.conn.eof).toBe(false);
    expect(server.stats.connectionsActive).toBe(1);
    expect(server.resetFrom(["10.100.9.9"], "no such exit")).toBe(0);
  });
});
