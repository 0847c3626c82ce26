// Layer 2: name resolution. Tunnel mode queries our own DNS server on 127.0.0.1 (nothing leaves
// loopback); system mode only resolves names that /etc/hosts answers.
import { afterEach, describe, expect, test } from "bun:test";
import { formatIp } from "../../lib/net/ip.ts";
import { ProxyConfigError, ResolveError } from "../../lib/proxy/errors.ts";
import { createResolver, normalizeDnsServers } from "../../lib/proxy/resolve.ts";
import { cleanup, dnsServer } from "./helpers.ts";

afterEach(cleanup);

async function rejection(p: Promise<unknown>): Promise<ResolveError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ResolveError) return e;
    throw e;
  }
  throw new Error("resolved, expected a ResolveError");
}

describe("tunnel mode", () => {
  test("asks A and AAAA and returns IPv6 first", async () => {
    const dns = await dnsServer({ "dual.test": ["192.0.2.7", "2001:db8::7", "192.0.2.8"] });
    const resolve = createResolver({ mode: "tunnel", servers: [`${dns.address}:${dns.port}`], timeoutMs: 2000 });
    expect((await resolve("dual.test")).map(formatIp)).toEqual(["2001:db8::7", "192.0.2.7", "192.0.2.8"]);
    expect(dns.queries.map((q) => q.type).sort()).toEqual([1, 28]);
  });

  test("an IPv4-only name", async () => {
    const dns = await dnsServer({ "v4.test": ["192.0.2.9"] });
    const resolve = createResolver({ mode: "tunnel", servers: [`${dns.address}:${dns.port}`] });
    expect((await resolve("v4.test")).map(formatIp)).toEqual(["192.0.2.9"]);
  });

  test("a slow AAAA answer is not waited for beyond the 50 ms resolution delay (RFC 8305 §3)", async () => {
    const dns = await dnsServer({ "slow6.test": ["192.0.2.1", "2001:db8::1"] }, { delayMs: { 28: 1500 } });
    const resolve = createResolver({ mode: "tunnel", servers: [`${dns.address}:${dns.port}`], timeoutMs: 3000 });
    const t0 = Date.now();
    expect((await resolve("slow6.test")).map(formatIp)).toEqual(["192.0.2.1"]);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  test("a slightly late AAAA answer (inside the delay) is used", async () => {
    const dns = await dnsServer({ "late6.test": ["192.0.2.1", "2001:db8::1"] }, { delayMs: { 28: 10 } });
    const resolve = createResolver({ mode: "tunnel", servers: [`${dns.address}:${dns.port}`] });
    expect((await resolve("late6.test")).map(formatIp)).toEqual(["2001:db8::1", "192.0.2.1"]);
  });

  test("NXDOMAIN -> ResolveError ENOTFOUND", async () => {
    const dns = await dnsServer({});
    const resolve = createResolver({ mode: "tunnel", servers: [`${dns.address}:${dns.port}`] });
    const e = await rejection(resolve("nx.test"));
    expect(e.code).toBe("ENOTFOUND");
    expect(e.hostname).toBe("nx.test");
  });

  test("a server that never answers -> ETIMEOUT within timeoutMs", async () => {
    const dns = await dnsServer({ "black.test": "drop" });
    const resolve = createResolver({ mode: "tunnel", servers: [`${dns.address}:${dns.port}`], timeoutMs: 400 });
    const t0 = Date.now();
    const e = await rejection(resolve("black.test"));
    expect(e.code).toBe("ETIMEOUT");
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  test("the second server answers when the first is silent", async () => {
    const silent = await dnsServer({ "two.test": "drop" });
    const good = await dnsServer({ "two.test": ["192.0.2.2"] }, { address: "127.0.0.2" });
    const resolve = createResolver({ mode: "tunnel", servers: [`${silent.address}:${silent.port}`, `${good.address}:${good.port}`], timeoutMs: 3000 });
    expect((await resolve("two.test")).map(formatIp)).toEqual(["192.0.2.2"]);
  });
});

describe("system mode", () => {
  test("resolves through /etc/hosts", async () => {
    const addrs = (await createResolver({ mode: "system" })("localhost")).map(formatIp);
    expect(addrs.length).toBeGreaterThan(0);
    for (const a of addrs) expect(["127.0.0.1", "::1"]).toContain(a);
  });
});

describe("options", () => {
  test.each([
    ["9.9.9.9", "9.9.9.9"],
    ["2620:fe::fe", "2620:fe::fe"],
    ["127.0.0.1:5353", "127.0.0.1:5353"],
    ["[::1]:5353", "[::1]:5353"],
  ])("server %s", (input, want) => expect(normalizeDnsServers([input])).toEqual([want]));

  test.each([["dns.quad9.net"], ["9.9.9.9:"], ["[::1]"], [""]])("server %p is refused", (input) => {
    expect(() => normalizeDnsServers([input])).toThrow(ProxyConfigError);
  });

  test("tunnel mode needs servers; unknown modes and bad timeouts are refused", () => {
    expect(() => createResolver({ mode: "tunnel" })).toThrow(/at least one server/);
    expect(() => createResolver({ mode: "bogus" as "system" })).toThrow(ProxyConfigError);
    expect(() => createResolver({ timeoutMs: 0 })).toThrow(ProxyConfigError);
  });
});
