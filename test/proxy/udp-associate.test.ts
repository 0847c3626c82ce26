// Layer 2: UDP ASSOCIATE in the SOCKS5 session, ProxyServer in process, over real TCP control
// connections and real UDP sockets on loopback: the reply's BND, the tie between the association
// and its TCP connection both ways, the handshake deadline, the off switches and the limit, who
// may send, and the counters and log line.
import { afterEach, describe, expect, test } from "bun:test";
import { parseCidr, parseIp } from "../../lib/net/ip.ts";
import type { Logger } from "../../lib/log/logger.ts";
import { ProxyConfigError } from "../../lib/proxy/errors.ts";
import { ProxyServer, type ProxyServerOptions } from "../../lib/proxy/server.ts";
import { parseUdpDatagram, UdpHeaderError } from "../../lib/proxy/socks5-udp.ts";
import { Reply } from "../../lib/proxy/socks5.ts";
import { cleanup, host, onCleanup, until } from "./helpers.ts";
import { associate, peer, udpEcho, wrap } from "./udp-helpers.ts";

afterEach(cleanup);

const LOOPBACK = [parseCidr("127.0.0.0/8"), parseCidr("::1/128")];

/** A logger that keeps its info lines as `msg k=v ...`. */
function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const line = (msg: string, f?: Record<string, unknown>) => lines.push([msg, ...Object.entries(f ?? {}).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${String(v)}`)].join(" "));
  const log = { debugEnabled: false, debug: () => undefined, info: line, warn: line, error: line, child: () => log } as unknown as Logger;
  return { log, lines };
}

function start(opts: Partial<ProxyServerOptions> = {}): { server: ProxyServer; port: number; ports: number[] } {
  const server = new ProxyServer({ listeners: [{ host: "127.0.0.1", port: 0 }], allowClients: LOOPBACK, allowDestinations: LOOPBACK, ...opts });
  server.start();
  onCleanup(() => server.stop());
  const ports = server.listening.map((l) => Number(/:(\d+)$/.exec(l)![1]));
  return { server, port: ports[0]!, ports };
}

const text = (d: Uint8Array) => new TextDecoder().decode(d);

describe("UDP ASSOCIATE over a real control connection", () => {
  test("succeeded with BND = the relay socket on the address the client reached; a datagram goes and its reply comes back", async () => {
    const { log, lines } = recordingLog();
    const { server, port } = start({ log });
    const echo = await udpEcho();
    const client = await peer();
    const { conn, reply } = await associate(port);
    expect(reply.reply).toBe(Reply.succeeded);
    expect(reply.host).toEqual(host("127.0.0.1"));
    expect(reply.port).toBeGreaterThan(0);
    expect(reply.port).not.toBe(port);
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "ping"), reply.port, "127.0.0.1");
    const r = await client.next(2000);
    expect(r?.port).toBe(reply.port);
    const d = parseUdpDatagram(r!.data);
    if (d instanceof UdpHeaderError) throw d;
    expect({ host: d.host, port: d.port, data: text(d.data) }).toEqual({ host: host("127.0.0.1"), port: echo.sock.port, data: "echo:ping" });
    const s = server.stats;
    expect({ active: s.udp.associationsActive, total: s.udp.associationsTotal, up: s.udp.datagramsUp, down: s.udp.datagramsDown }).toEqual({ active: 1, total: 1, up: 1, down: 1 });
    expect({ bytesUp: s.udp.bytesUp, bytesDown: s.udp.bytesDown }).toEqual({ bytesUp: 4, bytesDown: 9 });
    expect({ ok: s.connectionsTotal.ok, active: s.connectionsActive }).toEqual({ ok: 1, active: 1 });
    conn.socket.end();
    await until(() => s.udp.associationsActive === 0 && s.connectionsActive === 0);
    const closed = lines.find((l) => l.startsWith("proxy connection closed"));
    expect(closed).toContain("result=ok");
    expect(closed).toContain(`address=udp 127.0.0.1:${reply.port}`);
    expect(closed).toContain("datagramsUp=1 datagramsDown=1");
    expect(closed).toContain("reason=client closed");
    // The relay socket is gone: its port can be bound again.
    const again = await Bun.udpSocket({ hostname: "127.0.0.1", port: reply.port });
    again.close();
  });

  test("IPv6: a client that reached [::1] gets BND [::1]", async () => {
    const { port } = start({ listeners: [{ host: "::1", port: 0 }] });
    const echo = await udpEcho("::1");
    const client = await peer("::1");
    const { reply } = await associate(port, { proxyHost: "::1" });
    expect(reply.reply).toBe(Reply.succeeded);
    expect(reply.host).toEqual(host("::1"));
    client.sock.send(wrap("::1", echo.sock.port, "six"), reply.port, "::1");
    const d = parseUdpDatagram((await client.next(2000))!.data) as { data: Uint8Array };
    expect(text(d.data)).toBe("echo:six");
  });

  test("the handshake deadline does not cut the control connection after the reply", async () => {
    const { server, port } = start({ handshakeTimeoutMs: 150 });
    const echo = await udpEcho();
    const client = await peer();
    const { conn, reply } = await associate(port);
    await Bun.sleep(600);
    expect(conn.error).toBeUndefined();
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "late"), reply.port, "127.0.0.1");
    expect(await client.next(2000)).not.toBeNull();
    expect({ timeouts: server.stats.handshakeTimeouts, active: server.stats.udp.associationsActive }).toEqual({ timeouts: 0, active: 1 });
  });

  test("bytes on the control connection after the reply are ignored; a reset frees the association", async () => {
    const { server, port } = start();
    const { conn } = await associate(port);
    conn.write("stray bytes on the control connection");
    await Bun.sleep(50);
    expect(server.stats.udp.associationsActive).toBe(1);
    conn.socket.terminate();
    await until(() => server.stats.udp.associationsActive === 0 && server.stats.connectionsActive === 0);
  });

  test("udp.idleTimeoutMs ends a quiet association and closes its control connection", async () => {
    const { log, lines } = recordingLog();
    const { server, port } = start({ udp: { idleTimeoutMs: 200 }, log });
    const { conn } = await associate(port);
    expect((await conn.readToEnd(3000)).length).toBe(0);
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.udp.associationsActive).toBe(0);
    expect(lines.find((l) => l.startsWith("proxy connection closed"))).toMatch(/result=ok .*reason=udp association ended: idle for 0 s/);
  });

  test("udp.enabled false: command not supported (0x07)", async () => {
    const { server, port } = start({ udp: { enabled: false } });
    const { conn, reply } = await associate(port);
    expect(reply.reply).toBe(Reply.commandNotSupported);
    expect((await conn.readToEnd()).length).toBe(0);
    expect(server.stats.udp.associationsTotal).toBe(0);
  });

  test("udp.listeners: only the listed listener answers; the other says 0x07", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const fixed = probe.port;
    probe.stop(true);
    const { ports } = start({ listeners: [{ host: "127.0.0.1", port: fixed }, { host: "127.0.0.2", port: fixed }], udp: { listeners: [{ host: "127.0.0.2", port: fixed }] } });
    expect((await associate(ports[0]!)).reply.reply).toBe(Reply.commandNotSupported);
    const second = await associate(ports[1]!, { proxyHost: "127.0.0.2" });
    expect(second.reply.reply).toBe(Reply.succeeded);
    expect(second.reply.host).toEqual(host("127.0.0.2"));
  });

  test("udp.maxAssociations: the one over the limit gets general failure (0x01); a slot frees on close", async () => {
    const { server, port } = start({ udp: { maxAssociations: 2 } });
    const a = await associate(port);
    const b = await associate(port);
    const c = await associate(port);
    expect([a, b, c].map((x) => x.reply.reply)).toEqual([Reply.succeeded, Reply.succeeded, Reply.generalFailure]);
    a.conn.socket.end();
    await until(() => server.stats.udp.associationsActive === 1);
    expect((await associate(port)).reply.reply).toBe(Reply.succeeded);
  });

  test("a datagram from a foreign source is dropped: another port after the first fixed it, another address", async () => {
    const { server, port } = start({ listeners: [{ host: "127.0.0.1", port: 0 }] });
    const echo = await udpEcho();
    const client = await peer();
    const samehost = await peer();
    const otherhost = await peer("127.0.0.2");
    const { reply } = await associate(port);
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "mine"), reply.port, "127.0.0.1");
    expect(await client.next(2000)).not.toBeNull();
    samehost.sock.send(wrap("127.0.0.1", echo.sock.port, "foreign port"), reply.port, "127.0.0.1");
    otherhost.sock.send(wrap("127.0.0.1", echo.sock.port, "foreign address"), reply.port, "127.0.0.1");
    await until(() => server.stats.udp.drops.foreign_source >= 2);
    expect(server.stats.udp.drops.foreign_source).toBe(2);
    expect(echo.seen.map((s) => text(s.data))).toEqual(["mine"]);
    expect(samehost.got.length + otherhost.got.length).toBe(0);
  });

  test("the destination policy applies: loopback is denied unless allowed, counted as policy", async () => {
    const { server, port } = start({ allowDestinations: [] });
    const echo = await udpEcho();
    const client = await peer();
    const { reply } = await associate(port);
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "no"), reply.port, "127.0.0.1");
    client.sock.send(wrap("::ffff:127.0.0.1", echo.sock.port, "mapped"), reply.port, "127.0.0.1");
    await until(() => server.stats.udp.drops.policy >= 2);
    expect(echo.seen.length).toBe(0);
  });

  test("names in datagrams go through the proxy's resolver and are checked after it", async () => {
    const echo = await udpEcho();
    const asked: string[] = [];
    const { server, port } = start({
      resolve: async (name) => {
        asked.push(name);
        return name === "echo.test" ? [parseIp("127.0.0.1")!] : [parseIp("10.0.0.1")!];
      },
      allowDestinations: [parseCidr("127.0.0.0/8")],
    });
    const client = await peer();
    const { reply } = await associate(port);
    const { encodeUdpDatagram } = await import("../../lib/proxy/socks5-udp.ts");
    const byName = (name: string) => encodeUdpDatagram({ host: { type: "domain", name }, port: echo.sock.port }, new TextEncoder().encode(name));
    client.sock.send(byName("echo.test"), reply.port, "127.0.0.1");
    client.sock.send(byName("private.test"), reply.port, "127.0.0.1");
    await until(() => client.got.length >= 1 && server.stats.udp.drops.policy >= 1);
    expect(asked.sort()).toEqual(["echo.test", "private.test"]);
    expect(echo.seen.map((s) => text(s.data))).toEqual(["echo.test"]);
  });

  test("stop() closes held control connections and their associations", async () => {
    const { server, port } = start();
    const { conn } = await associate(port);
    await server.stop();
    await conn.closed;
    expect(server.stats.udp.associationsActive).toBe(0);
  });
});

describe("udp options an embedder gets wrong are named", () => {
  test.each([
    ["a UDP listener that is not a listener", { listeners: [{ host: "127.0.0.9", port: 1080 }] }, "udp.listeners[0]: 127.0.0.9:1080 is not one of the listeners (127.0.0.1:1080)"],
    ["a port range backwards", { portRange: { first: 2000, last: 1000 } }, "udp.portRange: first port 2000 is above last port 1000"],
    ["port 0 in a range", { portRange: { first: 0, last: 10 } }, "udp.portRange.first: must be an integer in 1..65535, not 0"],
    ["no associations", { maxAssociations: 0 }, "udp.maxAssociations: must be an integer in 1..9007199254740991, not 0"],
    ["a negative idle timeout", { idleTimeoutMs: -1 }, "udp.idleTimeoutMs: must be from 0ms to 2147483647ms, not -1ms"],
  ])("%s", (_name, udp, message) => {
    const make = () => new ProxyServer({ listeners: [{ host: "127.0.0.1", port: 1080 }], allowClients: LOOPBACK, udp });
    expect(make).toThrow(ProxyConfigError);
    expect(make).toThrow(message);
  });
});
