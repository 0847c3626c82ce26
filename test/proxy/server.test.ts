// Layer 2: ProxyServer in process, driven byte by byte by a raw client on loopback: the handshake
// state machine, reply codes and BND, counters, limits, deadlines, reload and shutdown, socket
// options on both legs, Happy Eyeballs through an injected dialer.
import { afterEach, describe, expect, test } from "bun:test";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { readdirSync } from "node:fs";
import type { TCPSocketConnectOptions } from "bun";
import { parseCidr, parseIp, type IpAddr } from "../../lib/net/ip.ts";
import type { Connect, DialAttempt } from "../../lib/proxy/dial.ts";
import { ListenError, ProxyConfigError, ResolveError } from "../../lib/proxy/errors.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { GC_AFTER_ACCEPTS, GC_QUIET_MS, ProxyServer, type ProxyServerOptions } from "../../lib/proxy/server.ts";
import { AuthMethod, Command, Reply } from "../../lib/proxy/socks5.ts";
import {
  encodeAuthRequest,
  encodeGreeting,
  parseAuthReply,
  parseMethodSelection,
} from "../../lib/proxy/socks5-greeting.ts";
import { encodeRequest, parseReply } from "../../lib/proxy/socks5-request.ts";
import { PYTHON, RawConn, blackhole, cleanup, closedPort, echoServer, host, onCleanup, socksConnect, until } from "./helpers.ts";

afterEach(cleanup);

const LOOPBACK = [parseCidr("127.0.0.0/8"), parseCidr("::1/128")];

function start(opts: Partial<ProxyServerOptions> = {}): { server: ProxyServer; port: number } {
  const server = new ProxyServer({
    listeners: [{ host: "127.0.0.1", port: 0 }],
    allowClients: LOOPBACK,
    allowDestinations: LOOPBACK,
    ...opts,
  });
  server.start();
  onCleanup(() => server.stop());
  const port = Number(/:(\d+)$/.exec(server.listening[0]!)![1]);
  return { server, port };
}

describe("CONNECT", () => {
  test("the success reply carries the real local address of the outbound socket", async () => {
    const echo = echoServer();
    const { server, port } = start();
    const { conn, reply } = await socksConnect(port, host("127.0.0.1"), echo.port);
    expect(reply.reply).toBe(Reply.succeeded);
    await until(() => echo.peers.length === 1);
    expect(reply.host).toEqual(host("127.0.0.1"));
    expect(reply.port).toBe(echo.peers[0]!); // the port the target saw us come from
    conn.write("ping");
    expect(new TextDecoder().decode(await conn.readBytes(4))).toBe("ping");
    expect(server.stats.connectionsTotal.ok).toBe(1);
    expect(server.stats.connectionsActive).toBe(1);
    expect(server.stats.connectDuration.count).toBe(1);
    conn.end();
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.bytesClientToTarget).toBe(4);
    expect(server.stats.bytesTargetToClient).toBe(4);
  });

  test("greeting, request and early data in one segment (pipelining)", async () => {
    const echo = echoServer();
    const { port } = start();
    const conn = await RawConn.connect(port);
    const early = new TextEncoder().encode("early bytes");
    conn.write(new Uint8Array([...encodeGreeting([AuthMethod.noAuth]), ...encodeRequest(Command.connect, host("127.0.0.1"), echo.port), ...early]));
    expect(await conn.read(parseMethodSelection)).toBe(AuthMethod.noAuth);
    expect((await conn.read(parseReply)).reply).toBe(Reply.succeeded);
    expect(await conn.readBytes(early.length)).toEqual(early);
  });

  test("a FIN right after the request reaches the target after the early data", async () => {
    const echo = echoServer(); // it answers a FIN with its own after echoing
    const { port } = start();
    const conn = await RawConn.connect(port);
    conn.write(new Uint8Array([...encodeGreeting([AuthMethod.noAuth]), ...encodeRequest(Command.connect, host("127.0.0.1"), echo.port), 1, 2, 3]));
    conn.shutdown();
    await conn.read(parseMethodSelection);
    expect((await conn.read(parseReply)).reply).toBe(Reply.succeeded);
    expect(Array.from(await conn.readToEnd())).toEqual([1, 2, 3]);
  });

  test("an IPv6 listener and an IPv6 target", async () => {
    const l = Bun.listen({ hostname: "::1", port: 0, socket: { data(s, d) { s.write(d); } } });
    onCleanup(() => l.stop(true));
    const { port } = start({ listeners: [{ host: "::1", port: 0 }] });
    const conn = await RawConn.connect(port, "::1");
    conn.write(new Uint8Array([...encodeGreeting([AuthMethod.noAuth]), ...encodeRequest(Command.connect, host("::1"), l.port)]));
    await conn.read(parseMethodSelection);
    const reply = await conn.read(parseReply);
    expect(reply.reply).toBe(Reply.succeeded);
    expect(reply.host).toEqual(host("::1"));
  });
});

