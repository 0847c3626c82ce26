// Layer 1: the SOCKS5 UDP request header (RFC 1928 §7) as tables — valid rows, every truncated
// prefix, malformed rows, round trips — and a seeded fuzz that never throws.
import { describe, expect, test } from "bun:test";
import { formatIp, parseIp } from "../../lib/net/ip.ts";
import { type Socks5Host } from "../../lib/proxy/socks5-request.ts";
import {
  encodeUdpDatagram,
  MAX_UDP_HEADER_BYTES,
  parseUdpDatagram,
  STANDALONE_FRAG,
  type UdpDatagram,
  UdpHeaderError,
  udpHeaderLength,
} from "../../lib/proxy/socks5-udp.ts";

const b = (...xs: number[]) => Uint8Array.from(xs);
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
const ip = (s: string): Socks5Host => ({ type: "ip", ip: parseIp(s)! });
const domain = (name: string): Socks5Host => ({ type: "domain", name });
const hostText = (h: Socks5Host) => (h.type === "ip" ? formatIp(h.ip) : h.name);

function ok(r: UdpDatagram | UdpHeaderError): UdpDatagram {
  if (r instanceof UdpHeaderError) throw new Error(`expected a datagram, got ${r.reason}: ${r.message}`);
  return r;
}

describe("parseUdpDatagram: valid rows", () => {
  const rows: [string, Uint8Array, { frag: number; host: string; port: number; data: number[] }][] = [
    ["IPv4, payload", b(0, 0, 0, 1, 192, 0, 2, 1, 0, 53, 0xde, 0xad), { frag: 0, host: "192.0.2.1", port: 53, data: [0xde, 0xad] }],
    ["IPv4, empty payload", b(0, 0, 0, 1, 203, 0, 113, 9, 0xff, 0xff), { frag: 0, host: "203.0.113.9", port: 65535, data: [] }],
    ["IPv4, port 0", b(0, 0, 0, 1, 198, 51, 100, 7, 0, 0, 1), { frag: 0, host: "198.51.100.7", port: 0, data: [1] }],
    [
      "IPv6",
      b(0, 0, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0xbb, 7),
      { frag: 0, host: "2001:db8::1", port: 443, data: [7] },
    ],
    ["domain", b(0, 0, 0, 3, 11, ...ascii("example.com"), 0, 53, 9, 9), { frag: 0, host: "example.com", port: 53, data: [9, 9] }],
    ["domain of 1 byte", b(0, 0, 0, 3, 1, ...ascii("a"), 0, 1), { frag: 0, host: "a", port: 1, data: [] }],
    ["a fragment is returned with its FRAG, for the relay to drop", b(0, 0, 1, 1, 192, 0, 2, 1, 0, 53, 5), { frag: 1, host: "192.0.2.1", port: 53, data: [5] }],
    ["the last fragment (high bit set)", b(0, 0, 0x81, 1, 192, 0, 2, 1, 0, 53), { frag: 0x81, host: "192.0.2.1", port: 53, data: [] }],
  ];
  for (const [name, bytes, want] of rows) {
    test(name, () => {
      const d = ok(parseUdpDatagram(bytes));
      expect({ frag: d.frag, host: hostText(d.host), port: d.port, data: Array.from(d.data) }).toEqual(want);
    });
  }

  test("the payload is a view, not a copy", () => {
    const bytes = b(0, 0, 0, 1, 192, 0, 2, 1, 0, 53, 1, 2, 3);
    const d = ok(parseUdpDatagram(bytes));
    expect(d.data.buffer).toBe(bytes.buffer);
    expect(d.data.byteOffset).toBe(10);
  });
});

describe("parseUdpDatagram: malformed rows", () => {
  const rows: [string, Uint8Array, string][] = [
    ["empty", b(), "truncated"],
    ["RSV only", b(0, 0), "truncated"],
    ["RSV FRAG, no ATYP", b(0, 0, 0), "truncated"],
    ["IPv4 address cut", b(0, 0, 0, 1, 192, 0, 2), "truncated"],
    ["IPv4 port cut", b(0, 0, 0, 1, 192, 0, 2, 1, 0), "truncated"],
    ["IPv6 address cut", b(0, 0, 0, 4, 0x20, 0x01), "truncated"],
    ["domain length only", b(0, 0, 0, 3, 5), "truncated"],
    ["domain shorter than its length", b(0, 0, 0, 3, 5, ...ascii("abc")), "truncated"],
    ["empty domain", b(0, 0, 0, 3, 0, 0, 53), "emptyDomainName"],
    ["unknown ATYP 2", b(0, 0, 0, 2, 1, 2, 3, 4, 0, 53), "badAddressType"],
    ["unknown ATYP 0xff", b(0, 0, 0, 0xff, 1, 2, 3, 4, 0, 53), "badAddressType"],
    ["RSV not zero (first byte)", b(1, 0, 0, 1, 192, 0, 2, 1, 0, 53), "badReserved"],
    ["RSV not zero (second byte)", b(0, 5, 0, 1, 192, 0, 2, 1, 0, 53), "badReserved"],
    ["a SOCKS5 TCP request sent to the UDP port", b(5, 1, 0, 1, 192, 0, 2, 1, 0, 53), "badReserved"],
  ];
  for (const [name, bytes, reason] of rows) {
    test(name, () => {
      const r = parseUdpDatagram(bytes);
      expect(r).toBeInstanceOf(UdpHeaderError);
      expect((r as UdpHeaderError).reason).toBe(reason as UdpHeaderError["reason"]);
      expect((r as UdpHeaderError).message.length).toBeGreaterThan(0);
    });
  }

  test("every truncated prefix of valid headers is an error, never a datagram", () => {
    const valid = [
      encodeUdpDatagram({ host: ip("192.0.2.1"), port: 53 }, b()),
      encodeUdpDatagram({ host: ip("2001:db8::53"), port: 53 }, b()),
      encodeUdpDatagram({ host: domain("www.example.test"), port: 443 }, b()),
    ];
    for (const full of valid) {
      expect(parseUdpDatagram(full)).not.toBeInstanceOf(UdpHeaderError);
      for (let n = 0; n < full.length; n++) {
        const r = parseUdpDatagram(full.subarray(0, n));
        expect(r).toBeInstanceOf(UdpHeaderError);
        expect((r as UdpHeaderError).reason).toBe("truncated");
      }
    }
  });
});

