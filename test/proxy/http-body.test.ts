// Layer 1: table tests for the chunked decoder, hop-by-hop forwarding, Proxy-Authorization: Basic
// and the proxy's own responses (lib/proxy/http/).
import { describe, expect, test } from "bun:test";
import { CredentialChecker } from "../../lib/proxy/auth.ts";
import { encodeBasicCredentials, parseBasicCredentials, proxyCredentials } from "../../lib/proxy/http/basic-auth.ts";
import { ChunkedDecoder, type ChunkedProgress, LAST_CHUNK, encodeChunk } from "../../lib/proxy/http/chunked.ts";
import { encodeForwardRequest, encodeForwardResponse, removeHopByHop, upgradeProtocols } from "../../lib/proxy/http/forward.ts";
import { encodeConnectEstablished, errorResponseText } from "../../lib/proxy/http/replies.ts";
import { parseRequestHead, type RequestHead } from "../../lib/proxy/http/request.ts";
import { parseResponseHead, type ResponseHead } from "../../lib/proxy/http/response.ts";
import { HttpProtocolError, NEED_MORE, latin1, latin1Bytes } from "../../lib/proxy/http/wire.ts";

const enc = latin1Bytes;

/** Feeds `body` in pieces split at `cuts`; returns the body length found and the de-chunked data. */
function decode(body: Uint8Array, cuts: number[], side: "request" | "response" = "request") {
  const d = new ChunkedDecoder(side, { maxLineBytes: 64, maxTrailerBytes: 64 });
  let at = 0;
  let data = "";
  const bounds = [...cuts, body.length];
  let prev = 0;
  for (const cut of bounds) {
    const piece = body.subarray(prev, cut);
    prev = cut;
    const r = d.push(piece);
    if (r instanceof HttpProtocolError) return r;
    for (const [s, e] of r.data) data += latin1(piece.subarray(s, e));
    at += r.consumed;
    if (r.done) return { length: at, data };
    expect(r.consumed).toBe(piece.length);
  }
  return { length: -1, data };
}