describe("replies to requests the proxy will not serve", () => {
  const cases: [string, number[] | (() => number[]), number, string][] = [
    ["BIND", () => Array.from(encodeRequest(Command.bind, host("127.0.0.1"), 80)), Reply.commandNotSupported, "protocol_error"],
    ["unknown command 9", [5, 9, 0, 1, 127, 0, 0, 1, 0, 80], Reply.commandNotSupported, "protocol_error"],
    ["unknown address type 2", [5, 1, 0, 2, 127, 0, 0, 1, 0, 80], Reply.addressTypeNotSupported, "protocol_error"],
    ["unknown address type 0xff", [5, 1, 0, 0xff], Reply.addressTypeNotSupported, "protocol_error"],
    ["request version 4", [4, 1, 0, 1, 127, 0, 0, 1, 0, 80], Reply.generalFailure, "protocol_error"],
    ["empty domain", [5, 1, 0, 3, 0, 0, 80], Reply.generalFailure, "protocol_error"],
    ["port 0", [5, 1, 0, 1, 127, 0, 0, 1, 0, 0], Reply.generalFailure, "protocol_error"],
    ["a domain that is not a DNS name", [5, 1, 0, 3, 4, 0x61, 0x20, 0x0a, 0x62, 0, 80], Reply.hostUnreachable, "unreachable"],
    ["a private address", [5, 1, 0, 1, 10, 0, 0, 1, 0, 80], Reply.notAllowed, "denied_destination"],
    ["a private address as a domain literal", [5, 1, 0, 3, 8, ...Array.from("10.0.0.1", (c) => c.charCodeAt(0)), 0, 80], Reply.notAllowed, "denied_destination"],
    ["an IPv4-mapped private address", [5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 1, 0, 80], Reply.notAllowed, "denied_destination"],
  ];
  test.each(cases)("%s -> reply %d", async (_name, bytes, reply, result) => {
    const { server, port } = start({ allowDestinations: [parseCidr("127.0.0.0/8")] });
    const conn = await RawConn.connect(port);
    conn.write(encodeGreeting([AuthMethod.noAuth]));
    await conn.read(parseMethodSelection);
    conn.write(Uint8Array.from(typeof bytes === "function" ? bytes() : bytes));
    const r = await conn.read(parseReply);
    expect(r.reply).toBe(reply);
    expect(r.host).toEqual(host("0.0.0.0"));
    expect((await conn.readToEnd()).length).toBe(0); // then the proxy closes
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.connectionsTotal[result as "ok"]).toBe(1);
  });

  test.each([
    ["lower-case text", Array.from("get / HTTP/1.1\r\n\r\n", (c) => c.charCodeAt(0))],
    ["zero methods", [5, 0]],
  ])("a bad greeting (%s) is closed without a reply", async (_name, bytes) => {
    const { server, port } = start();
    const conn = await RawConn.connect(port);
    conn.write(Uint8Array.from(bytes));
    expect((await conn.readToEnd()).length).toBe(0);
    await until(() => server.stats.connectionsTotal.protocol_error === 1);
  });

  test("a SOCKS4 client gets SOCKS4's refusal (VN 0, CD 91), then the close", async () => {
    const { server, port } = start();
    const conn = await RawConn.connect(port);
    conn.write(Uint8Array.of(4, 1, 0, 80, 127, 0, 0, 1, 0));
    expect([...(await conn.readToEnd())]).toEqual([0, 91, 0, 0, 0, 0, 0, 0]);
    await until(() => server.stats.connectionsTotal.protocol_error === 1);
    expect(server.stats.byProtocol.other.connectionsTotal.protocol_error).toBe(1);
  });

  test("an HTTP request for the proxy itself (origin form) gets a 400 that says what to send", async () => {
    const { server, port } = start();
    const conn = await RawConn.connect(port);
    conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const text = new TextDecoder().decode(await conn.readToEnd());
    expect(text).toStartWith("HTTP/1.1 400 Bad Request\r\n");
    expect(text).toContain("this is a proxy: send CONNECT host:port, or an absolute URI");
    await until(() => server.stats.connectionsTotal.protocol_error === 1);
    expect(server.stats.byProtocol.http.connectionsTotal.protocol_error).toBe(1);
  });

  test("a client that offers only username/password to an open proxy gets 0xFF", async () => {
    const { server, port } = start();
    const conn = await RawConn.connect(port);
    conn.write(encodeGreeting([AuthMethod.usernamePassword, AuthMethod.gssapi]));
    expect(await conn.read(parseMethodSelection)).toBe(AuthMethod.noAcceptable);
    expect((await conn.readToEnd()).length).toBe(0);
    await until(() => server.stats.connectionsTotal.protocol_error === 1);
  });
});

