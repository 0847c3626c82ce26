// Layer 1: table tests for the HTTP/1.1 request and response head parsers, request targets, body
// framing and the head encoders (lib/proxy/http/).
import { describe, expect, test } from "bun:test";
import { parseRequestHead, encodeRequestHead, type RequestHead } from "../../lib/proxy/http/request.ts";
import { parseResponseHead, encodeResponseHead } from "../../lib/proxy/http/response.ts";
import { parseRequestTarget } from "../../lib/proxy/http/target.ts";
import { DEFAULT_HEAD_LIMITS, HttpProtocolError, NEED_MORE, type HttpErrorKind, latin1, latin1Bytes } from "../../lib/proxy/http/wire.ts";

const enc = (s: string) => latin1Bytes(s);

function req(s: string, limits = DEFAULT_HEAD_LIMITS) {
  return parseRequestHead(enc(s), limits);
}

function ok(s: string): RequestHead {
  const r = req(s);
  if (r === NEED_MORE || r instanceof HttpProtocolError) throw new Error(`expected a head from ${JSON.stringify(s)}, got ${r === NEED_MORE ? "NEED_MORE" : r.message}`);
  return r.value;
}

function err(s: string | Uint8Array, limits = DEFAULT_HEAD_LIMITS): HttpProtocolError {
  const r = parseRequestHead(typeof s === "string" ? enc(s) : s, limits);
  if (!(r instanceof HttpProtocolError)) throw new Error(`expected an error from ${JSON.stringify(typeof s === "string" ? s.slice(0, 200) : latin1(s).slice(0, 200))}, got ${r === NEED_MORE ? "NEED_MORE" : "a head"}`);
  return r;
}

const VALID_REQUESTS = [
  "GET http://www.example.test/ HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
  "CONNECT www.example.test:443 HTTP/1.1\r\nHost: www.example.test:443\r\nProxy-Connection: Keep-Alive\r\n\r\n",
  "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n",
  "POST http://198.51.100.7:8080/upload?x=1 HTTP/1.1\r\nHost: 198.51.100.7:8080\r\nContent-Length: 5\r\n\r\n",
  "PUT http://h.example.test/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
  "GET http://h.example.test HTTP/1.0\r\n\r\n",
  "\r\nGET http://h.example.test/a HTTP/1.1\r\nX-Empty:\r\nX-Tabs:\t a\tb \t\r\n\r\n",
];

