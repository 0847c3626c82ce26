// Layer 1: the SOCKS5 wire format as tables — valid rows, every truncated prefix, malformed and
// oversized rows, trailing bytes, and encode/parse round-trips.
import { describe, expect, test } from "bun:test";
import { parseIp } from "../../lib/net/ip.ts";
import {
  AddressType,
  AuthMethod,
  Command,
  NEED_MORE,
  Reply,
  Socks5ProtocolError,
  type ParseResult,
} from "../../lib/proxy/socks5.ts";
import {
  MAX_AUTH_REQUEST_BYTES,
  MAX_GREETING_BYTES,
  encodeAuthReply,
  encodeAuthRequest,
  encodeGreeting,
  encodeMethodSelection,
  parseAuthReply,
  parseAuthRequest,
  parseGreeting,
  parseMethodSelection,
} from "../../lib/proxy/socks5-greeting.ts";
import {
  MAX_REQUEST_BYTES,
  encodeReply,
  encodeRequest,
  parseReply,
  parseRequest,
  type Socks5Host,
} from "../../lib/proxy/socks5-request.ts";

const b = (...xs: number[]) => Uint8Array.from(xs);
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
const ip = (s: string): Socks5Host => ({ type: "ip", ip: parseIp(s)! });
const domain = (name: string): Socks5Host => ({ type: "domain", name });

function ok<T>(r: ParseResult<T>): { value: T; consumed: number } {
  if (r === NEED_MORE) throw new Error("expected a message, got NEED_MORE");
  if (r instanceof Socks5ProtocolError) throw new Error(`expected a message, got ${r.reason}: ${r.message}`);
  return r;
}

function err<T>(r: ParseResult<T>): Socks5ProtocolError {
  if (!(r instanceof Socks5ProtocolError)) throw new Error(`expected an error, got ${r === NEED_MORE ? "NEED_MORE" : JSON.stringify(r)}`);
  return r;
}

/** Every proper prefix of a valid message must ask for more, never fail or succeed. */
function expectAllPrefixesNeedMore<T>(parse: (buf: Uint8Array) => ParseResult<T>, msg: Uint8Array) {
  for (let n = 0; n < msg.length; n++) {
    const r = parse(msg.subarray(0, n));
    if (r !== NEED_MORE) throw new Error(`prefix of length ${n}/${msg.length} gave ${r instanceof Error ? r.reason : "a message"}`);
  }
}

describe("constants match RFC 1928 and RFC 1929", () => {
  test.each([
    ["succeeded", Reply.succeeded, 0],
    ["generalFailure", Reply.generalFailure, 1],
    ["notAllowed", Reply.notAllowed, 2],
    ["networkUnreachable", Reply.networkUnreachable, 3],
    ["hostUnreachable", Reply.hostUnreachable, 4],
    ["connectionRefused", Reply.connectionRefused, 5],
    ["ttlExpired", Reply.ttlExpired, 6],
    ["commandNotSupported", Reply.commandNotSupported, 7],
    ["addressTypeNotSupported", Reply.addressTypeNotSupported, 8],
    ["CONNECT", Command.connect, 1],
    ["BIND", Command.bind, 2],
    ["UDP ASSOCIATE", Command.udpAssociate, 3],
    ["ATYP IPv4", AddressType.ipv4, 1],
    ["ATYP domain", AddressType.domainName, 3],
    ["ATYP IPv6", AddressType.ipv6, 4],
    ["no auth", AuthMethod.noAuth, 0],
    ["username/password", AuthMethod.usernamePassword, 2],
    ["no acceptable", AuthMethod.noAcceptable, 0xff],
  ])("%s = %d", (_name, actual, expected) => expect(actual as number).toBe(expected));
});