// [name, body, de-chunked data]
const GOOD: [string, string, string][] = [
  ["one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"],
  ["two chunks, upper and lower hex", "A\r\n0123456789\r\nb\r\n0123456789a\r\n0\r\n\r\n", "01234567890123456789a"],
  ["only the last chunk", "0\r\n\r\n", ""],
  ["several zeros in the last chunk", "000\r\n\r\n", ""],
  ["leading zeros in a size", "0003\r\nabc\r\n0\r\n\r\n", "abc"],
  ["an extension", "3;name=value\r\nabc\r\n0\r\n\r\n", "abc"],
  ["extensions with BWS and a quoted value", "3 ; a=\"x y\";b\r\nabc\r\n0;last\r\n\r\n", "abc"],
  ["a trailer", "3\r\nabc\r\n0\r\nExpires: never\r\n\r\n", "abc"],
  ["two trailers", "3\r\nabc\r\n0\r\nA: 1\r\nB:\r\n\r\n", "abc"],
  ["data holding CRLF", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"],
];

// [name, body, kind]
const BAD: [string, string, string][] = [
  ["no size", "\r\nabc\r\n0\r\n\r\n", "badChunk"],
  ["a 0x prefix", "0x3\r\nabc\r\n0\r\n\r\n", "badChunk"],
  ["leading whitespace", " 3\r\nabc\r\n0\r\n\r\n", "badChunk"],
  ["trailing whitespace without an extension", "3 \r\nabc\r\n0\r\n\r\n", "badChunk"],
  ["a negative size", "-3\r\nabc\r\n0\r\n\r\n", "badChunk"],
  ["bare LF after the size", "3\nabc\r\n0\r\n\r\n", "badChunk"],
  ["CR without LF after the size", "3\rabc\r\n0\r\n\r\n", "badChunk"],
  ["bare LF in an extension", "3;a\nabc\r\n0\r\n\r\n", "badChunk"],
  ["NUL in an extension", "3;a\0\r\nabc\r\n0\r\n\r\n", "badChunk"],
  ["data longer than its size", "3\r\nabcd\r\n0\r\n\r\n", "badChunk"],
  ["data without CRLF", "3\r\nabc0\r\n\r\n", "badChunk"],
  ["data followed by bare LF", "3\r\nabc\n0\r\n\r\n", "badChunk"],
  ["a trailer with obs-fold", "0\r\nA: 1\r\n 2\r\n\r\n", "badChunk"],
  ["a trailer without a colon", "0\r\nnot a field\r\n\r\n", "badChunk"],
  ["a trailer with bare LF", "0\r\nA: 1\n\r\n", "badChunk"],
  ["the final CRLF is a bare LF", "0\r\n\n", "badChunk"],
  ["the final CR without LF", "0\r\n\rX", "badChunk"],
  ["a size line over the limit", "1" + ";x".repeat(40) + "\r\na\r\n0\r\n\r\n", "chunkLineTooLong"],
  ["leading zeros over the limit", "0".repeat(70) + "1\r\na\r\n0\r\n\r\n", "chunkLineTooLong"],
  ["a trailer section over the limit", "0\r\n" + "A: 123456789\r\n".repeat(8) + "\r\n", "chunkLineTooLong"],
  ["a size above 2^48", "1000000000001\r\n", "chunkTooLarge"],
];

describe("ChunkedDecoder", () => {
  test.each(GOOD)("%s: split at every byte boundary, the end is found exactly", (_name, body, data) => {
    const bytes = enc(body + "NEXT");
    const whole = body.length;
    expect(decode(bytes, [])).toEqual({ length: whole, data });
    for (let cut = 0; cut <= bytes.length; cut++) expect(decode(bytes, [cut])).toEqual({ length: whole, data });
    // One byte at a time: the worst case a socket can produce.
    expect(decode(bytes, Array.from({ length: bytes.length }, (_, i) => i))).toEqual({ length: whole, data });
  });

  test.each(BAD.map(([name, body, kind]) => [name, kind, body] as const))("%s is %s, at every split", (_name, kind, body) => {
    const bytes = enc(body);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const r = decode(bytes, [cut]);
      expect(r).toBeInstanceOf(HttpProtocolError);
      expect((r as HttpProtocolError).kind).toBe(kind as never);
      expect((r as HttpProtocolError).status).toBe(400);
    }
  });

  test("a truncated body is never done", () => {
    const body = enc(GOOD[7]![1]);
    for (let n = 0; n < body.length; n++) {
      const d = new ChunkedDecoder("response");
      const r = d.push(body.subarray(0, n)) as ChunkedProgress;
      expect(r.done).toBe(false);
      expect(r.consumed).toBe(n);
    }
  });

  test("a response body error is 502; the error sticks; pushes after done consume nothing", () => {
    const d = new ChunkedDecoder("response");
    const e = d.push(enc("zz\r\n"));
    expect((e as HttpProtocolError).status).toBe(502);
    expect(d.push(enc("0\r\n\r\n"))).toBe(e);
    const ok = new ChunkedDecoder("request");
    expect(ok.push(enc("0\r\n\r\n"))).toMatchObject({ done: true, consumed: 5 });
    expect(ok.done).toBe(true);
    expect(ok.push(enc("GET"))).toEqual({ consumed: 0, done: true, data: [] });
  });

  test("encodeChunk and LAST_CHUNK round-trip through the decoder", () => {
    const parts = [enc("a"), enc("hello world"), new Uint8Array(4096).fill(0x0d), enc("\r\n0\r\n\r\n")];
    const body = new Uint8Array([...parts.flatMap((p) => [...encodeChunk(p)]), ...LAST_CHUNK]);
    expect(latin1(encodeChunk(enc("hello world")))).toBe("b\r\nhello world\r\n");
    expect(decode(body, [])).toEqual({ length: body.length, data: parts.map((p) => latin1(p)).join("") });
    expect(() => encodeChunk(new Uint8Array(0))).toThrow(RangeError);
  });

  test("a large chunk passes through without being buffered: data spans cover the pushed bytes", () => {
    const d = new ChunkedDecoder("request");
    expect(d.push(enc("100000\r\n"))).toMatchObject({ consumed: 8, done: false });
    const piece = new Uint8Array(65536);
    for (let i = 0; i < 16; i++) expect(d.push(piece)).toEqual({ consumed: 65536, done: false, data: [[0, 65536]] });
    expect(d.push(enc("\r\n0\r\n\r\n"))).toMatchObject({ consumed: 7, done: true, data: [] });
  });
});

