// Layer 1: the destination and client policy as tables.
import { describe, expect, test } from "bun:test";
import { parseCidr, parseIp, unmapIp } from "../../lib/net/ip.ts";
import { DEFAULT_DENIED_DESTINATIONS, checkDestination, clientAllowed, embeddedIpv4 } from "../../lib/proxy/policy.ts";

// The proxy unmaps every address once where it enters (see checkDestination); the tables pass
// addresses the same way, so the mapped rows pin what a client sending `::ffff:10.0.0.1` gets.
const addr = (s: string) => {
  const a = parseIp(s);
  if (!a) throw new Error(`bad test address ${s}`);
  return unmapIp(a);
};

describe("checkDestination with the default policy", () => {
  test.each([
    // [address, reason or null when allowed]
    ["0.0.0.0", "this-network"],
    ["0.1.2.3", "this-network"],
    ["10.0.0.1", "private"],
    ["10.255.255.255", "private"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.254", "cgnat"],
    ["127.0.0.1", "loopback"],
    ["127.1.2.3", "loopback"],
    ["169.254.169.254", "link-local"], // cloud metadata
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["::a00:1", "ipv4-compatible"],
    ["fc00::1", "unique-local"],
    ["fd12:3456::1", "unique-local"],
    ["fe80::1", "link-local"],
    ["febf::1", "link-local"],
    ["fec0::1", "site-local"],
    ["ff02::1", "multicast"],
    ["64:ff9b:1::a", "nat64-local"],
    // IPv4-mapped forms match the IPv4 rows
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:192.168.0.1", "private"],
    ["::ffff:169.254.1.1", "link-local"],
    ["::ffff:100.64.0.1", "cgnat"],
    ["::ffff:0.0.0.0", "this-network"],
    ["::ffff:224.0.0.1", "multicast"],
    ["::ffff:255.255.255.255", "broadcast"],
    // NAT64 and 6to4 addresses that lead to a denied IPv4 address
    ["64:ff9b::10.0.0.1", "private-embedded"],
    ["64:ff9b::127.0.0.1", "loopback-embedded"],
    ["2002:c0a8:0101::1", "private-embedded"],
    ["2002:7f00:0001::", "loopback-embedded"],
    // the internet
    ["1.1.1.1", null],
    ["93.184.216.34", null],
    ["9.255.255.255", null],
    ["11.0.0.0", null],
    ["100.63.255.255", null],
    ["100.128.0.0", null],
    ["172.15.255.255", null],
    ["172.32.0.0", null],
    ["192.167.255.255", null],
    ["192.169.0.0", null],
    ["223.255.255.255", null],
    ["::ffff:1.1.1.1", null],
    ["2606:4700:4700::1111", null],
    ["64:ff9b::1.1.1.1", null],
    ["2002:0101:0101::1", null],
    ["fbff:ffff::1", null],
    ["fe00::1", null],
  ])("%s -> %p", (a, reason) => {
    expect(checkDestination(addr(a), {})).toBe(reason);
  });

  test("every default range is denied at its first and last address", () => {
    for (const r of DEFAULT_DENIED_DESTINATIONS) {
      const first = { family: r.cidr.family, bytes: r.cidr.bytes };
      const last = { family: r.cidr.family, bytes: Uint8Array.from(r.cidr.bytes) };
      for (let bit = r.cidr.prefix; bit < last.bytes.length * 8; bit++) last.bytes[bit >> 3]! |= 0x80 >> (bit & 7);
      expect(checkDestination(first, {})).not.toBeNull();
      expect(checkDestination(last, {})).not.toBeNull();
    }
  });
});

describe("checkDestination with allowDestinations and ownAddresses", () => {
  const policy = {
    allowDestinations: [parseCidr("127.0.0.0/8"), parseCidr("10.20.0.0/16"), parseCidr("fd00:1::/64")],
    ownAddresses: [addr("203.0.113.5"), addr("10.1.0.1"), addr("2001:db8::5")],
  };
  test.each([
    ["127.0.0.1", null],
    ["::ffff:127.0.0.1", null], // the mapped form of an allowed address is allowed too
    ["10.20.3.4", null],
    ["10.21.0.1", "private"],
    ["fd00:1::1234", null],
    ["fd00:2::1", "unique-local"],
    ["203.0.113.5", "own-address"], // a public own address: no default rule covers it
    ["::ffff:203.0.113.5", "own-address"],
    ["2001:db8::5", "own-address"],
    ["10.1.0.1", "own-address"],
    ["203.0.113.6", null],
    ["::1", "loopback"], // 127/8 allowed does not allow ::1
  ])("%s -> %p", (a, reason) => {
    expect(checkDestination(addr(a), policy)).toBe(reason);
  });

  test("allowDestinations wins over ownAddresses", () => {
    expect(checkDestination(addr("10.1.0.1"), { ownAddresses: [addr("10.1.0.1")], allowDestinations: [parseCidr("10.1.0.0/24")] })).toBeNull();
  });
});

describe("embeddedIpv4", () => {
  test.each([
    ["64:ff9b::c000:201", "192.0.2.1"],
    ["2002:c000:0201::", "192.0.2.1"],
    ["2001:db8::1", null],
    ["192.0.2.1", null],
  ])("%s -> %p", (a, want) => {
    const got = embeddedIpv4(addr(a));
    expect(got ? Array.from(got.bytes).join(".") : null).toBe(want);
  });
});

describe("clientAllowed", () => {
  const allow = [parseCidr("10.1.0.0/24"), parseCidr("::1/128")];
  test.each([
    ["10.1.0.5", true],
    ["::ffff:10.1.0.5", true], // a dual-stack listener reports IPv4 clients mapped
    ["10.1.1.5", false],
    ["::1", true],
    ["127.0.0.1", false],
  ])("%s -> %p", (a, want) => expect(clientAllowed(addr(a), allow)).toBe(want));
  test("an empty list admits nobody", () => expect(clientAllowed(addr("10.1.0.5"), [])).toBe(false));
});