describe("parseGreeting", () => {
  test.each([
    ["one method", b(5, 1, 0), [0]],
    ["two methods", b(5, 2, 0, 2), [0, 2]],
    ["private-use method", b(5, 1, 0x80), [0x80]],
  ])("%s", (_name, buf, methods) => {
    const r = ok(parseGreeting(buf));
    expect(r.value.methods).toEqual(methods);
    expect(r.consumed).toBe(buf.length);
  });

  test("255 methods, the most NMETHODS can say", () => {
    const methods = Array.from({ length: 255 }, (_, i) => i);
    const buf = b(5, 255, ...methods);
    expect(buf.length).toBe(MAX_GREETING_BYTES);
    expect(ok(parseGreeting(buf)).value.methods).toEqual(methods);
  });

  test("every truncated prefix needs more", () => {
    expectAllPrefixesNeedMore(parseGreeting, b(5, 3, 0, 1, 2));
    expectAllPrefixesNeedMore(parseGreeting, b(5, 255, ...new Array(255).fill(0)));
  });

  test("trailing bytes are left for the next message", () => {
    const r = ok(parseGreeting(b(5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80)));
    expect(r.consumed).toBe(3);
  });

  test.each([
    ["SOCKS4", b(4, 1, 0, 80, 127, 0, 0, 1, 0), "badVersion"],
    ["HTTP", b(...ascii("GET / HTTP/1.1\r\n")), "badVersion"],
    ["TLS ClientHello", b(0x16, 3, 1, 0, 0xa5), "badVersion"],
    ["zero", b(0), "badVersion"],
    ["zero methods", b(5, 0), "noMethods"],
    ["zero methods with trailing bytes", b(5, 0, 0, 0), "noMethods"],
  ])("%s is rejected", (_name, buf, reason) => {
    const e = err(parseGreeting(buf));
    expect(e.reason as string).toBe(reason as string);
    expect(e.reply).toBeNull(); // no reply message exists for a bad greeting
  });
});

describe("parseMethodSelection", () => {
  test("round-trips every method byte", () => {
    for (let m = 0; m < 256; m++) {
      const buf = encodeMethodSelection(m);
      expect(ok(parseMethodSelection(buf))).toEqual({ value: m, consumed: 2 });
    }
  });
  test("truncation and bad version", () => {
    expectAllPrefixesNeedMore(parseMethodSelection, b(5, 0));
    expect(err(parseMethodSelection(b(4, 0))).reason).toBe("badVersion");
  });
});

describe("parseAuthRequest (RFC 1929)", () => {
  const valid = b(1, 4, ...ascii("user"), 6, ...ascii("secret"));

  test("valid", () => {
    const r = ok(parseAuthRequest(valid));
    expect(new TextDecoder().decode(r.value.username)).toBe("user");
    expect(new TextDecoder().decode(r.value.password)).toBe("secret");
    expect(r.consumed).toBe(valid.length);
  });

  test("every truncated prefix needs more", () => expectAllPrefixesNeedMore(parseAuthRequest, valid));

  test("255-byte username and password, the largest request", () => {
    const buf = b(1, 255, ...new Array(255).fill(0x61), 255, ...new Array(255).fill(0x62));
    expect(buf.length).toBe(MAX_AUTH_REQUEST_BYTES);
    const r = ok(parseAuthRequest(buf));
    expect(r.value.username.length).toBe(255);
    expect(r.value.password.length).toBe(255);
    expectAllPrefixesNeedMore(parseAuthRequest, buf);
  });

  test("trailing bytes are not consumed", () => {
    const r = ok(parseAuthRequest(b(...valid, 5, 1, 0)));
    expect(r.consumed).toBe(valid.length);
  });

  test("returned fields do not alias the input buffer", () => {
    const buf = Uint8Array.from(valid);
    const r = ok(parseAuthRequest(buf));
    buf.fill(0);
    expect(new TextDecoder().decode(r.value.password)).toBe("secret");
  });

  test.each([
    ["version 5 instead of 1", b(5, 1, 0x61, 1, 0x62), "badAuthVersion"],
    ["version 0", b(0, 1, 0x61, 1, 0x62), "badAuthVersion"],
    ["empty username", b(1, 0, 1, 0x62), "emptyUsername"],
    ["empty password", b(1, 1, 0x61, 0), "emptyPassword"],
  ])("%s is rejected", (_name, buf, reason) => {
    expect(err(parseAuthRequest(buf)).reason as string).toBe(reason as string);
  });
});

