/**
 * Issue 18's comparison of relay engines, interleaved in one run: egressd's JS relay (the
 * `egressd proxy` binary) against the splice engine that failed the gate, kept as
 * bench/splice-forwarder.ts (see bench/README.md). Both are measured on an established tunnel
 * only, where the forwarder's missing policy and logging cost nothing. On demand, not in CI:
 *
 *   node_modules/.bin/bun run build && node_modules/.bin/bun bench/relay-bench.ts [--binary dist/egressd]
 *       [--rounds 3] [--seconds 5] [--pings 2000]
 *
 * Per round, in alternating order: single-stream upload through each proxy for `--seconds` (MB/s,
 * and the proxy's CPU time, all threads, from /proc/<pid>/stat, per GB moved), and 64-byte
 * ping-pong p50 over each proxy, each right after a direct baseline (overhead = proxy - direct).
 * Reports the medians over rounds and the gate: splice >= 1.3x js throughput or <= 0.6x its CPU
 * per GB, and a latency overhead no worse.
 *
 * The load generator and targets are Python (sendall and recv_into of 1 MiB buffers run in C), so
 * that neither proxy is measured against a client slower than itself.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
const BINARY = flag("binary", join(ROOT, "dist", "egressd"));
const ROUNDS = Number(flag("rounds", "3"));
const SECONDS = Number(flag("seconds", "5"));
const PINGS = Number(flag("pings", "2000"));

/** Discard and echo servers on 127.0.0.1; prints their ports as JSON. */
const TARGETS = `
import socket, threading, json, sys
def serve(handler):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
    def loop():
        while True:
            c, _ = s.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]
def discard(c):
    buf = bytearray(1 << 20)
    while c.recv_into(buf): pass
    c.close()
def echo(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
print(json.dumps({"discard": serve(discard), "echo": serve(echo)}), flush=True)
sys.stdin.read()
`;

/** argv: mode (up|ping) proxyPort (0: direct) targetPort seconds|count. Prints one JSON line. */
const CLIENT = `
import socket, struct, sys, time, json
mode, pport, tport, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
if pport:
    s = socket.create_connection(("127.0.0.1", pport))
    s.sendall(b"\\x05\\x01\\x00"); assert s.recv(2) == b"\\x05\\x00"
    s.sendall(b"\\x05\\x01\\x00\\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", tport))
    r = b""
    while len(r) < 10: r += s.recv(10 - len(r))
    assert r[1] == 0, r
else:
    s = socket.create_connection(("127.0.0.1", tport))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "up":
    chunk = memoryview(b"a" * (1 << 20)); sent = 0
    t0 = time.perf_counter(); end = t0 + n
    while time.perf_counter() < end:
        s.sendall(chunk); sent += len(chunk)
    print(json.dumps({"bytes": sent, "seconds": time.perf_counter() - t0}), flush=True)
else:
    msg = b"p" * 64; rtts = []
    for i in range(int(n) + 200):
        t0 = time.perf_counter(); s.sendall(msg); got = 0
        while got < 64: got += len(s.recv(64 - got))
        if i >= 200: rtts.append((time.perf_counter() - t0) * 1e6)
    rtts.sort()
    print(json.dumps({"p50": rtts[len(rtts) // 2], "p99": rtts[int(len(rtts) * 0.99)]}), flush=True)
s.close()
`;

const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** CPU seconds of a whole process (all threads, user + system) so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

const children: ReturnType<typeof Bun.spawn>[] = [];

interface Proxy {
  readonly relay: "js" | "splice";
  readonly port: number;
  readonly pid: number;
}

async function startProxy(relay: Proxy["relay"]): Promise<Proxy> {
  const port = freePort();
  const argv = relay === "js" ? [BINARY, "proxy", "--listen", `127.0.0.1:${port}`, "--allow-destination", "127.0.0.0/8"] : [process.execPath, join(import.meta.dir, "splice-forwarder.ts"), String(port)];
  const proc = Bun.spawn(argv, {
    stdin: "ignore",
    stdout: "ignore",
    stderr: Bun.file(`/tmp/egressd-relay-bench-${relay}.log`),
  });
  children.push(proc);
  for (let i = 0; i < 100; i++) {
    try {
      const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      s.end();
      return { relay, port, pid: proc.pid };
    } catch {
      await Bun.sleep(50);
    }
  }
  throw new Error(`the ${relay} relay did not listen on ${port}`);
}