describe("authentication", () => {
  const auth = { username: "pod", password: "s3cret" };

  test("good credentials, then CONNECT", async () => {
    const echo = echoServer();
    const { server, port } = start({ auth });
    const { reply } = await socksConnect(port, host("127.0.0.1"), echo.port, { auth });
    expect(reply.reply).toBe(Reply.succeeded);
    expect(server.stats.authFailures).toBe(0);
  });

  test.each([
    ["wrong password", () => encodeAuthRequest("pod", "s3cre7"), 1],
    ["wrong user", () => encodeAuthRequest("root", "s3cret"), 1],
  ])("%s is refused with status 1 and counted", async (_name, msg, status) => {
    const { server, port } = start({ auth });
    const conn = await RawConn.connect(port);
    conn.write(encodeGreeting([AuthMethod.noAuth, AuthMethod.usernamePassword]));
    expect(await conn.read(parseMethodSelection)).toBe(AuthMethod.usernamePassword);
    conn.write(msg());
    expect(await conn.read(parseAuthReply)).toBe(status);
    expect((await conn.readToEnd()).length).toBe(0);
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.authFailures).toBe(1);
    expect(server.stats.connectionsTotal.auth_failed).toBe(1);
  });

  test("a client that offers no username/password gets 0xFF and counts as an auth failure", async () => {
    const { server, port } = start({ auth });
    const conn = await RawConn.connect(port);
    conn.write(encodeGreeting([AuthMethod.noAuth]));
    expect(await conn.read(parseMethodSelection)).toBe(AuthMethod.noAcceptable);
    await until(() => server.stats.connectionsTotal.auth_failed === 1);
    expect(server.stats.authFailures).toBe(1);
  });

  test("a malformed auth message is a protocol error, answered with failure", async () => {
    const { server, port } = start({ auth });
    const conn = await RawConn.connect(port);
    conn.write(encodeGreeting([AuthMethod.usernamePassword]));
    await conn.read(parseMethodSelection);
    conn.write(Uint8Array.of(5, 1, 0x61, 1, 0x62)); // version 5 instead of 1
    expect(await conn.read(parseAuthReply)).toBe(1);
    await until(() => server.stats.connectionsTotal.protocol_error === 1);
    expect(server.stats.authFailures).toBe(0);
  });

  test("the password never appears in logs, even at debug level", async () => {
    const lines: string[] = [];
    const log = { debugEnabled: true, debug: (m: string, f?: object) => lines.push(m + JSON.stringify(f)), info: (m: string, f?: object) => lines.push(m + JSON.stringify(f)), warn: (m: string, f?: object) => lines.push(m + JSON.stringify(f)), error: (m: string, f?: object) => lines.push(m + JSON.stringify(f)) };
    const echo = echoServer();
    const { port, server } = start({ auth, log });
    await socksConnect(port, host("127.0.0.1"), echo.port, { auth });
    await socksConnect(port, host("127.0.0.1"), echo.port, { auth: { username: "pod", password: "hunter2" } }).catch(() => {});
    await server.stop();
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.join("\n")).not.toContain("s3cret");
    expect(lines.join("\n")).not.toContain("hunter2");
  });
});

test("a crafted domain name cannot put control characters into the log", async () => {
  const lines: string[] = [];
  const capture = (m: string, f?: object) => lines.push(m + " " + JSON.stringify(f));
  const { port, server } = start({ log: { debugEnabled: true, debug: capture, info: capture, warn: capture, error: capture } });
  const conn = await RawConn.connect(port);
  const name = Array.from("evil\x1b[2J\nresult=ok", (c) => c.charCodeAt(0));
  conn.write(new Uint8Array([...encodeGreeting([0]), 5, 1, 0, 3, name.length, ...name, 0, 80]));
  await conn.read(parseMethodSelection);
  expect((await conn.read(parseReply)).reply).toBe(Reply.hostUnreachable);
  await until(() => server.stats.connectionsActive === 0);
  const closed = lines.find((l) => l.startsWith("proxy connection closed"))!;
  const fields = JSON.parse(closed.slice("proxy connection closed ".length)) as { target: string };
  expect(fields.target).toBe(String.raw`evil\u001b[2J\nresult=ok:80`); // escaped, on one line
  expect(lines.join("")).not.toContain("\x1b");
});

