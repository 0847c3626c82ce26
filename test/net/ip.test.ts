// Layer 1: IP, CIDR and host:port parsing as tables.
import { describe, expect, test } from "bun:test";
import {
  CidrError,
  HostPortError,
  anyContains,
  cidrContains,
  formatCidr,
  formatHostPort,
  formatIp,
  isDnsName,
  isWildcard,
  parseCidr,
  parseHostPort,
  parseIp,
  unmapIp,
} from "../../lib/net/ip.ts";

const bytes = (s: string) => {
  const a = parseIp(s);
  return a ? Array.from(a.bytes) : null;
};

describe("parseIp", () => {
  test("every IPv4 byte value round-trips, in every position", () => {
    for (let v = 0; v < 256; v++) {
      for (const text of [`${v}.0.0.0`, `0.${v}.0.0`, `0.0.${v}.0`, `0.0.0.${v}`, `${v}.${255 - v}.${v}.${255 - v}`]) {
        const a = parseIp(text);
        expect(a?.family).toBe(4);
        expect(formatIp(a!)).toBe(text);
      }
    }
  });

  test.each([
    ["0.0.0.0", [0, 0, 0, 0]],
    ["255.255.255.255", [255, 255, 255, 255]],
    ["10.1.0.1", [10, 1, 0, 1]],
    ["1.22.199.250", [1, 22, 199, 250]],
    ["100.9.99.200", [100, 9, 99, 200]],
    ["::", new Array(16).fill(0)],
    ["::1", [...new Array(15).fill(0), 1]],
    ["1::", [0, 1, ...new Array(14).fill(0)]],
    ["2001:db8::1", [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1]],
    ["1:2:3:4:5:6:7:8", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
    ["1:2:3:4:5:6:7::", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0]],
    ["::2:3:4:5:6:7:8", [0, 0, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
    ["FFFF::", [0xff, 0xff, ...new Array(14).fill(0)]],
    ["::ffff:10.0.0.1", [...new Array(10).fill(0), 0xff, 0xff, 10, 0, 0, 1]],
    ["::10.0.0.1", [...new Array(12).fill(0), 10, 0, 0, 1]],
    ["64:ff9b::192.0.2.1", [0, 0x64, 0xff, 0x9b, ...new Array(8).fill(0), 192, 0, 2, 1]],
    ["1:2:3:4:5:6:1.2.3.4", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 1, 2, 3, 4]],
  ])("%s", (text, want) => expect(bytes(text)).toEqual(want));

  test.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "01.2.3.4", // leading zeros: octal to inet_aton, decimal to others; refuse the ambiguity
    "1.2.3.4 ",
    " 1.2.3.4",
    "0x7f.0.0.1",
    "2130706433",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "12345::",
    "fe80::1%eth0",
    "[::1]",
    "example.com",
    "::ffff:01.2.3.4",
  ])("%p is not an address", (text) => expect(parseIp(text)).toBeNull());
});

describe("formatIp (RFC 5952)", () => {
  test.each([
    ["10.1.0.1", "10.1.0.1"],
    ["::", "::"],
    ["::1", "::1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"], // the longest run
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first of equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group is not compressed
    ["fe80::0001", "fe80::1"],
  ])("%s -> %s", (text, want) => expect(formatIp(parseIp(text)!)).toBe(want));
});

test("unmapIp turns ::ffff:a.b.c.d into IPv4 and leaves the rest", () => {
  expect(formatIp(unmapIp(parseIp("::ffff:10.0.0.1")!))).toBe("10.0.0.1");
  expect(formatIp(unmapIp(parseIp("::10.0.0.1")!))).toBe("::a00:1");
  expect(formatIp(unmapIp(parseIp("1.2.3.4")!))).toBe("1.2.3.4");
  expect(formatIp(unmapIp(parseIp("::fffe:10.0.0.1")!))).toBe("::fffe:a00:1");
});