async function client(mode: "up" | "ping", proxyPort: number, targetPort: number, n: number): Promise<Record<string, number>> {
  const p = Bun.spawn(["python3", "-c", CLIENT, mode, String(proxyPort), String(targetPort), String(n)], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(p.stdout).text();
  if ((await p.exited) !== 0) throw new Error(`load client ${mode} failed`);
  return JSON.parse(out) as Record<string, number>;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1));

async function main(): Promise<void> {
  const targetsProc = Bun.spawn(["python3", "-c", TARGETS], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  children.push(targetsProc);
  const reader = (targetsProc.stdout as ReadableStream<Uint8Array>).getReader();
  const targets = JSON.parse(new TextDecoder().decode((await reader.read()).value)) as { discard: number; echo: number };
  const proxies = [await startProxy("js"), await startProxy("splice")];
  // Warm both up (JIT, allocator pools).
  for (const p of proxies) await client("up", p.port, targets.discard, 0.5);
  await Bun.sleep(300);
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  console.log(`js: ${BINARY} proxy; splice: bench/splice-forwarder.ts; ${navigator.hardwareConcurrency} CPUs, load ${load}; ${ROUNDS} rounds, ${SECONDS}s uploads, ${PINGS} pings`);
  const res: Record<string, { mbps: number[]; cpuPerGb: number[]; over: number[] }> = { js: { mbps: [], cpuPerGb: [], over: [] }, splice: { mbps: [], cpuPerGb: [], over: [] } };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? proxies : [...proxies].reverse();
    for (const p of order) {
      const cpu0 = cpuSeconds(p.pid);
      const up = await client("up", p.port, targets.discard, SECONDS);
      const cpu = cpuSeconds(p.pid) - cpu0;
      const mbps = up.bytes! / up.seconds! / 1e6;
      res[p.relay]!.mbps.push(mbps);
      res[p.relay]!.cpuPerGb.push(cpu / (up.bytes! / 1e9));
      console.log(`  round ${r + 1} ${p.relay.padEnd(6)} upload ${fmt(mbps)} MB/s, proxy CPU ${(cpu / (up.bytes! / 1e9)).toFixed(3)} s/GB`);
    }
    for (const p of order) {
      const d = await client("ping", 0, targets.echo, PINGS);
      const x = await client("ping", p.port, targets.echo, PINGS);
      res[p.relay]!.over.push(x.p50! - d.p50!);
      console.log(`  round ${r + 1} ${p.relay.padEnd(6)} ping p50 ${fmt(x.p50!)} us (direct ${fmt(d.p50!)} us just before): +${fmt(x.p50! - d.p50!)} us`);
    }
  }
  const js = { mbps: median(res.js!.mbps), cpu: median(res.js!.cpuPerGb), over: median(res.js!.over) };
  const sp = { mbps: median(res.splice!.mbps), cpu: median(res.splice!.cpuPerGb), over: median(res.splice!.over) };
  const tput = sp.mbps / js.mbps;
  const cpu = sp.cpu / js.cpu;
  console.log(`medians: js ${fmt(js.mbps)} MB/s ${js.cpu.toFixed(3)} s/GB +${fmt(js.over)} us; splice ${fmt(sp.mbps)} MB/s ${sp.cpu.toFixed(3)} s/GB +${fmt(sp.over)} us`);
  console.log(`splice/js: throughput ${tput.toFixed(2)}x (gate >= 1.3x), CPU per GB ${cpu.toFixed(2)}x (gate <= 0.6x), p50 overhead ${fmt(sp.over - js.over)} us (gate <= 0)`);
  const pass = (tput >= 1.3 || cpu <= 0.6) && sp.over <= js.over;
  console.log(`gate (bench part): ${pass ? "PASS" : "FAIL"}; load after: ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
}

try {
  await main();
} finally {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
}
