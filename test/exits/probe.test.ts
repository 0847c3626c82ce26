// Layer 2: the exit probe on loopback, against real listeners: success, refusal, silence, the
// source address it binds, and no fd left behind.
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { probe } from "../../lib/exits/probe.ts";

const peers: string[] = [];
const tcp = Bun.listen({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    open: (s) => {
      peers.push(s.remoteAddress);
      s.end();
    },
    data: () => undefined,
  },
});
// A DNS server that answers every query with its ID and the QR bit, and a silent one.
const dns = await Bun.udpSocket({
  hostname: "127.0.0.1",
  port: 0,
  binaryType: "uint8array",
  socket: {
    data: (s, d, port, address) => {
      const answer = d.slice();
      answer[2] = answer[2]! | 0x80;
      s.send(answer, port, address);
    },
  },
});
const silent = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
// A port nobody listens on: bind one, note it, close it.
const closedPort = (() => {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: () => undefined } });
  const p = l.port;
  l.stop(true);
  return p;
})();
afterAll(() => {
  tcp.stop(true);
  dns.close();
  silent.close();
});

describe("probe", () => {
  test("tcp: a listening target is ok, with a latency", async () => {
    const r = await probe({ kind: "tcp", host: "127.0.0.1", port: tcp.port });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.latencySeconds).toBeLessThan(2);
  });

  test("tcp: the source address is the one given (the exit's tunnel address in production)", async () => {
    const r = await probe({ kind: "tcp", host: "127.0.0.1", port: tcp.port }, { localAddress: "127.0.0.2" });
    expect(r.ok).toBe(true);
    expect(peers.at(-1)).toBe("127.0.0.2");
  });

  test("tcp: a refused connect is a miss that says so", async () => {
    const r = await probe({ kind: "tcp", host: "127.0.0.1", port: closedPort });
    expect(r).toEqual({ ok: false, reason: `127.0.0.1:${closedPort}: connection refused (the path works, but choose a target that listens)` });
  });

  test("tcp: a source address the host does not have is named", async () => {
    const r = await probe({ kind: "tcp", host: "127.0.0.1", port: tcp.port }, { localAddress: "192.0.2.77" });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain("EADDRNOTAVAIL");
  });

  test("dns: an answer with the query's ID is ok", async () => {
    const r = await probe({ kind: "dns", server: "127.0.0.1", port: dns.port, name: "probe.example.test" });
    expect(r.ok).toBe(true);
  });

  test("dns: silence is a miss after the timeout", async () => {
    const t0 = performance.now();
    const r = await probe({ kind: "dns", server: "127.0.0.1", port: silent.port, name: "probe.example.test" }, { timeoutMs: 200 });
    expect(r).toEqual({ ok: false, reason: `no DNS answer from 127.0.0.1:${silent.port} within 200 ms` });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
  });

  test("200 probes of each kind leave no fd behind", async () => {
    const fds = () => readdirSync("/proc/self/fd").length;
    const before = fds();
    for (let i = 0; i < 200; i++) {
      await probe({ kind: "tcp", host: "127.0.0.1", port: i % 2 ? tcp.port : closedPort });
      await probe({ kind: "dns", server: "127.0.0.1", port: dns.port, name: "probe.example.test" });
    }
    await Bun.sleep(50);
    expect(fds()).toBeLessThanOrEqual(before + 2);
  });
});
