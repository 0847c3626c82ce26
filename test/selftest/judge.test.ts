/** The pure parts of `egressd test`: the verdict table, the address in a body, HTTP response parsing. */
import { describe, expect, test } from "bun:test";
import { HttpGetError, parseResponse } from "../../lib/selftest/http-get.ts";
import { addressFromBody, type EgressFacts, judgeEgress } from "../../lib/selftest/judge.ts";

const EXIT = "198.51.100.2";
const HOME = "192.0.2.2";
const base: EgressFacts = {
  proxied: { ok: true, address: EXIT },
  direct: { ok: true, address: HOME },
  expected: { addresses: [EXIT], source: "exit.endpoint" },
  dns: { name: "whoami.example", mode: "tunnel", servers: ["9.9.9.9"] },
};
const states = (f: EgressFacts): Record<string, string> => Object.fromEntries(judgeEgress(f).map((x) => [x.name, x.state]));

describe("judgeEgress", () => {
  test.each<[string, Partial<EgressFacts>, Record<string, string>]>([
    ["all good", {}, { proxied: "ok", direct: "ok", differ: "ok", exit: "ok", dns: "ok" }],
    ["the proxied answer is the home address: critical", { proxied: { ok: true, address: HOME } }, { proxied: "ok", direct: "ok", differ: "critical", exit: "critical", dns: "ok" }],
    ["the proxied request failed", { proxied: { ok: false, error: "SOCKS5 reply 4" } }, { proxied: "critical", direct: "ok", dns: "critical" }],
    ["the direct request failed: cannot compare", { direct: { ok: false, error: "timeout" } }, { proxied: "ok", direct: "warning", exit: "ok", dns: "ok" }],
    ["not the expected exit", { expected: { addresses: ["203.0.113.9"], source: "--expect" } }, { proxied: "ok", direct: "ok", differ: "ok", exit: "critical", dns: "ok" }],
    ["one of several expected addresses", { expected: { addresses: ["2001:db8::1", EXIT], source: "x" } }, { proxied: "ok", direct: "ok", differ: "ok", exit: "ok", dns: "ok" }],
    ["exit address unknown", { expected: null }, { proxied: "ok", direct: "ok", differ: "ok", exit: "warning", dns: "ok" }],
    ["system DNS: the name left outside the tunnel", { dns: { name: "n", mode: "system", servers: [] } }, { proxied: "ok", direct: "ok", differ: "ok", exit: "ok", dns: "warning" }],
    ["URL with an address: no name to resolve", { dns: null }, { proxied: "ok", direct: "ok", differ: "ok", exit: "ok", dns: "warning" }],
    ["IPv6 written two ways is the same address", { proxied: { ok: true, address: "2001:db8:2::2" }, direct: { ok: true, address: "2001:DB8:2:0::2" }, expected: { addresses: ["2001:db8:2::2"], source: "x" } }, { proxied: "ok", direct: "ok", differ: "critical", exit: "ok", dns: "ok" }],
  ])("%s", (_, patch, want) => {
    expect(states({ ...base, ...patch })).toEqual(want);
  });
});

describe("addressFromBody", () => {
  test.each([
    ["198.51.100.2\n", "198.51.100.2"],
    ["  2001:DB8::1  ", "2001:db8::1"],
    ["<html>198.51.100.2</html>", null],
    ["", null],
    ["198.51.100.2 extra", null],
    ["999.1.1.1", null],
  ])("%j -> %j", (body, want) => expect(addressFromBody(body)).toBe(want));
});

describe("parseResponse", () => {
  const r = (s: string) => parseResponse(Buffer.from(s, "latin1"));
  test.each([
    ["content-length", "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n198.51.100.2\nEXTRA", 200, "198.51.100.2\n"],
    ["chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n198.\r\n8\r\n51.100.2\r\n0\r\n\r\n", 200, "198.51.100.2"],
    ["close-delimited", "HTTP/1.0 200 OK\r\n\r\n192.0.2.2", 200, "192.0.2.2"],
    ["an error status", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", 503, ""],
  ])("%s", (_, raw, status, body) => expect(r(raw)).toEqual({ status, body }));

  test.each([
    ["empty", "", /closed without a response/],
    ["no end of headers", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", /no end of headers/],
    ["not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", /not an HTTP response: "SSH-2.0-OpenSSH"/],
    ["a truncated chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4", /chunked body ends early/],
    ["a bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /not hexadecimal/],
  ])("%s is refused", (_, raw, re) => {
    expect(() => r(raw)).toThrow(HttpGetError);
    expect(() => r(raw)).toThrow(re);
  });
});
