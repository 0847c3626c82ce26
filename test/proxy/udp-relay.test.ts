// Layer 2: one UDP association on loopback, with real sockets on both sides: who may send, where
// datagrams may go, replies wrapped with their real source, limits, idle end, and no fd left behind.
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { parseCidr, parseIp, type IpAddr } from "../../lib/net/ip.ts";
import { checkDestination } from "../../lib/proxy/policy.ts";
import { encodeUdpDatagram, parseUdpDatagram, UdpHeaderError } from "../../lib/proxy/socks5-udp.ts";
import { createUdpStats, openUdpAssociation, type UdpAssociation, type UdpAssociationOptions, type UdpStats } from "../../lib/proxy/udp-relay.ts";
import { cleanup } from "./helpers.ts";
import { peer, udpEcho as echoServer, wrap } from "./udp-helpers.ts";

const loopbackAllowed = (addr: IpAddr) => checkDestination(addr, { allowDestinations: [parseCidr("127.0.0.0/8"), parseCidr("::1/128")] });
const defaultPolicy = (addr: IpAddr) => checkDestination(addr, {});
const noResolve = async (name: string): Promise<IpAddr[]> => {
  throw new Error(`no resolver in this test (${name})`);
};
const open: { close(): void }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) o.close();
  await cleanup();
});

async function associate(stats: UdpStats, o: Partial<UdpAssociationOptions> = {}): Promise<UdpAssociation> {
  const a = await openUdpAssociation({
    client: parseIp(o.bindAddress === "::1" ? "::1" : "127.0.0.1")!,
    bindAddress: "127.0.0.1",
    checkDestination: loopbackAllowed,
    resolve: noResolve,
    stats,
    ...o,
  });
  open.push(a);
  return a;
}

const text = (d: Uint8Array) => new TextDecoder().decode(d);
async function until(check: () => boolean, ms = 1000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await Bun.sleep(5);
}

