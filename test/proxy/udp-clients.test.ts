// Layer 2: real SOCKS5 UDP clients (PySocks SOCK_DGRAM, Node's socks package) against
// `egressd proxy` spawned as a process on loopback; 1,000 associations over real TCP control
// connections leave the process's fd count where it was; a live fuzz of random datagrams at a
// relay port leaves the proxy up and serving. (Dante's socksify needs an off-link destination, so
// it is driven in the lab: test/e2e/udp.test.ts.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { parseIp } from "../../lib/net/ip.ts";
import { parseUdpDatagram, UdpHeaderError, encodeUdpDatagram } from "../../lib/proxy/socks5-udp.ts";
import { Reply } from "../../lib/proxy/socks5.ts";
import { cleanup, dnsServer, ROOT, spawnProxy, until, type ProxyProcess } from "./helpers.ts";
import { prng } from "./prng.ts";
import { nodeSocksUdp, PYSOCKS_UDP, PYTHON } from "./udp-client-scripts.ts";
import { associate, peer, udpEcho, wrap } from "./udp-helpers.ts";

let proxy: ProxyProcess;
let echo: Awaited<ReturnType<typeof udpEcho>>;

beforeAll(async () => {
  echo = await udpEcho();
  // Names in datagrams go to a DNS server on loopback (NXDOMAIN for all), never to the host's resolver.
  const dns = await dnsServer({});
  proxy = await spawnProxy(["--allow-destination", "127.0.0.0/8", "--dns", "tunnel", "--dns-server", `127.0.0.1:${dns.port}`]);
});
afterAll(cleanup);

async function run(argv: string[]): Promise<{ code: number; stdout: string }> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  return { code, stdout: stdout + stderr };
}

const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