describe("admission and limits", () => {
  test("a client outside allowClients is closed before any byte is read, and counted", async () => {
    const { server, port } = start({ allowClients: [parseCidr("10.9.0.0/16")] });
    const conn = await RawConn.connect(port);
    conn.write(encodeGreeting([AuthMethod.noAuth]));
    expect((await conn.readToEnd()).length).toBe(0);
    expect(server.stats.connectionsTotal.denied_client).toBe(1);
    expect(server.stats.connectionsActive).toBe(0);
  });

  test("regression: a client that resets before accept runs is dropped quietly (remoteAddress was undefined)", async () => {
    const errors: string[] = [];
    const log = { debugEnabled: false, debug() {}, info() {}, warn: (m: string) => errors.push(m), error: (m: string, f?: object) => errors.push(m + JSON.stringify(f)) };
    const { server, port } = start({ log, maxConnections: 1000 }); // within any fd limit: no warning
    // spawnSync blocks our event loop: the clients connect, send and reset while the proxy cannot
    // accept, so the accept queue holds connections that are already gone.
    const script = `
import socket, struct
for i in range(50):
    s = socket.socket(); s.connect(("127.0.0.1", ${port})); s.send(b"\\x05\\x01\\x00")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
`;
    expect(Bun.spawnSync([PYTHON, "-c", script]).exitCode).toBe(0);
    await Bun.sleep(200);
    await until(() => server.stats.connectionsActive === 0);
    expect(errors).toEqual([]);
  });

  test("maxConnections closes the excess at accept and keeps serving the rest", async () => {
    const echo = echoServer();
    const { server, port } = start({ maxConnections: 2 });
    const a = await socksConnect(port, host("127.0.0.1"), echo.port);
    const b = await socksConnect(port, host("127.0.0.1"), echo.port);
    const c = await RawConn.connect(port);
    expect((await c.readToEnd()).length).toBe(0);
    expect(server.stats.connectionsOverLimit).toBe(1);
    a.conn.write("still here");
    expect(new TextDecoder().decode(await a.conn.readBytes(10))).toBe("still here");
    b.conn.end();
    await until(() => server.stats.connectionsActive === 1);
    const d = await socksConnect(port, host("127.0.0.1"), echo.port); // a slot is free again
    expect(d.reply.reply).toBe(Reply.succeeded);
  });

  test("the handshake deadline closes a slowloris client", async () => {
    const { server, port } = start({ handshakeTimeoutMs: 300 });
    const conn = await RawConn.connect(port);
    conn.write(Uint8Array.of(5, 2, 0)); // one method short, forever
    const t0 = Date.now();
    expect((await conn.readToEnd(3000)).length).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(server.stats.handshakeTimeouts).toBe(1);
    expect(server.stats.connectionsTotal.protocol_error).toBe(1);
  });

  test("the handshake deadline does not apply once relaying", async () => {
    const echo = echoServer();
    const { server, port } = start({ handshakeTimeoutMs: 200 });
    const { conn } = await socksConnect(port, host("127.0.0.1"), echo.port);
    await Bun.sleep(600);
    conn.write("alive");
    expect(new TextDecoder().decode(await conn.readBytes(5))).toBe("alive");
    expect(server.stats.handshakeTimeouts).toBe(0);
  });

  test("idleTimeoutMs closes a quiet relay, and traffic keeps it open", async () => {
    const echo = echoServer();
    const { server, port } = start({ idleTimeoutMs: 400 });
    const busy = await socksConnect(port, host("127.0.0.1"), echo.port);
    const quiet = await socksConnect(port, host("127.0.0.1"), echo.port);
    for (let i = 0; i < 8; i++) {
      await Bun.sleep(100);
      busy.conn.write("x");
      await busy.conn.readBytes(1);
    }
    expect(quiet.conn.eof).toBe(true);
    expect(busy.conn.eof).toBe(false);
    expect(server.stats.connectionsActive).toBe(1);
  });

  test("with no idleTimeoutMs a quiet relay stays open", async () => {
    const echo = echoServer();
    const { port } = start({ handshakeTimeoutMs: 100 });
    const { conn } = await socksConnect(port, host("127.0.0.1"), echo.port);
    await Bun.sleep(1000);
    expect(conn.eof).toBe(false);
  });
});