describe("UDP association on loopback", () => {
  test("a datagram reaches its destination, and the reply comes back wrapped with the real source", async () => {
    const stats = createUdpStats();
    const echo = await echoServer();
    const client = await peer();
    open.push(echo.sock, client.sock);
    const a = await associate(stats);
    expect(a.bound.address).toBe("127.0.0.1");
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "ping"), a.bound.port, "127.0.0.1");
    const r = await client.next();
    expect(r).not.toBeNull();
    expect(r!.port).toBe(a.bound.port);
    const d = parseUdpDatagram(r!.data);
    if (d instanceof UdpHeaderError) throw d;
    expect(d.host).toEqual({ type: "ip", ip: parseIp("127.0.0.1")! });
    expect(d.port).toBe(echo.sock.port);
    expect(text(d.data)).toBe("echo:ping");
    expect(text(echo.seen[0]!.data)).toBe("ping"); // the header is not forwarded
    expect(stats).toMatchObject({ associationsActive: 1, associationsTotal: 1, datagramsUp: 1, bytesUp: 4, datagramsDown: 1, bytesDown: 9 });
  });

  test("IPv6: ::1 both ways", async () => {
    const stats = createUdpStats();
    const echo = await echoServer("::1");
    const client = await peer("::1");
    open.push(echo.sock, client.sock);
    const a = await associate(stats, { bindAddress: "::1", client: parseIp("::1")! });
    client.sock.send(wrap("::1", echo.sock.port, "six"), a.bound.port, "::1");
    const d = parseUdpDatagram((await client.next())!.data);
    if (d instanceof UdpHeaderError) throw d;
    expect(d.host).toEqual({ type: "ip", ip: parseIp("::1")! });
    expect(text(d.data)).toBe("echo:six");
  });

  test("the default policy denies loopback: dropped as policy, nothing reaches the target", async () => {
    const stats = createUdpStats();
    const echo = await echoServer();
    const client = await peer();
    open.push(echo.sock, client.sock);
    const drops: string[] = [];
    const a = await associate(stats, { checkDestination: defaultPolicy, onDrop: (r, d) => drops.push(`${r}: ${d}`) });
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "x"), a.bound.port, "127.0.0.1");
    await until(() => stats.drops.policy > 0);
    expect(stats.drops.policy).toBe(1);
    expect(drops[0]).toContain("loopback");
    await Bun.sleep(50);
    expect(echo.seen).toEqual([]);
    expect(stats.datagramsUp).toBe(0);
  });

  test("a datagram from a foreign source is dropped: another port once the first fixed it, another address", async () => {
    const stats = createUdpStats();
    const echo = await echoServer();
    const client = await peer();
    const samehost = await peer();
    const other = await peer("127.0.0.2");
    open.push(echo.sock, client.sock, samehost.sock, other.sock);
    const a = await associate(stats);
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "first"), a.bound.port, "127.0.0.1");
    expect(await client.next()).not.toBeNull();
    samehost.sock.send(wrap("127.0.0.1", echo.sock.port, "same ip, other port"), a.bound.port, "127.0.0.1");
    other.sock.send(wrap("127.0.0.1", echo.sock.port, "other ip"), a.bound.port, "127.0.0.1");
    await until(() => stats.drops.foreign_source >= 2);
    expect(stats.drops.foreign_source).toBe(2);
    expect(echo.seen.map((s) => text(s.data))).toEqual(["first"]);
    expect(samehost.got).toEqual([]);
    expect(other.got).toEqual([]);
  });

  test("DST.PORT of the request fixes the client's port before its first datagram", async () => {
    const stats = createUdpStats();
    const echo = await echoServer();
    const client = await peer();
    const intruder = await peer();
    open.push(echo.sock, client.sock, intruder.sock);
    const a = await associate(stats, { clientPort: client.sock.port });
    intruder.sock.send(wrap("127.0.0.1", echo.sock.port, "early"), a.bound.port, "127.0.0.1");
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "mine"), a.bound.port, "127.0.0.1");
    const reply = parseUdpDatagram((await client.next())!.data);
    if (reply instanceof UdpHeaderError) throw reply;
    expect(text(reply.data)).toBe("echo:mine");
    await until(() => stats.drops.foreign_source >= 1);
    expect(stats.drops.foreign_source).toBe(1);
    expect(echo.seen.map((s) => text(s.data))).toEqual(["mine"]);
  });

  test("fragments (FRAG ≠ 0) and malformed headers are dropped and counted", async () => {
    const stats = createUdpStats();
    const echo = await echoServer();
    const client = await peer();
    open.push(echo.sock, client.sock);
    const a = await associate(stats);
    const frag = wrap("127.0.0.1", echo.sock.port, "part");
    frag[2] = 1;
    client.sock.send(frag, a.bound.port, "127.0.0.1");
    client.sock.send(Uint8Array.of(0, 0, 0), a.bound.port, "127.0.0.1");
    client.sock.send(wrap("127.0.0.1", 0, "port zero"), a.bound.port, "127.0.0.1");
    await until(() => stats.drops.fragment + stats.drops.malformed >= 3);
    expect(stats.drops.fragment).toBe(1);
    expect(stats.drops.malformed).toBe(2);
    expect(echo.seen).toEqual([]);
  });

  test("replies come only from destinations the association sent to", async () => {
    const stats = createUdpStats();
    const echo = await echoServer();
    const client = await peer();
    const stranger = await peer();
    open.push(echo.sock, client.sock, stranger.sock);
    const a = await associate(stats);
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "hello"), a.bound.port, "127.0.0.1");
    expect(await client.next()).not.toBeNull();
    const outboundPort = echo.seen[0]!.port;
    stranger.sock.send(new TextEncoder().encode("unsolicited"), outboundPort, "127.0.0.1");
    await until(() => stats.drops.foreign_source >= 1);
    expect(stats.drops.foreign_source).toBe(1);
    expect(await client.next(100)).toBeNull();
  });

  // Regression: Bun reports an ICMP port unreachable as an `error` call with no error object; the
  // relay used to end the association on it (and read `.message` of undefined).
  test("an ICMP port unreachable from one destination (or from the client) does not end the association", async () => {
    const stats = createUdpStats();
    const echo = await echoServer();
    const client = await peer();
    const gone = await peer();
    const closedPort = gone.sock.port;
    gone.sock.close();
    const ended: string[] = [];
    const a = await associate(stats, { onEnd: (r) => ended.push(r) });
    for (let i = 0; i < 3; i++) {
      client.sock.send(wrap("127.0.0.1", closedPort, `lost ${i}`), a.bound.port, "127.0.0.1");
      await Bun.sleep(20);
    }
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "still here"), a.bound.port, "127.0.0.1");
    const r = await client.next();
    expect(text((parseUdpDatagram(r!.data) as { data: Uint8Array }).data)).toBe("echo:still here");
    // The client's own socket goes away: the reply to it bounces, and the association stays.
    const second = await peer();
    const b = await associate(stats, { onEnd: (r) => ended.push(r), clientPort: second.sock.port });
    second.sock.send(wrap("127.0.0.1", echo.sock.port, "x"), b.bound.port, "127.0.0.1");
    await until(() => echo.seen.length >= 2);
    second.sock.close();
    await Bun.sleep(100);
    expect({ a: a.closed, b: b.closed, ended }).toEqual({ a: false, b: false, ended: [] });
    expect(stats.datagramsUp).toBe(5);
  });

  test("names: resolved by the resolver given, checked again after resolution, failures counted", async () => {
    const stats = createUdpStats();
    const echo = await echoServer();
    const client = await peer();
    open.push(echo.sock, client.sock);
    const asked: string[] = [];
    const resolve = async (name: string): Promise<IpAddr[]> => {
      asked.push(name);
      if (name === "echo.example.test") return [parseIp("127.0.0.1")!];
      if (name === "private.example.test") return [parseIp("10.0.0.5")!];
      throw new Error(`${name}: no such name`);
    };
    const a = await associate(stats, { resolve });
    const byName = (name: string, t: string) => encodeUdpDatagram({ host: { type: "domain", name }, port: echo.sock.port }, new TextEncoder().encode(t));
    client.sock.send(byName("echo.example.test", "one"), a.bound.port, "127.0.0.1");
    client.sock.send(byName("echo.example.test", "two"), a.bound.port, "127.0.0.1");
    client.sock.send(byName("private.example.test", "three"), a.bound.port, "127.0.0.1");
    client.sock.send(byName("missing.example.test", "four"), a.bound.port, "127.0.0.1");
    await until(() => client.got.length >= 2 && stats.drops.policy + stats.drops.unresolved >= 2);
    expect(client.got.map((g) => text((parseUdpDatagram(g.data) as { data: Uint8Array }).data)).sort()).toEqual(["echo:one", "echo:two"]);
    expect(stats.drops.policy).toBe(1);
    expect(stats.drops.unresolved).toBe(1);
    expect(asked.filter((n) => n === "echo.example.test")).toEqual(["echo.example.test"]); // resolved once
  });

  test("maxDestinations: a destination beyond the limit is dropped as over_limit", async () => {
    const stats = createUdpStats();
    const servers = [await echoServer(), await echoServer(), await echoServer()];
    const client = await peer();
    open.push(client.sock, ...servers.map((s) => s.sock));
    const a = await associate(stats, { maxDestinations: 2 });
    for (const s of servers) client.sock.send(wrap("127.0.0.1", s.sock.port, "hi"), a.bound.port, "127.0.0.1");
    await until(() => client.got.length >= 2 && stats.drops.over_limit >= 1);
    expect(stats.drops.over_limit).toBe(1);
    expect(servers.map((s) => s.seen.length)).toEqual([1, 1, 0]);
  });

  test("idleTimeout ends a quiet association, frees its socket and says why", async () => {
    const stats = createUdpStats();
    const ended: string[] = [];
    const a = await associate(stats, { idleTimeoutMs: 150, onEnd: (r) => ended.push(r) });
    await until(() => a.closed, 2000);
    expect(a.closed).toBe(true);
    expect(ended).toHaveLength(1);
    expect(ended[0]).toContain("idle");
    expect(stats.associationsActive).toBe(0);
  });

  test("a port range: the relay binds inside it, and says which range failed when it is taken", async () => {
    const stats = createUdpStats();
    const holder = await peer();
    open.push(holder.sock);
    const p = holder.sock.port;
    const a = await associate(stats, { portRange: { first: p, last: p + 1 } });
    expect(a.bound.port).toBe(p + 1);
    await expect(associate(stats, { portRange: { first: p, last: p } })).rejects.toThrow(`cannot bind a UDP relay socket on 127.0.0.1 from ports ${p}-${p}`);
  });

  test("1,000 associations opened and closed, each used once: the fd count is back to baseline", async () => {
    const stats = createUdpStats();
    const echo = await echoServer();
    const client = await peer();
    open.push(echo.sock, client.sock);
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    for (let i = 0; i < 1000; i++) {
      const a = await openUdpAssociation({ client: parseIp("127.0.0.1")!, bindAddress: "127.0.0.1", checkDestination: loopbackAllowed, resolve: noResolve, stats });
      client.sock.send(wrap("127.0.0.1", echo.sock.port, `n${i}`), a.bound.port, "127.0.0.1");
      if (i % 100 === 0) expect(await client.next()).not.toBeNull();
      a.close();
    }
    await Bun.sleep(100);
    expect(stats.associationsTotal).toBe(1000);
    expect(stats.associationsActive).toBe(0);
    expect(fds()).toBeLessThanOrEqual(before + 2);
  });
});
