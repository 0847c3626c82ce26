// Layer 2: HTTP proxying on the live listener, in process, driven by raw sockets (for exact bytes:
// keep-alive across hosts, pipelining, close-delimited bodies, upgrades, the refusals) and by curl
// (chunked bodies of a few MiB both ways, checked by SHA-256).
import { afterEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCidr } from "../../lib/net/ip.ts";
import { encodeBasicCredentials } from "../../lib/proxy/http/basic-auth.ts";
import { ProxyServer, type ProxyServerOptions } from "../../lib/proxy/server.ts";
import { NEED_MORE } from "../../lib/proxy/socks5.ts";
import { RawConn, blackhole, cleanup, closedPort, echoServer, onCleanup, socksConnect, host, until } from "./helpers.ts";

afterEach(cleanup);

const LOOPBACK = [parseCidr("127.0.0.0/8"), parseCidr("::1/128")];
const enc = new TextEncoder();
const dec = new TextDecoder();

function start(opts: Partial<ProxyServerOptions> = {}): { server: ProxyServer; port: number } {
  const server = new ProxyServer({ listeners: [{ host: "127.0.0.1", port: 0 }], allowClients: LOOPBACK, allowDestinations: LOOPBACK, ...opts });
  server.start();
  onCleanup(() => server.stop());
  return { server, port: Number(server.listening[0]!.split(":").pop()) };
}

/** An HTTP server on `host` that names itself in every answer. */
function namedServer(name: string, hostname = "127.0.0.1"): number {
  const s = Bun.serve({
    hostname,
    port: 0,
    fetch: async (r) => {
      const body = await r.text();
      return new Response(`${name} ${r.method} ${new URL(r.url).pathname} host=${r.headers.get("host")} body=${body}`, { headers: { "x-served-by": name } });
    },
  });
  onCleanup(() => void s.stop(true));
  return s.port!;
}

interface Resp {
  status: number;
  head: string;
  body: string;
}

/** Reads one response with a Content-Length body (the test's own minimal parser). */
function response(b: Uint8Array): { value: Resp; consumed: number } | typeof NEED_MORE {
  const text = dec.decode(b);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return NEED_MORE;
  const head = text.slice(0, end);
  const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? "0");
  if (b.length < end + 4 + len) return NEED_MORE;
  return { value: { status: Number(head.split(" ")[1]), head, body: text.slice(end + 4, end + 4 + len) }, consumed: end + 4 + len };
}

function get(url: string, extra = ""): Uint8Array {
  return enc.encode(`GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\n${extra}\r\n`);
}