describe("parseAuthReply", () => {
  test("success, failure, truncation, bad version", () => {
    expect(ok(parseAuthReply(encodeAuthReply(0)))).toEqual({ value: 0, consumed: 2 });
    expect(ok(parseAuthReply(encodeAuthReply(1)))).toEqual({ value: 1, consumed: 2 });
    expectAllPrefixesNeedMore(parseAuthReply, b(1, 0));
    expect(err(parseAuthReply(b(5, 0))).reason).toBe("badAuthVersion");
  });
});

describe("parseRequest", () => {
  const rows: [string, Uint8Array, number, Socks5Host, number][] = [
    ["CONNECT IPv4", b(5, 1, 0, 1, 93, 184, 216, 34, 0, 80), Command.connect, ip("93.184.216.34"), 80],
    ["CONNECT IPv6", b(5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0xbb), Command.connect, ip("2001:db8::1"), 443],
    ["CONNECT domain", b(5, 1, 0, 3, 11, ...ascii("example.com"), 0x1a, 0x0b), Command.connect, domain("example.com"), 6667],
    ["BIND (parsed; the server refuses it)", b(5, 2, 0, 1, 0, 0, 0, 0, 0, 0), Command.bind, ip("0.0.0.0"), 0],
    ["UDP ASSOCIATE", b(5, 3, 0, 1, 0, 0, 0, 0, 0, 0), Command.udpAssociate, ip("0.0.0.0"), 0],
    ["unknown command 0x09 is returned as is", b(5, 9, 0, 1, 1, 2, 3, 4, 0, 1), 9, ip("1.2.3.4"), 1],
    ["RSV not zero is tolerated", b(5, 1, 0xff, 1, 1, 2, 3, 4, 0xff, 0xff), Command.connect, ip("1.2.3.4"), 65535],
    ["domain that is an IP literal stays a domain", b(5, 1, 0, 3, 9, ...ascii("127.0.0.1"), 0, 22), Command.connect, domain("127.0.0.1"), 22],
    ["domain with non-ASCII bytes, kept byte for byte", b(5, 1, 0, 3, 3, 0xe9, 0x00, 0x0a, 0, 80), Command.connect, domain("\u00e9\u0000\n"), 80],
  ];

  test.each(rows)("%s", (_name, buf, command, host, port) => {
    const r = ok(parseRequest(buf));
    expect(r.value).toEqual({ command, host, port });
    expect(r.consumed).toBe(buf.length);
  });

  test.each(rows)("every truncated prefix of %s needs more", (_name, buf) => expectAllPrefixesNeedMore(parseRequest, buf));

  test("255-byte domain, the largest request", () => {
    const name = "a".repeat(255);
    const buf = b(5, 1, 0, 3, 255, ...ascii(name), 0, 80);
    expect(buf.length).toBe(MAX_REQUEST_BYTES);
    expect(ok(parseRequest(buf)).value.host).toEqual(domain(name));
    expectAllPrefixesNeedMore(parseRequest, buf);
  });

  test("trailing bytes (early data) are not consumed", () => {
    const req = b(5, 1, 0, 1, 1, 2, 3, 4, 0, 80);
    const r = ok(parseRequest(b(...req, ...ascii("GET / HTTP/1.0\r\n\r\n"))));
    expect(r.consumed).toBe(req.length);
  });

  test.each([
    ["bad version", b(4, 1, 0, 1, 1, 2, 3, 4, 0, 80), "badVersion", Reply.generalFailure],
    ["ATYP 0", b(5, 1, 0, 0, 1, 2, 3, 4, 0, 80), "badAddressType", Reply.addressTypeNotSupported],
    ["ATYP 2", b(5, 1, 0, 2, 1, 2, 3, 4, 0, 80), "badAddressType", Reply.addressTypeNotSupported],
    ["ATYP 5", b(5, 1, 0, 5), "badAddressType", Reply.addressTypeNotSupported],
    ["ATYP 0xff", b(5, 1, 0, 0xff), "badAddressType", Reply.addressTypeNotSupported],
    ["empty domain", b(5, 1, 0, 3, 0, 0, 80), "emptyDomainName", Reply.generalFailure],
  ])("%s is rejected with reply %#", (_name, buf, reason, reply) => {
    const e = err(parseRequest(buf));
    expect(e.reason as string).toBe(reason as string);
    expect(e.reply).toBe(reply);
  });
});