describe("listeners, reload and shutdown", () => {
  test("start() names the address that is in use and binds nothing", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    onCleanup(() => taken.stop(true));
    const free = closedPort();
    const server = new ProxyServer({ listeners: [{ host: "127.0.0.1", port: free }, { host: "127.0.0.1", port: taken.port }], allowClients: LOOPBACK });
    let error: unknown;
    try {
      server.start();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ListenError);
    expect((error as ListenError).address).toBe(`127.0.0.1:${taken.port}`);
    expect((error as ListenError).code).toBe("EADDRINUSE");
    expect(server.listening).toEqual([]);
    // the first listener was released: its port can be bound again
    const again = Bun.listen({ hostname: "127.0.0.1", port: free, socket: { data() {} } });
    again.stop(true);
  });

  test("EADDRNOTAVAIL for an address this host does not have", () => {
    const server = new ProxyServer({ listeners: [{ host: "192.0.2.1", port: 1080 }], allowClients: LOOPBACK });
    expect(() => server.start()).toThrow(/192\.0\.2\.1:1080: EADDRNOTAVAIL/);
  });

  test.each([
    ["a wildcard listener without allowWildcardBind", { listeners: [{ host: "0.0.0.0", port: 1080 }] }, "listeners[0]"],
    ["the mapped wildcard", { listeners: [{ host: "::ffff:0.0.0.0", port: 1080 }] }, "listeners[0]"],
    ["no listeners", { listeners: [] }, "listeners"],
    ["a name as listener", { listeners: [{ host: "localhost", port: 1080 }] }, "listeners[0]"],
    ["connectTimeoutMs 0", { connectTimeoutMs: 0 }, "connectTimeoutMs"],
    ["a timeout too long for a timer", { handshakeTimeoutMs: 2 ** 31 }, "handshakeTimeoutMs"],
    ["maxConnections 0", { maxConnections: 0 }, "maxConnections"],
    ["keepalive idle under a second", { keepalive: { idleMs: 500 } }, "keepalive.idleMs"],
    ["keepalive idle above the kernel's 32767 s", { keepalive: { idleMs: 32_768_000 } }, "keepalive.idleMs"],
    ["a keepalive interval in parts of a second", { keepalive: { intervalMs: 1500 } }, "keepalive.intervalMs"],
    ["128 keepalive probes", { keepalive: { count: 128 } }, "keepalive.count"],
    ["tunnel DNS without servers", { dns: { mode: "tunnel" as const, servers: [] } }, "dns.servers"],
    ["a DNS server that is a name", { dns: { mode: "tunnel" as const, servers: ["dns.example"] } }, "dns.servers[0]"],
    ["an empty password", { auth: { username: "u", password: "" } }, "auth.password"],
  ])("options with %s are refused", (_name, opts, field) => {
    let error: unknown;
    try {
      new ProxyServer({ listeners: [{ host: "127.0.0.1", port: 0 }], allowClients: LOOPBACK, ...opts });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProxyConfigError);
    expect((error as ProxyConfigError).field).toBe(field);
  });

  test("update() moves listeners and swaps the policy without dropping a live relay", async () => {
    const echo = echoServer();
    const { server, port } = start();
    const live = await socksConnect(port, host("127.0.0.1"), echo.port);
    server.update({ listeners: [{ host: "127.0.0.2", port: 0 }], allowClients: LOOPBACK, allowDestinations: [] });
    expect(server.listening).toHaveLength(1);
    expect(server.listening[0]).toStartWith("127.0.0.2:");
    // the live connection is untouched
    live.conn.write("after reload");
    expect(new TextDecoder().decode(await live.conn.readBytes(12))).toBe("after reload");
    // the old address no longer accepts
    await expect(RawConn.connect(port)).rejects.toThrow();
    // the new address accepts, under the new policy (loopback no longer allowed)
    const newPort = Number(/:(\d+)$/.exec(server.listening[0]!)![1]);
    const conn = await RawConn.connect(newPort, "127.0.0.2");
    conn.write(new Uint8Array([...encodeGreeting([0]), ...encodeRequest(Command.connect, host("127.0.0.1"), echo.port)]));
    await conn.read(parseMethodSelection);
    expect((await conn.read(parseReply)).reply).toBe(Reply.notAllowed);
  });

  test("update() that cannot bind a new listener changes nothing", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    onCleanup(() => taken.stop(true));
    const echo = echoServer();
    const { server, port } = start();
    const before = [...server.listening];
    expect(() => server.update({ listeners: [{ host: "127.0.0.1", port: 0 }, { host: "127.0.0.1", port: taken.port }], allowClients: LOOPBACK, allowDestinations: [] })).toThrow(ListenError);
    expect(server.listening).toEqual(before);
    const { reply } = await socksConnect(port, host("127.0.0.1"), echo.port); // old policy still in force
    expect(reply.reply).toBe(Reply.succeeded);
  });

  test("stop({ drainMs }) lets live relays finish, then resets the rest", async () => {
    const echo = echoServer();
    const { server, port } = start();
    const finishing = await socksConnect(port, host("127.0.0.1"), echo.port);
    const lingering = await socksConnect(port, host("127.0.0.1"), echo.port);
    const t0 = Date.now();
    const stopped = server.stop({ drainMs: 600 });
    await expect(RawConn.connect(port)).rejects.toThrow(); // no longer accepting
    finishing.conn.write("bye");
    expect(new TextDecoder().decode(await finishing.conn.readBytes(3))).toBe("bye");
    finishing.conn.end();
    await stopped;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
    await until(() => lingering.conn.eof);
    expect(server.stats.connectionsActive).toBe(0);
    expect(server.listening).toEqual([]);
  });

  test("stop() returns early once the last connection has finished", async () => {
    const echo = echoServer();
    const { server, port } = start();
    const c = await socksConnect(port, host("127.0.0.1"), echo.port);
    const t0 = Date.now();
    const stopped = server.stop({ drainMs: 5000 });
    setTimeout(() => c.conn.end(), 100);
    await stopped;
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

// getsockopt(2) on the proxy's own sockets: this process is the proxy, so its fds are ours to read.
const libc = dlopen("libc.so.6", {
  getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  getpeername: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
});
const SOL_SOCKET = 1, SO_KEEPALIVE = 9, IPPROTO_TCP = 6, TCP_NODELAY = 1, TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5, TCP_KEEPCNT = 6;

function sockopt(fd: number, level: number, name: number): number | null {
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  return libc.symbols.getsockopt(fd, level, name, ptr(v), ptr(len)) === 0 ? v[0]! : null;
}

function portOf(fd: number, peer: boolean): number | null {
  const sa = new Uint8Array(128);
  const len = new Uint32Array([128]);
  const f = peer ? libc.symbols.getpeername : libc.symbols.getsockname;
  if (f(fd, ptr(sa), ptr(len)) !== 0) return null;
  return (sa[2]! << 8) | sa[3]!;
}

/** The fd of the TCP socket in this process with these local and peer ports. */
function findFd(local: number, peer: number): number {
  for (const name of readdirSync("/proc/self/fd")) {
    const fd = Number(name);
    if (portOf(fd, false) === local && portOf(fd, true) === peer) return fd;
  }
  throw new Error(`no socket ${local}->${peer}`);
}

describe("socket options on both legs (read back with getsockopt)", () => {
  /** TCP_NODELAY and the keepalive options of one of the proxy's sockets. */
  function options(fd: number) {
    return {
      fd,
      nodelay: sockopt(fd, IPPROTO_TCP, TCP_NODELAY),
      keepalive: sockopt(fd, SOL_SOCKET, SO_KEEPALIVE),
      idle: sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE),
      interval: sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL),
      count: sockopt(fd, IPPROTO_TCP, TCP_KEEPCNT),
    };
  }

  test("TCP_NODELAY and keepalive with the configured schedule", async () => {
    const echo = echoServer();
    const { port } = start({ keepalive: { idleMs: 37_000, intervalMs: 9_000, count: 4 } });
    const { conn, reply } = await socksConnect(port, host("127.0.0.1"), echo.port);
    const clientLeg = findFd(port, conn.socket.localPort); // proxy side of client <-> proxy
    const targetLeg = findFd(reply.port, echo.port); // proxy side of proxy <-> target
    for (const fd of [clientLeg, targetLeg]) {
      expect(options(fd)).toEqual({ fd, nodelay: 1, keepalive: 1, idle: 37, interval: 9, count: 4 });
    }
  });

  // Regression: Bun's setKeepAlive fixed the probes at 1 s x 10 (see keepalive.test.ts).
  test("the default schedule: 60 s idle, then 8 probes 15 s apart", async () => {
    const echo = echoServer();
    const { port } = start({});
    const { conn, reply } = await socksConnect(port, host("127.0.0.1"), echo.port);
    for (const fd of [findFd(port, conn.socket.localPort), findFd(reply.port, echo.port)]) {
      expect(options(fd)).toEqual({ fd, nodelay: 1, keepalive: 1, idle: 60, interval: 15, count: 8 });
    }
  });

  test("update() gives new connections the new schedule, and can turn keepalive off", async () => {
    const echo = echoServer();
    const base = { listeners: [{ host: "127.0.0.1", port: 0 }], allowClients: LOOPBACK, allowDestinations: [parseCidr("127.0.0.0/8")] };
    const { server, port } = start({ keepalive: { idleMs: 30_000 } });
    const first = await socksConnect(port, host("127.0.0.1"), echo.port);
    server.update({ ...base, keepalive: { idleMs: 45_000, intervalMs: 5_000, count: 3 } });
    const second = await socksConnect(port, host("127.0.0.1"), echo.port);
    server.update({ ...base, keepalive: { enabled: false } });
    const third = await socksConnect(port, host("127.0.0.1"), echo.port);
    const legs = (c: typeof first) => [findFd(port, c.conn.socket.localPort), findFd(c.reply.port, echo.port)];
    for (const fd of legs(first)) expect(options(fd)).toEqual({ fd, nodelay: 1, keepalive: 1, idle: 30, interval: 15, count: 8 });
    for (const fd of legs(second)) expect(options(fd)).toEqual({ fd, nodelay: 1, keepalive: 1, idle: 45, interval: 5, count: 3 });
    for (const fd of legs(third)) expect(options(fd).keepalive).toBe(0);
  });

  test("keepalive can be turned off", async () => {
    const echo = echoServer();
    const { port } = start({ keepalive: { enabled: false }, noDelay: false });
    const { conn, reply } = await socksConnect(port, host("127.0.0.1"), echo.port);
    for (const fd of [findFd(port, conn.socket.localPort), findFd(reply.port, echo.port)]) {
      expect([sockopt(fd, SOL_SOCKET, SO_KEEPALIVE), sockopt(fd, IPPROTO_TCP, TCP_NODELAY)]).toEqual([0, 0]);
    }
  });
});