function request(s: string): RequestHead {
  const r = parseRequestHead(enc(s));
  if (r === NEED_MORE || r instanceof HttpProtocolError) throw new Error(String(r));
  return r.value;
}

function response(s: string, method = "GET"): ResponseHead {
  const r = parseResponseHead(enc(s), { requestMethod: method });
  if (r === NEED_MORE || r instanceof HttpProtocolError) throw new Error(String(r));
  return r.value;
}

describe("forwarding", () => {
  test("absolute form becomes origin form, Host comes from the target, hop-by-hop fields go", () => {
    const h = request(
      "GET http://www.example.test:8080/a?b=1 HTTP/1.1\r\nHost: other.test\r\nUser-Agent: x\r\nProxy-Connection: keep-alive\r\n" +
        "Proxy-Authorization: Basic dTpw\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n" +
        "Trailer: Expires\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\n",
    );
    expect(latin1(encodeForwardRequest(h))).toBe("GET /a?b=1 HTTP/1.1\r\nHost: www.example.test:8080\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n");
    expect(latin1(encodeForwardRequest(h, { close: true }))).toEndWith("Accept: */*\r\nConnection: close\r\n\r\n");
  });

  test("a Connection option naming a framing field is ignored, so the body is framed the same upstream", () => {
    const h = request("POST http://a.test/ HTTP/1.1\r\nConnection: Content-Length, Transfer-Encoding, Host\r\nContent-Length: 3\r\n\r\n");
    expect(latin1(encodeForwardRequest(h))).toBe("POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\n");
    const c = request("POST http://a.test/ HTTP/1.1\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n");
    expect(latin1(encodeForwardRequest(c))).toContain("Transfer-Encoding: chunked\r\n");
  });

  test("a websocket upgrade keeps Upgrade and sends Connection: upgrade; a stray Upgrade is dropped", () => {
    const ws = request("GET http://a.test/ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n");
    expect(upgradeProtocols(ws.headers)).toEqual(["websocket"]);
    expect(latin1(encodeForwardRequest(ws, { close: true }))).toBe(
      "GET /ws HTTP/1.1\r\nHost: a.test\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    );
    const stray = request("GET http://a.test/ HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
    expect(upgradeProtocols(stray.headers)).toEqual([]);
    expect(latin1(encodeForwardRequest(stray))).toBe("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
  });

  test("only absolute-form requests are forwarded", () => {
    expect(() => encodeForwardRequest(request("CONNECT a.test:443 HTTP/1.1\r\n\r\n"))).toThrow(TypeError);
  });

  test("responses: hop-by-hop fields go, 101 keeps its Upgrade, close and keep-alive are ours to add", () => {
    const r = response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n\r\n");
    expect(latin1(encodeForwardResponse(r))).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
    expect(latin1(encodeForwardResponse(r, { close: true }))).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
    expect(latin1(encodeForwardResponse(r, { keepAlive: true }))).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n");
    const up = response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\n");
    expect(latin1(encodeForwardResponse(up))).toBe("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
  });

  test("removeHopByHop keeps order and case of the rest", () => {
    expect(removeHopByHop([["A", "1"], ["connection", "b"], ["B", "2"], ["c", "3"]])).toEqual([["A", "1"], ["c", "3"]]);
  });
});

describe("Proxy-Authorization: Basic", () => {
  const checker = new CredentialChecker({ username: "pod", password: "s3cr:et" });
  test("decoded credentials pass the same constant-time check as SOCKS5's", () => {
    const c = proxyCredentials([["Proxy-Authorization", encodeBasicCredentials("pod", "s3cr:et")]]);
    expect(c.kind).toBe("basic");
    if (c.kind !== "basic") return;
    expect(checker.check(c.request)).toBe(true);
    const wrong = proxyCredentials([["proxy-authorization", encodeBasicCredentials("pod", "s3cr")]]);
    expect(wrong.kind === "basic" && checker.check(wrong.request)).toBe(false);
  });

  test("the scheme is case-insensitive, the password may hold colons and UTF-8", () => {
    const r = parseBasicCredentials("bAsIc " + Buffer.from("ü:a:b").toString("base64"));
    expect(typeof r).toBe("object");
    if (typeof r === "string") return;
    expect(new TextDecoder().decode(r.username)).toBe("ü");
    expect(new TextDecoder().decode(r.password)).toBe("a:b");
  });

  const invalid: [string, string][] = [
    ["Bearer abc", "is not Basic"],
    ["Basic", "is not"],
    ["Basic !!!!", "not base64"],
    ["Basic " + Buffer.from("nocolon").toString("base64"), "no colon"],
    ["Basic " + Buffer.from(":pw").toString("base64"), "empty user id"],
    ["Basic abc def", "is not"],
  ];
  test.each(invalid)("%j is invalid (%s) and the reason never holds the secret", (value, why) => {
    const c = proxyCredentials([["Proxy-Authorization", value]]);
    expect(c.kind).toBe("invalid");
    if (c.kind === "invalid") {
      expect(c.why).toContain(why);
      expect(c.why).not.toContain(value.split(" ")[1] ?? "\0");
    }
  });

  test("missing, and sent twice", () => {
    expect(proxyCredentials([["Host", "a"]])).toEqual({ kind: "missing" });
    const v = encodeBasicCredentials("pod", "s3cr:et");
    expect(proxyCredentials([["Proxy-Authorization", v], ["Proxy-Authorization", v]]).kind).toBe("invalid");
  });
});

describe("the proxy's own responses", () => {
  test("200 for CONNECT has no fields", () => {
    expect(latin1(encodeConnectEstablished())).toBe("HTTP/1.1 200 Connection established\r\n\r\n");
  });

  // [status, reason, expected text]
  const rows: [number, string, string][] = [
    [400, "malformed request", "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\nConnection: close\r\n\r\nmalformed request\n"],
    [403, "destination 10.0.0.5 is a private address; see proxy.allowDestinations", "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 71\r\nConnection: close\r\n\r\ndestination 10.0.0.5 is a private address; see proxy.allowDestinations\n"],
    [407, "proxy authentication required", 'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 30\r\nConnection: close\r\nProxy-Authenticate: Basic realm="egressd", charset="UTF-8"\r\n\r\nproxy authentication required\n'],
    [431, "x", "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nx\n"],
    [502, "y", "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\ny\n"],
    [504, "z", "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nz\n"],
    [501, "w", "HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nw\n"],
  ];
  test.each(rows)("%d", (status, reason, text) => {
    expect(errorResponseText(status, reason)).toBe(text);
    // The proxy's own responses must parse as what they claim to be.
    const r = parseResponseHead(enc(text), { requestMethod: "GET" });
    if (r === NEED_MORE || r instanceof HttpProtocolError) throw new Error(String(r));
    expect(r.value.status).toBe(status);
    expect(r.value.body).toEqual({ kind: "length", length: new TextEncoder().encode(reason + "\n").length });
    expect(r.value.persistent).toBe(false);
  });

  test("405 carries Allow; HEAD gets no body; a reason cannot split the response", () => {
    expect(errorResponseText(405, "no", { allow: ["CONNECT", "GET"] })).toContain("\r\nAllow: CONNECT, GET\r\n");
    expect(errorResponseText(400, "abc", { head: true })).toEndWith("Connection: close\r\n\r\n");
    const split = errorResponseText(403, "name a.test\r\nSet-Cookie: x");
    expect(split).toEndWith("\r\n\r\nname a.test  Set-Cookie: x\n");
    expect(() => errorResponseText(200, "x")).toThrow(RangeError);
  });
});