describe("parseRequestHead: valid heads", () => {
  test.each(VALID_REQUESTS)("every truncated prefix is NEED_MORE, the whole is a head: %j", (s) => {
    const bytes = enc(s);
    for (let n = 0; n < bytes.length; n++) expect(parseRequestHead(bytes.subarray(0, n))).toBe(NEED_MORE);
    const r = parseRequestHead(bytes);
    if (r === NEED_MORE || r instanceof HttpProtocolError) throw new Error(String(r));
    expect(r.consumed).toBe(bytes.length);
  });

  test("bytes after the head are not consumed (pipelined body or request)", () => {
    const head = VALID_REQUESTS[3]!;
    const r = parseRequestHead(enc(head + "hello" + VALID_REQUESTS[0]));
    if (r === NEED_MORE || r instanceof HttpProtocolError) throw new Error(String(r));
    expect(r.consumed).toBe(head.length);
  });

  test("an absolute-form GET", () => {
    const h = ok(VALID_REQUESTS[0]!);
    expect(h.method).toBe("GET");
    expect(h.target).toEqual({ form: "absolute", host: "www.example.test", port: 80, authority: "www.example.test", path: "/" });
    expect(h.version).toEqual({ major: 1, minor: 1 });
    expect(h.headers).toEqual([["Host", "www.example.test"], ["User-Agent", "curl/8.0"], ["Accept", "*/*"]]);
    expect(h.body).toEqual({ kind: "none" });
    expect(h.persistent).toBe(true);
  });

  test("CONNECT with a name, and with an IPv6 literal", () => {
    expect(ok(VALID_REQUESTS[1]!).target).toEqual({ form: "authority", host: "www.example.test", port: 443 });
    expect(ok(VALID_REQUESTS[2]!).target).toEqual({ form: "authority", host: "2001:db8::1", port: 8443 });
  });

  test("framing: Content-Length, chunked, none; HTTP/1.0 is not persistent by default", () => {
    expect(ok(VALID_REQUESTS[3]!).body).toEqual({ kind: "length", length: 5 });
    expect(ok(VALID_REQUESTS[4]!).body).toEqual({ kind: "chunked" });
    const h10 = ok(VALID_REQUESTS[5]!);
    expect(h10.body).toEqual({ kind: "none" });
    expect(h10.persistent).toBe(false);
    expect(ok("GET http://a.test/ HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").persistent).toBe(true);
    expect(ok("GET http://a.test/ HTTP/1.1\r\nConnection: close\r\n\r\n").persistent).toBe(false);
  });

  test("leading empty lines are skipped; OWS around values is trimmed, inner whitespace kept", () => {
    const h = ok(VALID_REQUESTS[6]!);
    expect(h.headers).toEqual([["X-Empty", ""], ["X-Tabs", "a\tb"]]);
  });

  test("identical Content-Length values are one length (RFC 9110 §8.6)", () => {
    expect(ok("POST http://a.test/ HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n").body).toEqual({ kind: "length", length: 7 });
    expect(ok("POST http://a.test/ HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n").body).toEqual({ kind: "length", length: 7 });
  });

  test("a transfer coding before chunked is framed as chunked", () => {
    expect(ok("POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").body).toEqual({ kind: "chunked" });
    expect(ok("POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n").body).toEqual({ kind: "chunked" });
  });

  test("head limits: exactly at the limit parses, one byte over is 431", () => {
    const base = "GET http://a.test/ HTTP/1.1\r\nX-Pad: \r\n\r\n";
    const limits = { maxHeadBytes: 200, maxLineBytes: 190, maxHeaders: 10 };
    const fill = "x".repeat(200 - base.length);
    const exact = base.replace("X-Pad: ", "X-Pad: " + fill);
    expect(exact.length).toBe(200);
    expect(typeof req(exact, limits)).toBe("object");
    expect(req(exact, limits)).not.toBeInstanceOf(HttpProtocolError);
    const over = base.replace("X-Pad: ", "X-Pad: " + fill + "x");
    const e = err(over, limits);
    expect([e.kind, e.status]).toEqual(["headTooLarge", 431]);
  });

  test("the default limit: a 16 KiB head without its end is 431, not NEED_MORE forever", () => {
    const many = "GET http://a.test/ HTTP/1.1\r\n" + "X-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(100);
    const limits = { ...DEFAULT_HEAD_LIMITS, maxHeaders: 1000 };
    expect(many.length).toBeLessThan(16 * 1024);
    expect(req(many, limits)).toBe(NEED_MORE);
    const huge = "GET http://a.test/ HTTP/1.1\r\n" + "X-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(400);
    expect(err(huge, limits).status).toBe(431);
  });
});