describe("encodeUdpDatagram", () => {
  test("IPv4 layout: RSV 0000, FRAG 00, ATYP, address, port, payload", () => {
    expect(Array.from(encodeUdpDatagram({ host: ip("198.51.100.2"), port: 5353 }, b(1, 2)))).toEqual([0, 0, 0, 1, 198, 51, 100, 2, 0x14, 0xe9, 1, 2]);
  });
  test("domain layout", () => {
    expect(Array.from(encodeUdpDatagram({ host: domain("ab"), port: 1 }, b()))).toEqual([0, 0, 0, 3, 2, 97, 98, 0, 1]);
  });
  test("header lengths, and the largest", () => {
    expect(udpHeaderLength(ip("192.0.2.1"))).toBe(10);
    expect(udpHeaderLength(ip("2001:db8::1"))).toBe(22);
    expect(udpHeaderLength(domain("x".repeat(255)))).toBe(MAX_UDP_HEADER_BYTES);
  });
  const bad: [string, () => unknown][] = [
    ["port -1", () => encodeUdpDatagram({ host: ip("192.0.2.1"), port: -1 }, b())],
    ["port 65536", () => encodeUdpDatagram({ host: ip("192.0.2.1"), port: 65536 }, b())],
    ["port 1.5", () => encodeUdpDatagram({ host: ip("192.0.2.1"), port: 1.5 }, b())],
    ["empty domain", () => encodeUdpDatagram({ host: domain(""), port: 1 }, b())],
    ["domain of 256 bytes", () => encodeUdpDatagram({ host: domain("x".repeat(256)), port: 1 }, b())],
    ["domain outside latin1", () => encodeUdpDatagram({ host: domain("ü€"), port: 1 }, b())],
    ["IPv4 of 3 bytes", () => encodeUdpDatagram({ host: { type: "ip", ip: { family: 4, bytes: b(1, 2, 3) } }, port: 1 }, b())],
  ];
  for (const [name, f] of bad) test(`refuses ${name}`, () => expect(f).toThrow(RangeError));

  test("round trips: what is encoded parses back to the same datagram", () => {
    const hosts = [ip("192.0.2.1"), ip("0.0.0.0"), ip("2001:db8::1"), ip("::"), domain("a"), domain("dns.example.test"), domain("x".repeat(255))];
    for (const host of hosts) {
      for (const port of [0, 53, 443, 65535]) {
        for (const data of [b(), b(0), Uint8Array.from({ length: 1400 }, (_, i) => i & 0xff)]) {
          const d = ok(parseUdpDatagram(encodeUdpDatagram({ host, port }, data)));
          expect(d.frag).toBe(STANDALONE_FRAG);
          expect(hostText(d.host)).toBe(hostText(host));
          expect(d.port).toBe(port);
          expect(Array.from(d.data)).toEqual(Array.from(data));
        }
      }
    }
  });
});

describe("parseUdpDatagram: seeded fuzz", () => {
  // xorshift32: the same seed gives the same cases on every run, so a failure can be replayed.
  function rng(seed: number): () => number {
    let x = seed >>> 0 || 1;
    return () => {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x;
    };
  }

  test("20,000 mutated and random datagrams: never throws; a datagram's payload lies inside the input", () => {
    const next = rng(0x5ec5);
    const seeds = [
      encodeUdpDatagram({ host: ip("192.0.2.1"), port: 53 }, b(1, 2, 3)),
      encodeUdpDatagram({ host: ip("2001:db8::1"), port: 443 }, b(4)),
      encodeUdpDatagram({ host: domain("dns.example.test"), port: 53 }, b()),
    ];
    const counts = { datagram: 0, error: 0 };
    for (let i = 0; i < 20_000; i++) {
      let buf: Uint8Array;
      if (i % 4 === 0) {
        buf = Uint8Array.from({ length: next() % 64 }, () => next() & 0xff);
      } else {
        const base = seeds[next() % seeds.length]!;
        buf = base.slice(0, next() % (base.length + 8));
        if (buf.length < base.length + 8 && next() % 2) buf = Uint8Array.from([...buf, ...Array.from({ length: next() % 8 }, () => next() & 0xff)]);
        for (let k = next() % 3; k > 0 && buf.length > 0; k--) buf[next() % buf.length] = next() & 0xff;
      }
      const r = parseUdpDatagram(buf);
      if (r instanceof UdpHeaderError) {
        counts.error++;
        continue;
      }
      counts.datagram++;
      expect(r.data.byteOffset - buf.byteOffset + r.data.length).toBe(buf.length);
      expect(r.port).toBeGreaterThanOrEqual(0);
      expect(r.port).toBeLessThanOrEqual(65535);
      // Whatever parses must encode back to the same header (FRAG aside, which encode fixes at 0).
      const again = encodeUdpDatagram({ host: r.host, port: r.port }, r.data);
      expect(Array.from(again.subarray(3))).toEqual(Array.from(buf.subarray(3)));
    }
    // Both outcomes were exercised, so the fuzz is not vacuous.
    expect(counts.datagram).toBeGreaterThan(1000);
    expect(counts.error).toBeGreaterThan(1000);
  });
});
