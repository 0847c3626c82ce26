/** The internet host's servers: the DNS wire format as tables, then both servers on loopback. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Resolver } from "node:dns/promises";
import { DnsRcode, DnsType, encodeDnsAnswer, lookupZone, parseDnsQuery, serveWhoami, type WhoamiServer } from "../../lib/lab/whoami.ts";

/** A query as resolvers send it: id, flags (RD), one question. */
function query(name: string, type: number = DnsType.a, opts: { id?: number; flags?: number; qdcount?: number; cls?: number } = {}): Uint8Array {
  const labels = name.split(".").filter(Boolean).flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
  const q = [...labels, 0, type >> 8, type & 0xff, (opts.cls ?? 1) >> 8, (opts.cls ?? 1) & 0xff];
  const id = opts.id ?? 0xbeef;
  const flags = opts.flags ?? 0x0100;
  const qd = opts.qdcount ?? 1;
  return Uint8Array.from([id >> 8, id & 0xff, flags >> 8, flags & 0xff, 0, qd, 0, 0, 0, 0, 0, 0, ...q]);
}

describe("parseDnsQuery", () => {
  test("a standard query: id, flags, name, type, class, and the question's bytes", () => {
    const q = parseDnsQuery(query("WhoAmI.example", DnsType.aaaa))!;
    expect({ id: q.id, flags: q.flags, name: q.name, type: q.type, class: q.class }).toEqual({ id: 0xbeef, flags: 0x0100, name: "WhoAmI.example", type: 28, class: 1 });
    expect(q.question.length).toBe(1 + 6 + 1 + 7 + 1 + 4);
  });
  test("an OPT record after the question (EDNS, as c-ares sends) is ignored", () => {
    const withOpt = Uint8Array.from([...query("a.example"), 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    withOpt[11] = 1; // ARCOUNT
    expect(parseDnsQuery(withOpt)?.name).toBe("a.example");
  });
  const full = query("whoami.example");
  test.each([
    ["shorter than a header", full.slice(0, 11)],
    ["a response (QR set)", query("whoami.example", 1, { flags: 0x8100 })],
    ["no question", query("whoami.example", 1, { qdcount: 0 })],
    ["name cut off", full.slice(0, 16)],
    ["label length past the end", Uint8Array.from([...full.slice(0, 12), 40, 97, 98])],
    ["type and class cut off", full.slice(0, full.length - 2)],
    ["a compression pointer in the question", Uint8Array.from([...full.slice(0, 12), 0xc0, 12, 0, 1, 0, 1])],
  ])("dropped: %s", (_, bytes) => {
    expect(parseDnsQuery(bytes)).toBeNull();
  });
});

describe("lookupZone", () => {
  const zone = new Map([["whoami.example", "203.0.113.10"]]);
  type Row = [string, { flags: number; name: string; type: number; class: number }, number, string[]];
  test.each<Row>([
    ["A for a known name", { flags: 0x0100, name: "whoami.example", type: DnsType.a, class: 1 }, DnsRcode.noError, ["203.0.113.10"]],
    ["names are case-insensitive", { flags: 0, name: "WHOAMI.Example", type: DnsType.a, class: 1 }, DnsRcode.noError, ["203.0.113.10"]],
    ["AAAA for a known name: no records", { flags: 0, name: "whoami.example", type: DnsType.aaaa, class: 1 }, DnsRcode.noError, []],
    ["an unknown name", { flags: 0, name: "other.example", type: DnsType.a, class: 1 }, DnsRcode.nxDomain, []],
    ["class CH", { flags: 0, name: "whoami.example", type: DnsType.a, class: 3 }, DnsRcode.notImp, []],
    ["opcode STATUS", { flags: 2 << 11, name: "whoami.example", type: DnsType.a, class: 1 }, DnsRcode.notImp, []],
  ])("%s", (_, q, rcode, addresses) => {
    expect(lookupZone(zone, q)).toEqual({ rcode, addresses });
  });
});

describe("encodeDnsAnswer", () => {
  test("header, echoed question, one A record with a name pointer", () => {
    const q = parseDnsQuery(query("whoami.example"))!;
    const a = encodeDnsAnswer(q, DnsRcode.noError, ["203.0.113.10"]);
    const v = new DataView(a.buffer);
    expect(v.getUint16(0)).toBe(0xbeef);
    expect(v.getUint16(2)).toBe(0x8000 | 0x0400 | 0x0100); // QR AA RD, rcode 0
    expect([v.getUint16(4), v.getUint16(6), v.getUint16(8), v.getUint16(10)]).toEqual([1, 1, 0, 0]);
    expect([...a.slice(12, 12 + q.question.length)]).toEqual([...q.question]);
    expect([...a.slice(12 + q.question.length)]).toEqual([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 10]);
  });
  test("NXDOMAIN: no answers, rcode 3, RD copied only if set", () => {
    const a = encodeDnsAnswer(parseDnsQuery(query("x.example", 1, { flags: 0 }))!, DnsRcode.nxDomain, []);
    expect(new DataView(a.buffer).getUint16(2)).toBe(0x8000 | 0x0400 | 3);
    expect(new DataView(a.buffer).getUint16(6)).toBe(0);
  });
  test("only IPv4 answers", () => {
    expect(() => encodeDnsAnswer(parseDnsQuery(query("x.example"))!, 0, ["2001:db8::1"])).toThrow(/IPv4/);
  });
});

describe("serveWhoami on loopback", () => {
  let server: WhoamiServer;
  const lines: string[] = [];
  beforeAll(async () => {
    server = await serveWhoami({ address: "127.0.0.1", httpPort: 0, dnsPort: 0, names: { "whoami.example.": "203.0.113.10" }, log: (l) => lines.push(l) });
  });
  afterAll(() => server.stop());

  test("HTTP answers the peer's address, for curl", async () => {
    const p = Bun.spawn(["curl", "-q", "-sS", "--noproxy", "*", `http://127.0.0.1:${server.httpPort}/`], { stdout: "pipe" });
    expect(await new Response(p.stdout).text()).toBe("127.0.0.1\n");
    expect(lines).toContain("http GET / from 127.0.0.1");
  });

  test("DNS answers a real resolver (c-ares): A for the name, NXDOMAIN for others, and logs the source", async () => {
    const r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([`127.0.0.1:${server.dnsPort}`]);
    expect(await r.resolve4("whoami.example")).toEqual(["203.0.113.10"]);
    // NOERROR without records; c-ares then tries the search domains too, so the code varies.
    expect(await r.resolve6("whoami.example").catch((e) => e.code)).toMatch(/^(ENODATA|ENOTFOUND)$/);
    expect(lines).toContain("dns AAAA whoami.example from 127.0.0.1: (no records)");
    expect(await r.resolve4("nope.example").catch((e) => e.code)).toBe("ENOTFOUND");
    expect(lines).toContain("dns A whoami.example from 127.0.0.1: 203.0.113.10");
    expect(lines).toContain("dns A nope.example from 127.0.0.1: NXDOMAIN");
  });
});
