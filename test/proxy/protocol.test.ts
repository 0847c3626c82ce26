// Layer 2: the protocol interface, in process: a second protocol (a one-line "CONNECT host port"
// test protocol, written here) plugged in beside SOCKS5 on the same listener, picked by the first
// byte, driving the protocol-free core. Pins what an HTTP CONNECT or UDP module will rely on: the
// core's policy, resolution, dial, relay of early data, failure kinds and counters, the same for
// every protocol.
import { afterEach, describe, expect, test } from "bun:test";
import { formatIp, parseCidr, parseIp } from "../../lib/net/ip.ts";
import { concat } from "../../lib/proxy/bytes.ts";
import { Failure } from "../../lib/proxy/errors.ts";
import type { ProtocolCore, ProtocolHandler } from "../../lib/proxy/protocol.ts";
import { ProxyServer, type ProxyServerOptions } from "../../lib/proxy/server.ts";
import { socks5Protocol } from "../../lib/proxy/socks5-session.ts";
import { NEED_MORE, Reply, type ParseResult } from "../../lib/proxy/socks5.ts";
import { RawConn, cleanup, closedPort, echoServer, host, onCleanup, socksConnect, until } from "./helpers.ts";

afterEach(cleanup);

const LOOPBACK = [parseCidr("127.0.0.0/8"), parseCidr("::1/128")];

/** Every call the core made back into the test protocol, in order. */
const calls: string[] = [];

function lineProtocol(core: ProtocolCore): ProtocolHandler {
  return {
    name: "line",
    claims: (b) => b === 0x43, // "C"
    data(conn, d) {
      const buf = conn.buf ? concat(conn.buf, d) : d;
      conn.buf = null;
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length > 300) return core.fail(conn, Failure.protocolError, "line too long");
        conn.buf = buf.slice();
        return;
      }
      const [verb, h, p] = new TextDecoder().decode(buf.subarray(0, nl)).split(" ");
      if (verb !== "CONNECT" || !h || !p) {
        conn.socket.write("ERR bad request\n");
        return core.fail(conn, Failure.protocolError, "bad request");
      }
      const ip = parseIp(h);
      core.connect(conn, ip ? { type: "ip", ip } : { type: "domain", name: h }, Number(p), buf.subarray(nl + 1));
    },
    connected(conn, local, port) {
      calls.push("connected");
      conn.socket.write(`OK ${local ? formatIp(local) : "-"} ${port}\n`);
    },
    failed(conn, kind) {
      calls.push(`failed ${kind}`);
      conn.socket.write(`ERR ${kind}\n`);
    },
  };
}

function start(opts: Partial<ProxyServerOptions> = {}): { server: ProxyServer; port: number } {
  calls.length = 0;
  const server = new ProxyServer({
    listeners: [{ host: "127.0.0.1", port: 0 }],
    allowClients: LOOPBACK,
    allowDestinations: LOOPBACK,
    protocols: [socks5Protocol, lineProtocol],
    ...opts,
  });
  server.start();
  onCleanup(() => server.stop());
  return { server, port: Number(/:(\d+)$/.exec(server.listening[0]!)![1]) };
}

function line(b: Uint8Array): ParseResult<string> {
  const nl = b.indexOf(0x0a);
  return nl < 0 ? NEED_MORE : { value: new TextDecoder().decode(b.subarray(0, nl)), consumed: nl + 1 };
}