describe("dialing: Happy Eyeballs and connect timeouts (injected resolver and dialer)", () => {
  const V6 = "2001:db8::1", V4 = "192.0.2.1", V4B = "198.51.100.1";

  /** A dialer that sends each documentation address to a loopback stand-in; nothing leaves. */
  function redirect(map: Record<string, number>, log: string[]): Connect {
    return (opts: TCPSocketConnectOptions<DialAttempt>) => {
      log.push(opts.hostname);
      const port = map[opts.hostname];
      if (port === undefined) return Promise.reject(Object.assign(new Error("unexpected dial"), { code: "EHOSTUNREACH" }));
      return Bun.connect({ ...opts, hostname: "127.0.0.1", port });
    };
  }
  const resolveTo = (...addrs: string[]) => async (): Promise<IpAddr[]> => addrs.map((a) => parseIp(a)!);

  test("a silent IPv6 address loses to IPv4 after the 250 ms attempt delay", async () => {
    const echo = echoServer();
    const hole = await blackhole();
    const dialed: string[] = [];
    const { server, port } = start({ resolve: resolveTo(V6, V4), dial: redirect({ [V6]: hole, [V4]: echo.port }, dialed) });
    const t0 = Date.now();
    const { reply } = await socksConnect(port, host("dual.example", true), 80);
    const ms = Date.now() - t0;
    expect(reply.reply).toBe(Reply.succeeded);
    expect(dialed).toEqual([V6, V4]); // IPv6 first (RFC 8305 §4)
    expect(ms).toBeGreaterThanOrEqual(240);
    // Regression: the losing IPv6 attempt stayed in SYN-SENT (holding its fd) for ~2 minutes.
    await until(() => server.stats.pendingAbandonedDials === 0, 1000);
  });

  test("a refused address makes the next one start at once", async () => {
    const echo = echoServer();
    const dialed: string[] = [];
    const { port } = start({ resolve: resolveTo(V6, V4), dial: redirect({ [V6]: closedPort(), [V4]: echo.port }, dialed) });
    const t0 = Date.now();
    const { reply } = await socksConnect(port, host("dual.example", true), 80);
    expect(reply.reply).toBe(Reply.succeeded);
    expect(Date.now() - t0).toBeLessThan(200);
  });

  test("families are interleaved: v6, v4, v6, v4", async () => {
    const dialed: string[] = [];
    const { port } = start({ resolve: resolveTo("2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2"), dial: redirect({}, dialed) });
    const { reply } = await socksConnect(port, host("many.example", true), 80);
    expect(reply.reply).toBe(Reply.hostUnreachable); // every attempt failed with EHOSTUNREACH
    expect(dialed).toEqual(["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2"]);
  });

  test("resolved addresses are checked again: denied ones are never dialed", async () => {
    const echo = echoServer();
    const dialed: string[] = [];
    const { port } = start({ allowDestinations: [], resolve: resolveTo("10.0.0.1", V4B), dial: redirect({ [V4B]: echo.port }, dialed) });
    const { reply } = await socksConnect(port, host("mixed.example", true), 80);
    expect(reply.reply).toBe(Reply.succeeded);
    expect(dialed).toEqual([V4B]);
  });

  test("no answer within connectTimeoutMs -> TTL expired (0x06)", async () => {
    const hole = await blackhole();
    const { server, port } = start({ connectTimeoutMs: 400, resolve: resolveTo(V6, V4), dial: redirect({ [V6]: hole, [V4]: hole }, []) });
    const t0 = Date.now();
    const { reply } = await socksConnect(port, host("dead.example", true), 80);
    expect(reply.reply).toBe(Reply.ttlExpired);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(server.stats.connectionsTotal.timeout).toBe(1);
    await until(() => server.stats.pendingAbandonedDials === 0, 1000); // both attempts aborted, not left in SYN-SENT
  });

  test("a client that resets while connecting is noticed at once and counted as a timeout", async () => {
    const hole = await blackhole();
    const { server, port } = start({ dial: redirect({ [V4]: hole }, []) });
    const conn = await RawConn.connect(port);
    conn.write(new Uint8Array([...encodeGreeting([0]), ...encodeRequest(Command.connect, host(V4), 80)]));
    await conn.read(parseMethodSelection);
    conn.socket.terminate();
    await until(() => server.stats.connectionsActive === 0, 1000); // long before the 10 s connect timeout
    expect(server.stats.connectionsTotal.timeout).toBe(1);
    await until(() => server.stats.pendingAbandonedDials === 0, 1000); // the dial aborted with it
  });

  test("more early data than the proxy holds while dialing (64 KiB) arrives intact", async () => {
    const echo = echoServer();
    const slow: Connect = (opts) => Bun.sleep(300).then(() => Bun.connect({ ...opts, hostname: "127.0.0.1", port: echo.port }));
    const { port } = start({ dial: slow });
    const early = crypto.getRandomValues(new Uint8Array(300 * 1024));
    const conn = await RawConn.connect(port);
    conn.write(new Uint8Array([...encodeGreeting([0]), ...encodeRequest(Command.connect, host(V4), 80)]));
    let at = 0;
    while (at < early.length) {
      const n = conn.socket.write(early.subarray(at, at + 16384));
      if (n > 0) at += n;
      else await Bun.sleep(1);
    }
    await conn.read(parseMethodSelection);
    expect((await conn.read(parseReply)).reply).toBe(Reply.succeeded);
    const back = await conn.readBytes(early.length, 10_000);
    expect(Bun.hash(back)).toBe(Bun.hash(early));
  });

  test("a client FIN while connecting is a half-close: the dial goes on", async () => {
    const echo = echoServer();
    const hole = await blackhole();
    const { server, port } = start({ connectTimeoutMs: 300, dial: redirect({ [V4]: hole, [V4B]: echo.port }, []) });
    const conn = await RawConn.connect(port);
    conn.write(new Uint8Array([...encodeGreeting([0]), ...encodeRequest(Command.connect, host(V4), 80)]));
    conn.shutdown();
    await conn.read(parseMethodSelection);
    expect((await conn.read(parseReply)).reply).toBe(Reply.ttlExpired);
    expect(server.stats.connectionsTotal.timeout).toBe(1);
  });

  test("a failing resolver -> host unreachable (0x04)", async () => {
    const { server, port } = start({ resolve: async (name) => { throw new ResolveError(name, "ENOTFOUND"); } });
    const { reply } = await socksConnect(port, host("nx.example", true), 80);
    expect(reply.reply).toBe(Reply.hostUnreachable);
    await until(() => server.stats.connectionsTotal.unreachable === 1);
  });
});

describe("garbage after a burst of connections", () => {
  // Handshakes leave garbage that nothing collects once the connections idle (nothing allocates):
  // a burst of GC_AFTER_ACCEPTS accepted connections, then GC_QUIET_MS without one, runs a full GC.
  test(`${GC_AFTER_ACCEPTS - 1} connections and quiet: no collection; one more: a collection, once`, async () => {
    const lines: string[] = [];
    const { port } = start({ log: createLogger({ level: "debug", format: "text", write: (l) => lines.push(l) }) });
    const burst = async (n: number) => {
      for (let i = 0; i < n; i += 100) {
        const batch = await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })));
        for (const s of batch) s.end();
      }
    };
    const collections = () => lines.filter((l) => l.includes("collected garbage after a burst")).length;
    await burst(GC_AFTER_ACCEPTS - 1);
    await Bun.sleep(GC_QUIET_MS + 1500);
    expect(collections()).toBe(0);
    await burst(1);
    await until(() => collections() === 1, GC_QUIET_MS + 3000);
    await Bun.sleep(1500);
    expect(collections()).toBe(1);
  }, 20_000);
});