describe("real UDP clients through egressd proxy", () => {
  test("PySocks SOCK_DGRAM: the echo comes back, from the echo server's real address", async () => {
    const r = await run([PYTHON, "-c", PYSOCKS_UDP, "127.0.0.1", String(proxy.port), "127.0.0.1", String(echo.sock.port), "hello-python"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ data: "echo:hello-python", host: "127.0.0.1", port: echo.sock.port });
  });

  test("Node's socks package: associate, createUDPFrame, parseUDPFrame", async () => {
    const r = await run(["node", "--input-type=module", "-e", nodeSocksUdp(ROOT), "127.0.0.1", String(proxy.port), "127.0.0.1", String(echo.sock.port), "hello-node"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ data: "echo:hello-node", host: "127.0.0.1", port: echo.sock.port });
  });

  test("both clients' control connections are logged as ok UDP associations", async () => {
    await until(() => (proxy.stderr().match(/proxy connection closed .*address="udp 127\.0\.0\.1:\d+" result=ok .*datagramsUp=1 datagramsDown=1/g)?.length ?? 0) >= 2, 5000);
  });

  test("--no-udp: Node's socks client is told 'command not supported'", async () => {
    const off = await spawnProxy(["--no-udp", "--allow-destination", "127.0.0.0/8"]);
    const r = await run(["node", "--input-type=module", "-e", nodeSocksUdp(ROOT), "127.0.0.1", String(off.port), "127.0.0.1", String(echo.sock.port), "x"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("CommandNotSupported");
    await off.stop();
  });
});

test("an association ended by its TCP close frees its sockets: 1,000 over real control connections, fd count back to baseline", async () => {
  const pid = proxy.proc.pid;
  const client = await peer();
  // One round first, so that whatever the process allocates once (an epoll, a timer fd) is in the baseline.
  const once = async () => {
    const { conn, reply } = await associate(proxy.port, { hintPort: client.sock.port });
    expect(reply.reply).toBe(Reply.succeeded);
    client.sock.send(wrap("127.0.0.1", echo.sock.port, "fd"), reply.port, "127.0.0.1");
    const got = await client.next(3000);
    if (got === null) throw new Error("no reply through the association");
    conn.socket.end();
    await conn.closed;
  };
  await once();
  await Bun.sleep(200);
  const baseline = fds(pid);
  let peak = 0;
  for (let batch = 0; batch < 40; batch++) {
    // 25 associations open at once, each used once, then all closed by their TCP connections.
    const open = await Promise.all(Array.from({ length: 25 }, () => associate(proxy.port)));
    for (const { reply } of open) expect(reply.reply).toBe(Reply.succeeded);
    peak = Math.max(peak, fds(pid));
    for (const { conn } of open) conn.socket.end();
    await Promise.all(open.map((o) => o.conn.closed));
  }
  await until(() => fds(pid) <= baseline, 10_000).catch(() => undefined);
  expect({ peak: peak > baseline + 25, after: fds(pid) }).toEqual({ peak: true, after: baseline });
}, 60_000);

test("live fuzz: random and mutated datagrams at a live relay port; the proxy stays up, and a good client is still served", async () => {
  const SEED = Number(process.env.EGRESSD_FUZZ_SEED ?? 0x5eed_0d9);
  const rand = prng(SEED);
  const int = (n: number) => Math.floor(rand() * n);
  const fuzzer = await peer();
  const stranger = await peer("127.0.0.2");
  const { conn, reply } = await associate(proxy.port, { hintPort: fuzzer.sock.port });
  expect(reply.reply).toBe(Reply.succeeded);
  const logFrom = proxy.stderr().length;
  const valid = [
    () => wrap("127.0.0.1", echo.sock.port, "x".repeat(int(64))),
    () => encodeUdpDatagram({ host: { type: "domain", name: "fuzz.invalid" }, port: 53 }, new Uint8Array(int(32))),
    () => encodeUdpDatagram({ host: { type: "ip", ip: parseIp("::1")! }, port: echo.sock.port }, new Uint8Array(int(32))),
    () => new Uint8Array([0, 0, int(256), 1, 127, 0, 0, 1, 0, 7]), // FRAG random
  ];
  let sent = 0;
  for (let i = 0; i < 3000; i++) {
    let d: Uint8Array;
    if (int(3) === 0) d = Uint8Array.from({ length: int(300) }, () => int(256));
    else {
      d = valid[int(valid.length)]!().slice();
      for (let k = 1 + int(3); k > 0 && d.length > 0; k--) d[int(Math.min(d.length, 12))] = int(256);
      if (int(4) === 0) d = d.subarray(0, int(d.length + 1));
    }
    // Test traffic stays on loopback: a mutation that came out as a valid header for some other
    // address is not sent (names go to the proxy's loopback DNS server and fail there).
    const p = parseUdpDatagram(d);
    if (!(p instanceof UdpHeaderError) && p.host.type === "ip") {
      const ip = p.host.ip;
      const loop = ip.family === 4 ? ip.bytes[0] === 127 : ip.bytes.every((b, j) => b === (j === 15 ? 1 : 0));
      if (!loop) continue;
    }
    (int(5) === 0 ? stranger : fuzzer).sock.send(d, reply.port, "127.0.0.1");
    sent++;
    if (i % 100 === 0) await Bun.sleep(1); // let the proxy read; a full socket buffer only drops
  }
  expect(sent).toBeGreaterThan(2500);
  await Bun.sleep(300);
  expect(proxy.proc.exitCode).toBeNull();
  expect(proxy.stderr().slice(logFrom).split("\n").filter((l) => /^\S+ (warn|error) /.test(l))).toEqual([]);
  // The fuzzed association still relays for its own client, and a new client is served.
  fuzzer.got.length = 0;
  fuzzer.sock.send(wrap("127.0.0.1", echo.sock.port, "after the fuzz"), reply.port, "127.0.0.1");
  await until(() => fuzzer.got.some((g) => {
    const d = parseUdpDatagram(g.data);
    return !(d instanceof UdpHeaderError) && new TextDecoder().decode(d.data) === "echo:after the fuzz";
  }), 3000);
  conn.socket.end();
  const r = await run([PYTHON, "-c", PYSOCKS_UDP, "127.0.0.1", String(proxy.port), "127.0.0.1", String(echo.sock.port), "good client"]);
  expect(JSON.parse(r.stdout).data).toBe("echo:good client");
}, 60_000);