describe("a second protocol beside SOCKS5", () => {
  test("connects through the core, and bytes sent with the request reach the target first", async () => {
    const echo = echoServer();
    const { server, port } = start();
    const c = await RawConn.connect(port);
    c.write(`CONNECT 127.0.0.1 ${echo.port}\nearly`);
    const ok = await c.read(line);
    await until(() => echo.peers.length === 1);
    expect(ok).toBe(`OK 127.0.0.1 ${echo.peers[0]}`); // the outbound socket's own address, as SOCKS5's BND
    expect(new TextDecoder().decode(await c.readBytes(5))).toBe("early");
    c.write("more");
    expect(new TextDecoder().decode(await c.readBytes(4))).toBe("more");
    expect(calls).toEqual(["connected"]);
    expect(server.stats.connectionsTotal.ok).toBe(1);
    c.end();
    await c.closed;
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.bytesClientToTarget).toBe(9);
  });

  test("SOCKS5 is still served on the same listener", async () => {
    const echo = echoServer();
    const { server, port } = start();
    const { reply } = await socksConnect(port, host("127.0.0.1"), echo.port);
    expect(reply.reply).toBe(Reply.succeeded);
    expect(calls).toEqual([]); // the line protocol never saw it
    expect(server.stats.connectionsTotal.ok).toBe(1);
  });

  test("a first byte nobody claims goes to the first protocol, whose parser refuses it", async () => {
    const { server, port } = start();
    const c = await RawConn.connect(port);
    c.write(new Uint8Array([0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0])); // SOCKS4
    expect((await c.readToEnd()).length).toBe(0); // SOCKS5 sends nothing to a greeting it cannot parse
    await until(() => server.stats.connectionsTotal.protocol_error === 1);
    expect(calls).toEqual([]);
  });

  test.each([
    // [what, target line, the kind the protocol is told, the result label]
    ["a private destination", "10.0.0.1 80", Failure.denied, "denied_destination"],
    ["an IPv4-mapped private destination", "::ffff:10.0.0.1 80", Failure.denied, "denied_destination"],
    ["a closed port", "closed", Failure.refused, "refused"],
    ["a name that is not a DNS name", "bad_name! 80", Failure.hostUnreachable, "unreachable"],
    ["port 0", "127.0.0.1 0", Failure.protocolError, "protocol_error"],
  ] as const)("%s: failed() once, then closed", async (_what, target, kind, result) => {
    const { server, port } = start({ allowDestinations: target === "closed" ? LOOPBACK : [] });
    const c = await RawConn.connect(port);
    c.write(`CONNECT ${target === "closed" ? `127.0.0.1 ${closedPort()}` : target}\n`);
    expect(await c.read(line)).toBe(`ERR ${kind}`);
    await c.readToEnd();
    expect(calls).toEqual([`failed ${kind}`]);
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.connectionsTotal[result]).toBe(1);
  });

  test.each([
    ["203.0.113.5", "::ffff:203.0.113.5"],
    ["::ffff:203.0.113.5", "203.0.113.5"],
    ["::ffff:203.0.113.5", "::ffff:203.0.113.5"],
  ])("own address %s given, %s requested: denied without a dial (both unmapped at the edge)", async (own, target) => {
    const dialed: string[] = [];
    // Nothing may leave loopback even if the check were broken: this dialer only records.
    const dial = ((o: { hostname: string }) => {
      dialed.push(o.hostname);
      return Promise.reject(Object.assign(new Error("test dialer"), { code: "ECONNREFUSED" }));
    }) as unknown as ProxyServerOptions["dial"];
    const { server, port } = start({ allowDestinations: [], ownAddresses: [parseIp(own)!], dial });
    const c = await RawConn.connect(port);
    c.write(`CONNECT ${target} 80\n`);
    expect(await c.read(line)).toBe(`ERR ${Failure.denied}`);
    await c.readToEnd();
    expect(dialed).toEqual([]);
    await until(() => server.stats.connectionsTotal.denied_destination === 1);
  });

  test("the protocol's own refusal goes through fail(): no failed() call, counted as protocol_error", async () => {
    const { server, port } = start();
    const c = await RawConn.connect(port);
    c.write("CONNECTX\n");
    expect(await c.read(line)).toBe("ERR bad request");
    await c.readToEnd();
    expect(calls).toEqual([]);
    await until(() => server.stats.connectionsTotal.protocol_error === 1);
  });

  test("the handshake deadline applies to every protocol, and connect() ends it", async () => {
    const echo = echoServer();
    const { server, port } = start({ handshakeTimeoutMs: 200 });
    const slow = await RawConn.connect(port);
    slow.write("CONNECT 127.0.0.1"); // no newline: the request never completes
    const fast = await RawConn.connect(port);
    fast.write(`CONNECT 127.0.0.1 ${echo.port}\n`);
    expect(await fast.read(line)).toStartWith("OK ");
    await slow.readToEnd();
    expect(server.stats.handshakeTimeouts).toBe(1);
    await Bun.sleep(300); // past the deadline: the relayed connection is not touched
    fast.write("ping");
    expect(new TextDecoder().decode(await fast.readBytes(4))).toBe("ping");
  });

  test("no protocols is refused", () => {
    expect(() => new ProxyServer({ listeners: [{ host: "127.0.0.1", port: 0 }], allowClients: LOOPBACK, protocols: [] })).toThrow(/protocols/);
  });
});