describe("parseCidr", () => {
  test.each([
    ["10.0.0.0/8", "10.0.0.0/8"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["10.1.0.1", "10.1.0.1/32"],
    ["::/0", "::/0"],
    ["fc00::/7", "fc00::/7"],
    ["2001:db8::1", "2001:db8::1/128"],
    ["10.0.0.0/08", "10.0.0.0/8"],
  ])("%s -> %s", (text, want) => expect(formatCidr(parseCidr(text))).toBe(want));

  test.each([
    ["10.0.0.1/8", /host bits/],
    ["10.0.0.0/33", /prefix length/],
    ["::/129", /prefix length/],
    ["10.0.0.0/", /prefix length/],
    ["10.0.0.0/-1", /prefix length/],
    ["10.0.0.0/8/8", /prefix length/],
    ["example.com/8", /not an IP address/],
    ["", /not an IP address/],
  ])("%p is refused", (text, msg) => expect(() => parseCidr(text)).toThrow(msg));

  test("allowHostBits keeps the address as given", () => {
    const c = parseCidr("10.100.0.2/24", { allowHostBits: true });
    expect(formatCidr(c)).toBe("10.100.0.2/24");
  });
  test("errors are CidrError", () => expect(() => parseCidr("x")).toThrow(CidrError));
});

describe("cidrContains", () => {
  test.each([
    ["10.0.0.0/8", "10.255.255.255", true],
    ["10.0.0.0/8", "11.0.0.0", false],
    ["100.64.0.0/10", "100.127.255.255", true],
    ["100.64.0.0/10", "100.128.0.0", false],
    ["172.16.0.0/12", "172.31.0.1", true],
    ["172.16.0.0/12", "172.32.0.1", false],
    ["0.0.0.0/0", "1.2.3.4", true],
    ["0.0.0.0/0", "::1", false],
    ["::/0", "::1", true],
    ["::/0", "1.2.3.4", false],
    ["10.0.0.0/8", "::ffff:10.1.2.3", true], // mapped matches IPv4 prefixes
    ["fc00::/7", "fdff::1", true],
    ["fc00::/7", "fe00::1", false],
    ["fe80::/10", "febf:ffff::1", true],
    ["fe80::/10", "fec0::1", false],
    ["1.2.3.4/32", "1.2.3.4", true],
    ["1.2.3.4/32", "1.2.3.5", false],
  ])("%s contains %s: %p", (c, a, want) => expect(cidrContains(parseCidr(c), parseIp(a)!)).toBe(want));

  test("anyContains", () => {
    const list = [parseCidr("10.0.0.0/8"), parseCidr("::1/128")];
    expect(anyContains(list, parseIp("::1")!)).toBe(true);
    expect(anyContains(list, parseIp("127.0.0.1")!)).toBe(false);
    expect(anyContains([], parseIp("127.0.0.1")!)).toBe(false);
  });
});

describe("parseHostPort", () => {
  test.each([
    ["10.1.0.1:1080", "10.1.0.1", 1080],
    ["[::1]:1080", "::1", 1080],
    ["[2001:db8::1]:65535", "2001:db8::1", 65535],
    ["vps.example.net:51820", "vps.example.net", 51820],
    ["localhost:1", "localhost", 1],
  ])("%s", (text, host, port) => expect(parseHostPort(text)).toEqual({ host, port }));

  test.each([
    ["10.1.0.1", /host:port/],
    ["::1:1080", /brackets/],
    ["[::1]", /ipv6/],
    ["[::1]:", /not a number/],
    ["[10.0.0.1]:80", /not an IPv6/],
    ["10.1.0.1:0", /out of range/],
    ["10.1.0.1:65536", /out of range/],
    ["10.1.0.1:http", /not a number/],
    ["-bad-:80", /neither/],
    [":80", /neither/],
  ])("%p is refused", (text, msg) => expect(() => parseHostPort(text)).toThrow(msg));

  test("names: false refuses DNS names", () => {
    expect(() => parseHostPort("example.com:80", { names: false })).toThrow(HostPortError);
  });
  test("formatHostPort brackets IPv6", () => {
    expect(formatHostPort({ host: "::1", port: 80 })).toBe("[::1]:80");
    expect(formatHostPort({ host: "10.0.0.1", port: 80 })).toBe("10.0.0.1:80");
  });
});

describe("isWildcard", () => {
  test.each([
    ["0.0.0.0", true],
    ["::", true],
    ["0:0:0:0:0:0:0:0", true],
    // Linux binds a dual-stack socket on ::ffff:0.0.0.0 to every IPv4 address.
    ["::ffff:0.0.0.0", true],
    ["127.0.0.1", false],
    ["::1", false],
    ["10.1.0.1", false],
    ["example.com", false],
  ])("%s -> %p", (host, want) => expect(isWildcard(host)).toBe(want));
});

describe("isDnsName", () => {
  test.each([
    ["example.com", true],
    ["example.com.", true],
    ["a", true],
    ["_srv._tcp.example.com", true],
    ["xn--bcher-kva.example", true],
    ["a".repeat(63) + ".com", true],
    ["a".repeat(64) + ".com", false],
    [("a".repeat(63) + ".").repeat(4).slice(0, 253), true],
    [("a".repeat(63) + ".").repeat(4) + "a", false],
    ["-a.com", false],
    ["a-.com", false],
    ["a..com", false],
    ["", false],
    ["exa mple.com", false],
    ["example.com\n", false],
    ["ex%ample.com", false],
  ])("%p -> %p", (name, want) => expect(isDnsName(name)).toBe(want));
});