describe("forward proxying", () => {
  test("two requests to two different hosts on one client connection: each answered by the right host", async () => {
    const a = namedServer("A", "127.0.0.1");
    const b = namedServer("B", "127.0.0.2");
    const { server, port } = start();
    const c = await RawConn.connect(port);
    c.write(get(`http://127.0.0.1:${a}/one`, "Proxy-Connection: keep-alive\r\n"));
    const r1 = await c.read(response);
    c.write(get(`http://127.0.0.2:${b}/two`));
    const r2 = await c.read(response);
    c.write(get(`http://127.0.0.1:${a}/three`));
    const r3 = await c.read(response);
    expect([r1.body, r2.body, r3.body]).toEqual([`A GET /one host=127.0.0.1:${a} body=`, `B GET /two host=127.0.0.2:${b} body=`, `A GET /three host=127.0.0.1:${a} body=`]);
    // Hop-by-hop fields are not passed back; the client connection stays open.
    expect(r1.head).not.toMatch(/\r\nconnection: close/i);
    c.end();
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.byProtocol.http.connectionsTotal.ok).toBe(3); // one upstream per request
  });

  test("pipelined requests to two hosts are answered in order, each by its own host", async () => {
    const a = namedServer("A");
    const b = namedServer("B", "127.0.0.2");
    const { port } = start();
    const c = await RawConn.connect(port);
    const post = enc.encode(`POST http://127.0.0.2:${b}/p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`);
    const all = new Uint8Array([...get(`http://127.0.0.1:${a}/1`), ...post, ...get(`http://127.0.0.1:${a}/3`, "Connection: close\r\n")]);
    c.write(all);
    const r = [await c.read(response), await c.read(response), await c.read(response)];
    expect(r.map((x) => x.body)).toEqual([`A GET /1 host=127.0.0.1:${a} body=`, `B POST /p host=127.0.0.2:${b} body=hello`, `A GET /3 host=127.0.0.1:${a} body=`]);
    // The last asked for close: the proxy says so and closes.
    expect(r[2]!.head).toMatch(/\r\nConnection: close/);
    expect((await c.readToEnd()).length).toBe(0);
  });

  test("a close-delimited response reaches the client whole, then the client connection ends", async () => {
    const body = "x".repeat(200_000);
    const l = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(s) {
          s.write(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n${body}`);
          s.flush();
          setTimeout(() => s.end(), 50);
        },
      },
    });
    onCleanup(() => l.stop(true));
    const { port } = start();
    const c = await RawConn.connect(port);
    c.write(get(`http://127.0.0.1:${l.port}/`));
    const text = dec.decode(await c.readToEnd());
    expect(text).toStartWith("HTTP/1.1 200 OK\r\n");
    expect(text).toContain("\r\nConnection: close\r\n");
    expect(text.slice(text.indexOf("\r\n\r\n") + 4)).toBe(body);
  });

  test("a chunked response with extensions and trailers is passed through byte for byte", async () => {
    const chunked = "3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: yes\r\n\r\n";
    const l = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(s) {
          s.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n${chunked}`);
        },
      },
    });
    onCleanup(() => l.stop(true));
    const { port } = start();
    const c = await RawConn.connect(port);
    c.write(get(`http://127.0.0.1:${l.port}/`));
    const want = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`;
    const got = dec.decode(await c.readBytes(want.length));
    expect(got).toBe(want);
    // The proxy found the body's end: the client connection is still usable.
    c.write(get(`http://127.0.0.1:${l.port}/again`));
    expect(dec.decode(await c.readBytes(want.length))).toBe(want);
  });

  test("chunked request and response bodies of a few MiB arrive byte-exact (curl, SHA-256)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "egressd-http-chunked-"));
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const up = new Uint8Array(3 << 20).map((_, i) => (i * 7 + (i >> 11)) & 0xff);
    writeFileSync(join(dir, "up.bin"), up);
    const down = new Uint8Array(5 << 20).map((_, i) => (i * 13 + (i >> 9)) & 0xff);
    const s = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (r) => {
        const got = new Uint8Array(await r.arrayBuffer());
        const sha = createHash("sha256").update(got).digest("hex");
        let off = 0;
        // A stream without a length: Bun sends it chunked.
        const stream = new ReadableStream<Uint8Array>({
          pull(ctl) {
            if (off >= down.length) return ctl.close();
            const n = Math.min(100_003, down.length - off);
            ctl.enqueue(down.slice(off, off + n));
            off += n;
          },
        });
        return new Response(stream, { headers: { "x-request-sha256": sha, "x-request-te": r.headers.get("transfer-encoding") ?? "" } });
      },
    });
    onCleanup(() => void s.stop(true));
    const { port } = start();
    const proc = Bun.spawn(
      ["curl", "-sS", "-D", join(dir, "head"), "-o", join(dir, "down.bin"), "-x", `http://127.0.0.1:${port}`, "-H", "Transfer-Encoding: chunked", "--data-binary", `@${join(dir, "up.bin")}`, `http://127.0.0.1:${s.port}/sha`],
      { stderr: "pipe" },
    );
    expect(await proc.exited, await new Response(proc.stderr).text()).toBe(0);
    const head = readFileSync(join(dir, "head"), "utf8");
    expect(head).toMatch(/transfer-encoding: chunked/i);
    expect(head).toContain(`x-request-sha256: ${createHash("sha256").update(up).digest("hex")}`);
    expect(head).toMatch(/x-request-te: chunked/i);
    const got = readFileSync(join(dir, "down.bin"));
    expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(down).digest("hex"));
  });

  test("Upgrade: websocket over plain HTTP: 101, then frames echo both ways through the relay", async () => {
    const s = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (r, srv) => (srv.upgrade(r) ? undefined : new Response("no upgrade", { status: 400 })),
      websocket: { message: (ws, m) => void ws.send(`echo:${m}`) },
    });
    onCleanup(() => void s.stop(true));
    const { server, port } = start();
    const c = await RawConn.connect(port);
    c.write(
      enc.encode(
        `GET http://127.0.0.1:${s.port}/ws HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      ),
    );
    const head = await c.read((b) => {
      const i = dec.decode(b).indexOf("\r\n\r\n");
      return i < 0 ? NEED_MORE : { value: dec.decode(b.subarray(0, i)), consumed: i + 4 };
    });
    expect(head).toStartWith("HTTP/1.1 101 ");
    expect(head).toMatch(/\r\nUpgrade: websocket/i);
    expect(head).toContain("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    for (const word of ["hi", "there"]) {
      // A masked text frame (RFC 6455 §5.2), as a client must send.
      const mask = [1, 2, 3, 4];
      const payload = enc.encode(word).map((x, i) => x ^ mask[i % 4]!);
      c.write(Uint8Array.of(0x81, 0x80 | payload.length, ...mask, ...payload));
      const frame = await c.readBytes(2 + 5 + word.length);
      expect(frame[0]).toBe(0x81);
      expect(dec.decode(frame.subarray(2))).toBe(`echo:${word}`);
    }
    c.end();
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.byProtocol.http.bytesTargetToClient).toBeGreaterThan(head.length);
  });
});

describe("CONNECT", () => {
  test("200 Connection established, then the relay; bytes after the head are early data", async () => {
    const echo = echoServer();
    const { server, port } = start();
    const c = await RawConn.connect(port);
    c.write(enc.encode(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\nearly`));
    const want = "HTTP/1.1 200 Connection established\r\n\r\nearly";
    expect(dec.decode(await c.readBytes(want.length))).toBe(want);
    c.write(enc.encode("more"));
    expect(dec.decode(await c.readBytes(4))).toBe("more");
    c.shutdown(); // half-close reaches the target, which ends too
    expect((await c.readToEnd()).length).toBe(0);
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.byProtocol.http_connect.connectionsTotal.ok).toBe(1);
    expect(server.stats.byProtocol.http_connect.bytesClientToTarget).toBe(9);
    expect(server.stats.byProtocol.socks5.connectionsTotal.ok).toBe(0);
  });

  test("CONNECT to an IPv6 literal in brackets", async () => {
    const l = Bun.listen({ hostname: "::1", port: 0, socket: { data: (s, d) => void s.write(d) } });
    onCleanup(() => l.stop(true));
    const { port } = start();
    const c = await RawConn.connect(port);
    c.write(enc.encode(`CONNECT [::1]:${l.port} HTTP/1.1\r\nHost: [::1]:${l.port}\r\n\r\nv6`));
    const want = "HTTP/1.1 200 Connection established\r\n\r\nv6";
    expect(dec.decode(await c.readBytes(want.length))).toBe(want);
    c.end();
  });

  test("SOCKS5 and HTTP on one port: both served, counted under their own protocol", async () => {
    const echo = echoServer();
    const { server, port } = start();
    const r = await socksConnect(port, host("127.0.0.1"), echo.port);
    expect(r.reply.reply).toBe(0);
    r.conn.end();
    const c = await RawConn.connect(port);
    c.write(enc.encode(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\n`));
    expect(dec.decode(await c.readBytes(39))).toBe("HTTP/1.1 200 Connection established\r\n\r\n");
    c.end();
    await until(() => server.stats.connectionsActive === 0);
    expect([server.stats.byProtocol.socks5.connectionsTotal.ok, server.stats.byProtocol.http_connect.connectionsTotal.ok]).toEqual([1, 1]);
  });

  test("a listener that speaks only socks5 refuses HTTP with SOCKS5's error; one that speaks only http serves it", async () => {
    const echo = echoServer();
    const { server } = start({ listeners: [{ host: "127.0.0.1", port: 0, protocols: ["socks5"] }, { host: "127.0.0.2", port: 0, protocols: ["http"] }] });
    const [socksOnly, httpOnly] = server.listening.map((l) => Number(l.split(":").pop()));
    const a = await RawConn.connect(socksOnly!);
    a.write(enc.encode(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\n`));
    expect((await a.readToEnd()).length).toBe(0);
    const b = await RawConn.connect(httpOnly!, "127.0.0.2");
    b.write(enc.encode(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\n`));
    expect(dec.decode(await b.readBytes(12))).toBe("HTTP/1.1 200");
    b.end();
    expect(() => new ProxyServer({ listeners: [{ host: "127.0.0.1", port: 0, protocols: ["gopher"] }], allowClients: LOOPBACK })).toThrow(/"gopher" is not a protocol/);
  });
});

describe("refusals a person can read", () => {
  async function ask(port: number, request: string): Promise<string> {
    const c = await RawConn.connect(port);
    c.write(enc.encode(request));
    return dec.decode(await c.readToEnd(15_000));
  }

  test("403 names the private destination and the setting; 502 for a refused port; 504 for a timeout", async () => {
    const hole = await blackhole();
    const { server, port } = start({ allowDestinations: [], connectTimeoutMs: 500 });
    const denied = await ask(port, "GET http://10.0.0.5/ HTTP/1.1\r\nHost: 10.0.0.5\r\n\r\n");
    expect(denied).toStartWith("HTTP/1.1 403 Forbidden\r\n");
    expect(denied).toEndWith("\r\n\r\ndestination 10.0.0.5 is a private address; see proxy.allowDestinations\n");
    const connectDenied = await ask(port, "CONNECT 127.0.0.2:22 HTTP/1.1\r\n\r\n");
    expect(connectDenied).toContain("destination 127.0.0.2 is a loopback address; see proxy.allowDestinations");
    const open = start({ connectTimeoutMs: 500 });
    const refused = await ask(open.port, `CONNECT 127.0.0.1:${closedPort()} HTTP/1.1\r\n\r\n`);
    expect(refused).toStartWith("HTTP/1.1 502 Bad Gateway\r\n");
    expect(refused).toContain("refused the connection");
    const slow = await ask(open.port, `GET http://127.0.0.1:${hole}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(slow).toStartWith("HTTP/1.1 504 Gateway Timeout\r\n");
    expect(slow).toContain("did not answer in time");
    await until(() => server.stats.connectionsActive === 0 && open.server.stats.connectionsActive === 0);
    expect(server.stats.byProtocol.http.connectionsTotal.denied_destination).toBe(1);
    expect(server.stats.byProtocol.http_connect.connectionsTotal.denied_destination).toBe(1);
    expect(open.server.stats.byProtocol.http_connect.connectionsTotal.refused).toBe(1);
    expect(open.server.stats.byProtocol.http.connectionsTotal.timeout).toBe(1);
  });

  test("407 with Proxy-Authenticate without or with wrong credentials, counted; good ones pass", async () => {
    const a = namedServer("A");
    const { server, port } = start({ auth: { username: "pod", password: "s3cret" } });
    const none = await ask(port, `GET http://127.0.0.1:${a}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(none).toStartWith("HTTP/1.1 407 Proxy Authentication Required\r\n");
    expect(none).toContain('\r\nProxy-Authenticate: Basic realm="egressd", charset="UTF-8"\r\n');
    const wrong = await ask(port, `CONNECT 127.0.0.1:${a} HTTP/1.1\r\nProxy-Authorization: ${encodeBasicCredentials("pod", "nope")}\r\n\r\n`);
    expect(wrong).toStartWith("HTTP/1.1 407 ");
    expect(wrong).toContain("bad username or password");
    const good = await ask(port, `GET http://127.0.0.1:${a}/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nProxy-Authorization: ${encodeBasicCredentials("pod", "s3cret")}\r\n\r\n`);
    expect(good).toStartWith("HTTP/1.1 200 ");
    // The credentials stop at the proxy.
    expect(good).toContain("A GET /ok host=");
    await until(() => server.stats.connectionsActive === 0);
    expect(server.stats.authFailures).toBe(2);
    expect(server.stats.connectionsTotal.auth_failed).toBe(2);
  });

  test.each([
    ["a malformed request line", "GET  http://x/ HTTP/1.1\r\n\r\n", 400],
    ["an https:// absolute URI", "GET https://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 501],
    ["HTTP/2.0", "GET http://x/ HTTP/2.0\r\n\r\n", 505],
    ["a request line over 8 KiB", `GET http://x/${"a".repeat(9000)} HTTP/1.1\r\n\r\n`, 414],
    ["a head over 16 KiB", `GET http://x/ HTTP/1.1\r\n${"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(500)}\r\n`, 431],
    ["Transfer-Encoding with Content-Length", "POST http://x/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
  ])("%s -> %d, then close", async (_name, request, status) => {
    const { server, port } = start();
    const text = await ask(port, request);
    expect(text).toStartWith(`HTTP/1.1 ${status} `);
    expect(text).toContain("\r\nConnection: close\r\n");
    await until(() => server.stats.connectionsTotal.protocol_error === 1);
  });

  test("a request head still incomplete at the handshake deadline is closed", async () => {
    const { server, port } = start({ handshakeTimeoutMs: 200 });
    const c = await RawConn.connect(port);
    c.write(enc.encode("GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n"));
    await c.readToEnd(3000);
    expect(server.stats.handshakeTimeouts).toBe(1);
  });
});

/** A logger that keeps every line as message and fields. */
function recordingLog(): { log: NonNullable<ProxyServerOptions["log"]>; lines: { msg: string; f: Record<string, unknown> }[] } {
  const lines: { msg: string; f: Record<string, unknown> }[] = [];
  const keep = (msg: string, f?: Record<string, unknown>) => void lines.push({ msg, f: f ?? {} });
  return { log: { debugEnabled: false, debug: () => {}, info: keep, warn: keep, error: keep }, lines };
}

describe("the log of a kept-alive forwarding connection", () => {
  test("one line per request names its destination, status and bytes; the connection's line lists every target", async () => {
    const a = namedServer("A");
    const b = namedServer("B", "127.0.0.2");
    const closed = closedPort();
    const { log, lines } = recordingLog();
    const { server, port } = start({ log });
    const c = await RawConn.connect(port);
    c.write(get(`http://127.0.0.1:${a}/one`));
    await c.read(response);
    c.write(enc.encode(`POST http://127.0.0.2:${b}/two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`));
    const two = await c.read(response);
    c.write(get(`http://127.0.0.1:${a}/three`));
    await c.read(response);
    c.write(get(`http://127.0.0.1:${closed}/four`));
    expect(dec.decode(await c.readToEnd())).toStartWith("HTTP/1.1 502 ");
    await until(() => server.stats.connectionsActive === 0);

    const requests = lines.filter((l) => l.msg === "proxy http request").map((l) => l.f);
    expect(requests.map((f) => [f.method, f.target, f.status, f.result])).toEqual([
      ["GET", `127.0.0.1:${a}`, 200, "ok"],
      ["POST", `127.0.0.2:${b}`, 200, "ok"],
      ["GET", `127.0.0.1:${a}`, 200, "ok"],
      ["GET", `127.0.0.1:${closed}`, 502, "refused"],
    ]);
    expect(requests.map((f) => f.address)).toEqual([`127.0.0.1:${a}`, `127.0.0.2:${b}`, `127.0.0.1:${a}`, undefined]);
    expect(requests[3]!.reason).toMatch(/ECONNREFUSED|refused/i);
    // up: the head as forwarded plus the body; down: the response as the upstream sent it.
    const up = requests[1]!.up as number;
    expect(up).toBeGreaterThan(`POST /two HTTP/1.1\r\nHost: 127.0.0.2:${b}\r\n\r\nhello`.length);
    expect(requests[1]!.down as number).toBeGreaterThan(two.body.length);
    expect(requests[3]!.up).toBe(0);
    for (const f of requests) expect(f.duration).toMatch(/^\d+\.\d{3}$/);

    const conn = lines.filter((l) => l.msg === "proxy connection closed").map((l) => l.f);
    expect(conn.length).toBe(1);
    expect(conn[0]!.protocol).toBe("http");
    expect(conn[0]!.requests).toBe(4);
    expect(conn[0]!.targets).toBe(`127.0.0.1:${a},127.0.0.2:${b},127.0.0.1:${closed}`);
    // The request lines' bytes are the upstreams' share of the connection's.
    expect(conn[0]!.up as number).toBe(requests.reduce((n, f) => n + (f.up as number), 0));
  });

  test("a connection to one destination has no targets list; a CONNECT after forwarding is a request line too", async () => {
    const a = namedServer("A");
    const echo = echoServer();
    const { log, lines } = recordingLog();
    const { server, port } = start({ log });
    const c = await RawConn.connect(port);
    c.write(get(`http://127.0.0.1:${a}/one`));
    await c.read(response);
    c.write(enc.encode(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\n`));
    expect(dec.decode(await c.readBytes(12))).toBe("HTTP/1.1 200");
    c.end();
    await until(() => server.stats.connectionsActive === 0);
    const requests = lines.filter((l) => l.msg === "proxy http request").map((l) => [l.f.method, l.f.target, l.f.status]);
    expect(requests).toEqual([
      ["GET", `127.0.0.1:${a}`, 200],
      ["CONNECT", `127.0.0.1:${echo.port}`, 200],
    ]);
    const conn = lines.find((l) => l.msg === "proxy connection closed")!.f;
    expect(conn.targets).toBe(`127.0.0.1:${a},127.0.0.1:${echo.port}`);

    lines.length = 0;
    const d = await RawConn.connect(port);
    d.write(get(`http://127.0.0.1:${a}/x`));
    await d.read(response);
    d.write(get(`http://127.0.0.1:${a}/y`, "Connection: close\r\n"));
    await d.readToEnd();
    await until(() => server.stats.connectionsActive === 0);
    const only = lines.find((l) => l.msg === "proxy connection closed")!.f;
    expect([only.target, only.requests, only.targets]).toEqual([`127.0.0.1:${a}`, 2, undefined]);
  });
});

test("a client that half-closes in the middle of its request body gets 400, and the request's line says so", async () => {
  const a = namedServer("A");
  const { log, lines } = recordingLog();
  const { server, port } = start({ log });
  const c = await RawConn.connect(port);
  c.write(enc.encode(`POST http://127.0.0.1:${a}/p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc`));
  await Bun.sleep(50);
  c.shutdown();
  const text = dec.decode(await c.readToEnd());
  expect(text).toStartWith("HTTP/1.1 400 Bad Request\r\n");
  expect(text).toEndWith("the client closed before its request body was complete\n");
  await until(() => server.stats.connectionsActive === 0);
  const req = lines.find((l) => l.msg === "proxy http request")!.f;
  expect([req.target, req.status, req.result]).toEqual([`127.0.0.1:${a}`, 400, "protocol_error"]);
});

describe("an idle kept-alive forwarding connection", () => {
  /** A raw HTTP server answering each request with `ok`, counting its open connections. */
  function countingServer(): { port: number; open: () => number } {
    let open = 0;
    const l = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: () => void open++,
        close: () => void open--,
        data: (s) => void s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
      },
    });
    onCleanup(() => l.stop(true));
    return { port: l.port, open: () => open };
  }

  test("with proxy.idleTimeout 0 it is kept past the handshake deadline, holding no upstream connection", async () => {
    const t = countingServer();
    const { server, port } = start({ handshakeTimeoutMs: 100 });
    const c = await RawConn.connect(port);
    c.write(get(`http://127.0.0.1:${t.port}/a`));
    expect((await c.read(response)).body).toBe("ok");
    await until(() => t.open() === 0); // the upstream went with its response
    await Bun.sleep(800); // eight handshake deadlines, idle
    expect(server.stats.connectionsActive).toBe(1);
    expect(t.open()).toBe(0);
    c.write(get(`http://127.0.0.1:${t.port}/b`));
    expect((await c.read(response)).body).toBe("ok");
    expect(server.stats.handshakeTimeouts).toBe(0);
  });

  test("with proxy.idleTimeout set it is closed after that long without a byte, and logged so", async () => {
    const t = countingServer();
    const { log, lines } = recordingLog();
    const { server, port } = start({ idleTimeoutMs: 300, log });
    const c = await RawConn.connect(port);
    c.write(get(`http://127.0.0.1:${t.port}/a`));
    expect((await c.read(response)).body).toBe("ok");
    expect((await c.readToEnd(5000)).length).toBe(0); // closed by the proxy, not by us
    await until(() => server.stats.connectionsActive === 0);
    const conn = lines.find((l) => l.msg === "proxy connection closed")!.f;
    expect([conn.result, conn.reason, conn.requests]).toEqual(["ok", "idle timeout", 1]);
  });
});