describe("parseReply", () => {
  test("success with an IPv6 bound address", () => {
    const buf = encodeReply(Reply.succeeded, { host: ip("2001:db8::5"), port: 40000 });
    expect(ok(parseReply(buf))).toEqual({ value: { reply: 0, host: ip("2001:db8::5"), port: 40000 }, consumed: 22 });
  });
  test("failure replies carry 0.0.0.0:0", () => {
    for (let code = 1; code <= 8; code++) {
      expect(ok(parseReply(encodeReply(code))).value).toEqual({ reply: code, host: ip("0.0.0.0"), port: 0 });
    }
  });
  test("errors carry no reply code: a client has nobody to answer", () => {
    expect(err(parseReply(b(5, 0, 0, 9))).reply).toBeNull();
    expect(err(parseReply(b(1, 0, 0, 1))).reply).toBeNull();
  });
});

describe("round-trips", () => {
  test.each([[[0]], [[0, 2]], [[2]], [Array.from({ length: 255 }, (_, i) => i)]])("greeting %#", (methods) => {
    const r = ok(parseGreeting(encodeGreeting(methods)));
    expect(r.value.methods).toEqual(methods);
  });

  test.each([
    ["ascii", "user", "pass"],
    ["utf-8", "jürgen", "pässwörd ✓"],
    ["max", "u".repeat(255), "p".repeat(255)],
  ])("auth request %s", (_name, user, pass) => {
    const r = ok(parseAuthRequest(encodeAuthRequest(user, pass)));
    expect(new TextDecoder().decode(r.value.username)).toBe(user);
    expect(new TextDecoder().decode(r.value.password)).toBe(pass);
  });

  const hosts: Socks5Host[] = [
    ip("0.0.0.0"),
    ip("255.255.255.255"),
    ip("10.1.0.1"),
    ip("::"),
    ip("::1"),
    ip("::ffff:10.0.0.1"),
    ip("fe80::1:2:3:4"),
    ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
    domain("a"),
    domain("irc.libera.chat"),
    domain("x".repeat(255)),
  ];
  test.each(hosts.map((h) => [h.type === "ip" ? Array.from(h.ip.bytes).join(".") : h.name.slice(0, 20), h] as const))("request and reply for %s", (_label, host) => {
    for (const port of [1, 80, 443, 6697, 65535]) {
      for (const cmd of [Command.connect, Command.bind, Command.udpAssociate]) {
        expect(ok(parseRequest(encodeRequest(cmd, host, port))).value).toEqual({ command: cmd, host, port });
      }
      expect(ok(parseReply(encodeReply(Reply.succeeded, { host, port }))).value).toEqual({ reply: 0, host, port });
    }
  });
});

describe("encoders refuse what the wire cannot carry", () => {
  test.each([
    ["no methods", () => encodeGreeting([])],
    ["256 methods", () => encodeGreeting(new Array(256).fill(0))],
    ["empty username", () => encodeAuthRequest("", "p")],
    ["256-byte username", () => encodeAuthRequest("u".repeat(256), "p")],
    ["256-byte password (as UTF-8)", () => encodeAuthRequest("u", "ü".repeat(128))],
    ["empty domain", () => encodeRequest(Command.connect, domain(""), 80)],
    ["256-byte domain", () => encodeRequest(Command.connect, domain("d".repeat(256)), 80)],
    ["non-latin1 domain", () => encodeRequest(Command.connect, domain("例え.jp"), 80)],
    ["port 65536", () => encodeRequest(Command.connect, ip("1.2.3.4"), 65536)],
    ["port -1", () => encodeRequest(Command.connect, ip("1.2.3.4"), -1)],
    ["IPv4 with 16 bytes", () => encodeRequest(Command.connect, { type: "ip", ip: { family: 4, bytes: new Uint8Array(16) } }, 1)],
  ])("%s", (_name, f) => expect(f).toThrow(RangeError));
});