// [name, head, kind, status]
const BAD_REQUESTS: [string, string, HttpErrorKind, number][] = [
  ["bare LF ending the request line", "GET http://a.test/ HTTP/1.1\nHost: a.test\r\n\r\n", "badLineEnding", 400],
  ["bare LF ending a header", "GET http://a.test/ HTTP/1.1\r\nHost: a.test\n\r\n", "badLineEnding", 400],
  ["bare LF as the empty line", "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\n", "badLineEnding", 400],
  ["bare CR inside a header", "GET http://a.test/ HTTP/1.1\r\nX: a\rb\r\n\r\n", "badLineEnding", 400],
  ["bare CR, head incomplete", "GET http://a.test/ HTTP/1.1\r\nX: a\rb", "badLineEnding", 400],
  ["obs-fold", "GET http://a.test/ HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n", "obsFold", 400],
  ["obs-fold with a tab", "GET http://a.test/ HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n", "obsFold", 400],
  ["whitespace before the first header", "GET http://a.test/ HTTP/1.1\r\n Host: a.test\r\n\r\n", "obsFold", 400],
  ["whitespace before the colon", "GET http://a.test/ HTTP/1.1\r\nHost : a.test\r\n\r\n", "badHeader", 400],
  ["header without a colon", "GET http://a.test/ HTTP/1.1\r\nHost a.test\r\n\r\n", "badHeader", 400],
  ["empty header name", "GET http://a.test/ HTTP/1.1\r\n: x\r\n\r\n", "badHeader", 400],
  ["NUL in a header value", "GET http://a.test/ HTTP/1.1\r\nX: a\0b\r\n\r\n", "badHeader", 400],
  ["non-token header name", "GET http://a.test/ HTTP/1.1\r\nX(y): 1\r\n\r\n", "badHeader", 400],
  ["two Content-Lengths that differ", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "badContentLength", 400],
  ["a Content-Length list that differs", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", "badContentLength", 400],
  ["negative Content-Length", "POST http://a.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "badContentLength", 400],
  ["Content-Length with a plus", "POST http://a.test/ HTTP/1.1\r\nContent-Length: +5\r\n\r\n", "badContentLength", 400],
  ["empty Content-Length", "POST http://a.test/ HTTP/1.1\r\nContent-Length:\r\n\r\n", "badContentLength", 400],
  ["huge Content-Length", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "badContentLength", 400],
  ["TE and CL together (CL.TE smuggling)", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", "smuggling", 400],
  ["TE and CL together, TE first", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", "smuggling", 400],
  ["chunked not last", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "badTransferEncoding", 400],
  ["chunked twice", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "badTransferEncoding", 400],
  ["an unknown coding alone", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", "badTransferEncoding", 400],
  ["TE in HTTP/1.0", "POST http://a.test/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "badTransferEncoding", 400],
  ["empty coding", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip,,chunked\r\n\r\n", "badTransferEncoding", 400],
  ["a coding that is not a token", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", "unsupportedTransferEncoding", 501],
  ["two Host fields", "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", "badHost", 400],
  ["HTTP/1.1 origin form without Host", "GET / HTTP/1.1\r\n\r\n", "badHost", 400],
  ["Host that is not an authority", "GET http://a.test/ HTTP/1.1\r\nHost: a b\r\n\r\n", "badHost", 400],
  ["two spaces in the request line", "GET  http://a.test/ HTTP/1.1\r\n\r\n", "badStartLine", 400],
  ["a tab in the request line", "GET\thttp://a.test/ HTTP/1.1\r\n\r\n", "badStartLine", 400],
  ["no version", "GET http://a.test/\r\n\r\n", "badStartLine", 400],
  ["a non-token method", "G(T http://a.test/ HTTP/1.1\r\n\r\n", "badMethod", 400],
  ["lower-case version", "GET http://a.test/ http/1.1\r\n\r\n", "badVersion", 400],
  ["HTTP/2.0", "GET http://a.test/ HTTP/2.0\r\n\r\n", "unsupportedVersion", 505],
  ["HTTP/0.9", "GET http://a.test/ HTTP/0.9\r\n\r\n", "unsupportedVersion", 505],
  ["https absolute form", "GET https://a.test/ HTTP/1.1\r\n\r\n", "unsupportedScheme", 501],
  ["ftp absolute form", "GET ftp://a.test/ HTTP/1.1\r\n\r\n", "unsupportedScheme", 501],
  ["CONNECT without a port", "CONNECT a.test HTTP/1.1\r\n\r\n", "badPort", 400],
  ["CONNECT with an empty port", "CONNECT a.test: HTTP/1.1\r\n\r\n", "badPort", 400],
  ["CONNECT to port 0", "CONNECT a.test:0 HTTP/1.1\r\n\r\n", "badPort", 400],
  ["CONNECT to port 65536", "CONNECT a.test:65536 HTTP/1.1\r\n\r\n", "badPort", 400],
  ["CONNECT with a non-numeric port", "CONNECT a.test:https HTTP/1.1\r\n\r\n", "badPort", 400],
  ["CONNECT with a bare IPv6 address", "CONNECT 2001:db8::1:443 HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["CONNECT with an unclosed bracket", "CONNECT [2001:db8::1:443 HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["CONNECT with a non-IPv6 literal in brackets", "CONNECT [a.test]:443 HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["CONNECT with an IPv6 zone id", "CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["CONNECT in absolute form", "CONNECT http://a.test:443/ HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["CONNECT in origin form", "CONNECT / HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["GET in authority form", "GET a.test:80 HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["userinfo in the target", "GET http://user:pw@a.test/ HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["a fragment in the target", "GET http://a.test/#x HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["an empty host", "GET http:///x HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["an underscore-free bad name", "GET http://a..test/ HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["a DEL in the target", "GET http://a.test/\x7f HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["a high byte in the target", "GET http://a.test/\xe9 HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["an absolute URI with a bad port", "GET http://a.test:99999/ HTTP/1.1\r\n\r\n", "badPort", 400],
  ["a decimal IPv4 address", "GET http://2130706433/ HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["a shortened IPv4 address", "CONNECT 127.1:443 HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["a hex IPv4 address", "GET http://0x7f.0.0.1/ HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["an octal-looking IPv4 address", "GET http://0177.0.0.1/ HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["* for a GET", "GET * HTTP/1.1\r\n\r\n", "badTarget", 400],
  ["an empty status line on the request side only after blank lines", "\r\n\r\n \r\n", "badStartLine", 400],
];

describe("parseRequestHead: malformed heads", () => {
  test.each(BAD_REQUESTS)("%s", (_name, head, kind, status) => {
    const e = err(head);
    expect(e.kind).toBe(kind);
    expect(e.status).toBe(status);
    expect(e.message.length).toBeGreaterThan(0);
  });

  test("an oversized request line is 414 as soon as it is over, before any CRLF", () => {
    const limits = { maxHeadBytes: 1000, maxLineBytes: 100, maxHeaders: 10 };
    const line = "GET http://a.test/" + "a".repeat(100);
    const e = err(line, limits);
    expect([e.kind, e.status]).toEqual(["requestLineTooLong", 414]);
    expect(err(line + " HTTP/1.1\r\n\r\n", limits).kind).toBe("requestLineTooLong");
  });

  test("an oversized header line is 431, complete or not", () => {
    const limits = { maxHeadBytes: 1000, maxLineBytes: 100, maxHeaders: 10 };
    const head = "GET http://a.test/ HTTP/1.1\r\nX-Big: " + "b".repeat(100);
    expect([err(head, limits).kind, err(head, limits).status]).toEqual(["headerLineTooLong", 431]);
    expect(err(head + "\r\n\r\n", limits).kind).toBe("headerLineTooLong");
  });

  test("a line exactly at the limit is accepted", () => {
    const limits = { maxHeadBytes: 1000, maxLineBytes: 100, maxHeaders: 10 };
    const name = "X-Big: ";
    const head = "GET http://a.test/ HTTP/1.1\r\n" + name + "b".repeat(100 - name.length) + "\r\n\r\n";
    expect(req(head, limits)).not.toBeInstanceOf(HttpProtocolError);
  });

  test("too many headers is 431", () => {
    const limits = { ...DEFAULT_HEAD_LIMITS, maxHeaders: 5 };
    expect(req("GET http://a.test/ HTTP/1.1\r\n" + "X: 1\r\n".repeat(5) + "\r\n", limits)).not.toBeInstanceOf(HttpProtocolError);
    const e = err("GET http://a.test/ HTTP/1.1\r\n" + "X: 1\r\n".repeat(6) + "\r\n", limits);
    expect([e.kind, e.status]).toEqual(["tooManyHeaders", 431]);
  });

  test("an endless run of empty lines ends at the head limit", () => {
    const e = err("\r\n".repeat(9000));
    expect(e.status).toBe(431);
  });
});

describe("parseRequestTarget", () => {
  // [method, target, expected]
  const rows: [string, string, unknown][] = [
    ["GET", "http://A.Example.TEST/", { form: "absolute", host: "a.example.test", port: 80, authority: "a.example.test", path: "/" }],
    ["GET", "HTTP://a.test:80/x", { form: "absolute", host: "a.test", port: 80, authority: "a.test", path: "/x" }],
    ["GET", "http://a.test:/x", { form: "absolute", host: "a.test", port: 80, authority: "a.test", path: "/x" }],
    ["GET", "http://a.test:8080", { form: "absolute", host: "a.test", port: 8080, authority: "a.test:8080", path: "/" }],
    ["GET", "http://a.test?q=1", { form: "absolute", host: "a.test", port: 80, authority: "a.test", path: "/?q=1" }],
    ["GET", "http://[2001:db8::1]/p", { form: "absolute", host: "2001:db8::1", port: 80, authority: "[2001:db8::1]", path: "/p" }],
    ["GET", "http://[::ffff:10.0.0.1]:81/", { form: "absolute", host: "::ffff:10.0.0.1", port: 81, authority: "[::ffff:10.0.0.1]:81", path: "/" }],
    ["GET", "http://192.0.2.1/a%20b", { form: "absolute", host: "192.0.2.1", port: 80, authority: "192.0.2.1", path: "/a%20b" }],
    ["GET", "http://a.test./", { form: "absolute", host: "a.test", port: 80, authority: "a.test", path: "/" }],
    ["CONNECT", "a.test:443", { form: "authority", host: "a.test", port: 443 }],
    ["CONNECT", "1.example.test:443", { form: "authority", host: "1.example.test", port: 443 }],
    ["CONNECT", "host-0x1.test:443", { form: "authority", host: "host-0x1.test", port: 443 }],
    ["CONNECT", "192.0.2.1:22", { form: "authority", host: "192.0.2.1", port: 22 }],
    ["CONNECT", "[::1]:443", { form: "authority", host: "::1", port: 443 }],
    ["GET", "/index.html?x", { form: "origin", path: "/index.html?x" }],
    ["OPTIONS", "*", { form: "asterisk" }],
  ];
  test.each(rows)("%s %s", (method, target, expected) => {
    expect(parseRequestTarget(method, target)).toEqual(expected as never);
  });

  test("Host is replaced by the target's authority even if it disagrees (RFC 9112 §3.2.2)", () => {
    const h = ok("GET http://a.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n");
    expect(h.target).toMatchObject({ host: "a.test", authority: "a.test" });
  });
});

describe("encodeRequestHead / encodeResponseHead", () => {
  test.each(VALID_REQUESTS.filter((s) => !s.startsWith("\r\n")))("round trip: %j", (s) => {
    const h = ok(s);
    const bytes = encodeRequestHead({ method: h.method, target: h.rawTarget, version: h.version, headers: h.headers });
    expect(latin1(bytes)).toBe(s);
  });

  test("round trip of a response head", () => {
    const s = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-Y: a b\r\n\r\n";
    const r = parseResponseHead(enc(s), { requestMethod: "GET" });
    if (r === NEED_MORE || r instanceof HttpProtocolError) throw new Error(String(r));
    expect(latin1(encodeResponseHead(r.value))).toBe(s);
  });

  test("encoders refuse CR, LF and NUL and bad names instead of splitting a head", () => {
    expect(() => encodeRequestHead({ method: "GET", target: "/", headers: [["X", "a\r\nInjected: 1"]] })).toThrow(RangeError);
    expect(() => encodeRequestHead({ method: "GET", target: "/", headers: [["X Y", "1"]] })).toThrow(RangeError);
    expect(() => encodeRequestHead({ method: "G T", target: "/", headers: [] })).toThrow(RangeError);
    expect(() => encodeRequestHead({ method: "GET", target: "/ x", headers: [] })).toThrow(RangeError);
    expect(() => encodeResponseHead({ status: 200, reason: "OK\r\nX: 1", headers: [] })).toThrow(RangeError);
    expect(() => encodeResponseHead({ status: 42, reason: "", headers: [] })).toThrow(RangeError);
    expect(() => encodeResponseHead({ status: 200, reason: "\u0100", headers: [] })).toThrow(RangeError);
  });
});

describe("parseResponseHead", () => {
  function res(s: string, method = "GET") {
    const r = parseResponseHead(enc(s), { requestMethod: method });
    if (r === NEED_MORE || r instanceof HttpProtocolError) throw new Error(`expected a response head, got ${r === NEED_MORE ? "NEED_MORE" : r.message}`);
    return r.value;
  }
  // [status line + fields, method, framing, persistent]
  const rows: [string, string, unknown, boolean][] = [
    ["HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", "GET", { kind: "length", length: 12 }, true],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", { kind: "chunked" }, true],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", { kind: "close" }, false],
    ["HTTP/1.1 200 OK\r\n\r\n", "GET", { kind: "close" }, false],
    ["HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", { kind: "close" }, false],
    ["HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", { kind: "length", length: 1 }, false],
    ["HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n", "GET", { kind: "length", length: 1 }, true],
    ["HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", "HEAD", { kind: "none" }, true],
    ["HTTP/1.1 204 No Content\r\nContent-Length: 12\r\n\r\n", "GET", { kind: "none" }, true],
    ["HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", { kind: "none" }, true],
    ["HTTP/1.1 100 Continue\r\n\r\n", "POST", { kind: "none" }, true],
    ["HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "GET", { kind: "tunnel" }, false],
    ["HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", "GET", { kind: "length", length: 3 }, false],
    ["HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "GET", { kind: "length", length: 0 }, true],
  ];
  test.each(rows)("%j to %s", (s, method, framing, persistent) => {
    const h = res(s, method);
    expect(h.body).toEqual(framing as never);
    expect(h.persistent).toBe(persistent);
    const bytes = enc(s);
    for (let n = 0; n < bytes.length; n++) expect(parseResponseHead(bytes.subarray(0, n), { requestMethod: method })).toBe(NEED_MORE);
  });

  test("interim responses are marked; 101 is not interim", () => {
    expect(res("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n").interim).toBe(true);
    expect(res("HTTP/1.1 101 Switching Protocols\r\n\r\n").interim).toBe(false);
    expect(res("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").interim).toBe(false);
  });

  // Every error in a response is the origin's fault: 502 to the client.
  const bad: [string, HttpErrorKind][] = [
    ["HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "badContentLength"],
    ["HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "smuggling"],
    ["HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "obsFold"],
    ["HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n", "badLineEnding"],
    ["HTTP/1.1 20 OK\r\n\r\n", "badStartLine"],
    ["HTTP/1.1 099 Low\r\n\r\n", "badStartLine"],
    ["HTTP/1.1  200 OK\r\n\r\n", "badStartLine"],
    ["ICY 200 OK\r\n\r\n", "badStartLine"],
    ["HTTP/2 200 OK\r\n\r\n", "badVersion"],
    ["HTTP/3.0 200 OK\r\n\r\n", "unsupportedVersion"],
    ["\r\nHTTP/1.1 200 OK\r\n\r\n", "badStartLine"],
  ];
  test.each(bad)("%j is %s, 502", (s, kind) => {
    const r = parseResponseHead(enc(s), { requestMethod: "GET" });
    expect(r).toBeInstanceOf(HttpProtocolError);
    expect((r as HttpProtocolError).kind).toBe(kind);
    expect((r as HttpProtocolError).status).toBe(502);
  });
});
