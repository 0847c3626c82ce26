/**
 * egressd's SOCKS5 proxy against Debian's microsocks, both started here on loopback in the same
 * run, driven by the same load generator. On demand, not in CI:
 *
 *   bench/run.sh [--seconds 5] [--reps 2] [--conns 9900] [--only throughput,connrate,latency,rss]
 *
 * Measures single-stream and 4-stream upload throughput, connections per second (CONNECT, 1-byte
 * echo, close), 64-byte ping-pong latency (p50/p99, and the overhead over a direct connection),
 * and RSS per idle proxied connection at ~10k connections; prints absolute figures and the
 * egressd/microsocks ratios against the targets.
 *
 * The proxies, the targets (bench/targets.ts) and this load generator are three processes; on a
 * 2-core machine they compete for CPU, so absolute numbers are modest and noisy. Ratios are what
 * the targets are about. Each test alternates the two proxies `--reps` times and keeps the best
 * run of each, which favours neither.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Conn, direct, viaSocks, waitForPort } from "./client.ts";

const ROOT = join(import.meta.dir, "..");
const BUN = join(ROOT, "node_modules", ".bin", "bun");

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
const SECONDS = Number(flag("seconds", "5"));
const REPS = Number(flag("reps", "2"));
const ONLY = new Set(flag("only", "throughput,connrate,latency,rss").split(","));

interface Proxy {
  readonly name: "egressd" | "microsocks";
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

const children: { kill(sig?: number | NodeJS.Signals): void; exited: Promise<number> }[] = [];
async function stopAll(): Promise<void> {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
}
process.on("SIGINT", () => void stopAll().then(() => process.exit(130)));

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}


async function startProxy(name: Proxy["name"]): Promise<Proxy> {
  const port = freePort();
  const argv =
    name === "egressd"
      ? [BUN, join(ROOT, "main.ts"), "proxy", "--listen", `127.0.0.1:${port}`, "--allow-destination", "127.0.0.0/8"]
      : ["microsocks", "-i", "127.0.0.1", "-p", String(port)];
  // Both log one line per connection (egressd at its default info level); to a file, not a pipe
  // we would have to drain.
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: Bun.file(`/tmp/egressd-bench-${name}.log`) });
  children.push(proc);
  await waitForPort(port);
  return { name, port, pid: proc.pid, stop: async () => { proc.kill("SIGTERM"); await proc.exited; } };
}

async function startTargets(): Promise<{ echo: number; discard: number; idle: number; pid: number }> {
  const proc = Bun.spawn([BUN, join(import.meta.dir, "targets.ts")], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  children.push(proc);
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const { value } = await reader.read();
  return { ...JSON.parse(new TextDecoder().decode(value)), pid: proc.pid };
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
}

function fdLimit(): number {
  return Number(/Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"))![1]);
}

/** Upload for `seconds` over `streams` connections; returns MB/s (10^6 bytes). */
async function throughput(open: () => Promise<Conn>, streams: number, seconds: number): Promise<number> {
  const chunk = new Uint8Array(1 << 20).fill(0x61);
  const conns = await Promise.all(Array.from({ length: streams }, open));
  let sent = 0;
  let running = true;
  for (const c of conns) {
    let at = 0;
    const pump = () => {
      while (running) {
        const n = c.socket.write(chunk.subarray(at));
        if (n <= 0) return;
        sent += n;
        at = (at + n) % chunk.length;
        if (at !== 0) return; // partial write: wait for drain
      }
    };
    c.onDrain = pump;
    pump();
  }
  const t0 = performance.now();
  await Bun.sleep(seconds * 1000);
  running = false;
  const mb = sent / ((performance.now() - t0) / 1000) / 1e6;
  for (const c of conns) c.socket.terminate();
  return mb;
}

/** CONNECT + 1-byte echo + close, `workers` at a time, for `seconds`; returns connections/s. */
async function connRate(proxyPort: number, echoPort: number, workers: number, seconds: number): Promise<number> {
  let done = 0;
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < until) {
        try {
          const c = await viaSocks(proxyPort, echoPort);
          await new Promise<void>((resolve) => {
            c.onData = () => resolve();
            c.socket.write(Uint8Array.of(0x2a));
          });
          c.socket.end();
          done++;
        } catch {
          errors++;
        }
      }
    }),
  );
  if (errors > 0) console.log(`    (${errors} connection errors)`);
  return done / ((performance.now() - t0) / 1000);
}

/** Sequential 64-byte round trips; returns sorted RTTs in microseconds. */
async function pingPong(conn: Conn, n: number): Promise<number[]> {
  const msg = new Uint8Array(64).fill(0x70);
  const rtts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let got = 0;
      conn.onData = (d) => {
        got += d.length;
        if (got >= 64) resolve();
      };
      conn.socket.write(msg);
    });
    rtts.push((performance.now() - t0) * 1000);
  }
  conn.socket.end();
  return rtts.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** Opens `n` idle proxied connections (each proven with a 1-byte echo); returns KiB of RSS per connection. */
async function rssPerConn(proxy: Proxy, idlePort: number, n: number): Promise<{ perConnBytes: number; before: number; after: number }> {
  // Warm up first (code paths, allocator pools) so the baseline is not a cold process.
  for (const c of await Promise.all(Array.from({ length: 50 }, () => viaSocks(proxy.port, idlePort)))) c.socket.end();
  await Bun.sleep(1000);
  const before = rssKiB(proxy.pid);
  const conns: Conn[] = [];
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, async () => {
        const c = await viaSocks(proxy.port, idlePort);
        await new Promise<void>((resolve) => {
          c.onData = () => resolve();
          c.socket.write(Uint8Array.of(1));
        });
        return c;
      }),
    );
    conns.push(...batch);
  }
  await Bun.sleep(3000);
  const after = rssKiB(proxy.pid);
  for (const c of conns) c.socket.end();
  await Promise.all(conns.map((c) => c.closed));
  await Bun.sleep(500);
  return { perConnBytes: ((after - before) * 1024) / n, before, after };
}

function row(label: string, e: number, m: number, unit: string, target: string, ok: boolean): void {
  const ratio = m === 0 ? Infinity : e / m;
  console.log(`  ${label.padEnd(28)} egressd ${fmt(e).padStart(10)} ${unit.padEnd(6)} microsocks ${fmt(m).padStart(10)} ${unit.padEnd(6)} ratio ${ratio.toFixed(2).padStart(6)}x  ${target}${ok ? "  PASS" : "  MISS"}`);
}
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

async function best(reps: number, run: (p: Proxy) => Promise<number>, proxies: Proxy[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let r = 0; r < reps; r++) {
    for (const p of r % 2 === 0 ? proxies : [...proxies].reverse()) {
      const v = await run(p);
      out[p.name] = Math.max(out[p.name] ?? 0, v);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const targets = await startTargets();
  const egressd = await startProxy("egressd");
  const microsocks = await startProxy("microsocks");
  const proxies = [egressd, microsocks];
  console.log(`egressd proxy vs microsocks (Debian 1.0.3) on loopback; ${navigator.hardwareConcurrency} CPUs, bun ${Bun.version}, ${SECONDS}s runs, best of ${REPS}`);

  if (ONLY.has("throughput")) {
    console.log("throughput (upload, MB/s)");
    const one = await best(REPS, (p) => throughput(() => viaSocks(p.port, targets.discard), 1, SECONDS), proxies);
    row("1 stream", one.egressd!, one.microsocks!, "MB/s", "target >= 5x", one.egressd! >= 5 * one.microsocks!);
    const four = await best(REPS, (p) => throughput(() => viaSocks(p.port, targets.discard), 4, SECONDS), proxies);
    row("4 streams", four.egressd!, four.microsocks!, "MB/s", "(no target)", true);
    const d = await throughput(() => direct(targets.discard), 1, SECONDS);
    console.log(`  (direct, no proxy: 1 stream ${fmt(d)} MB/s)`);
  }

  if (ONLY.has("connrate")) {
    console.log("connection rate (CONNECT + 1-byte echo + close, 16 at a time)");
    const r = await best(REPS, (p) => connRate(p.port, targets.echo, 16, SECONDS), proxies);
    row("connections/s", r.egressd!, r.microsocks!, "conn/s", "target >= 1.5x", r.egressd! >= 1.5 * r.microsocks!);
  }

  if (ONLY.has("latency")) {
    console.log("64-byte ping-pong latency (microseconds, 20000 round trips each)");
    const N = 20_000;
    const base = await pingPong(await direct(targets.echo), N);
    const e = await pingPong(await viaSocks(egressd.port, targets.echo), N);
    const m = await pingPong(await viaSocks(microsocks.port, targets.echo), N);
    const e2 = await pingPong(await viaSocks(egressd.port, targets.echo), N);
    const m2 = await pingPong(await viaSocks(microsocks.port, targets.echo), N);
    const [ep, mp] = [pct(e, 50) <= pct(e2, 50) ? e : e2, pct(m, 50) <= pct(m2, 50) ? m : m2];
    console.log(`  direct      p50 ${fmt(pct(base, 50))} p99 ${fmt(pct(base, 99))}`);
    console.log(`  egressd     p50 ${fmt(pct(ep, 50))} p99 ${fmt(pct(ep, 99))}  overhead p50 ${fmt(pct(ep, 50) - pct(base, 50))}`);
    console.log(`  microsocks  p50 ${fmt(pct(mp, 50))} p99 ${fmt(pct(mp, 99))}  overhead p50 ${fmt(pct(mp, 50) - pct(base, 50))}`);
    const ok = pct(ep, 50) - pct(base, 50) < pct(mp, 50) - pct(base, 50);
    console.log(`  p50 overhead egressd/microsocks ${((pct(ep, 50) - pct(base, 50)) / (pct(mp, 50) - pct(base, 50))).toFixed(2)}  target < 1${ok ? "  PASS" : "  MISS"}`);
  }

  if (ONLY.has("rss")) {
    // Each proxied connection costs the proxy two fds; stay under the fd limit of all three
    // processes (they share this one's limit).
    const n = Math.min(Number(flag("conns", "10000")), Math.floor((fdLimit() - 100) / 2));
    console.log(`RSS per idle proxied connection at ${n} connections (fd limit ${fdLimit()})`);
    const r: Record<string, { perConnBytes: number; before: number; after: number }> = {};
    for (const p of proxies) r[p.name] = await rssPerConn(p, targets.idle, n);
    for (const p of proxies) console.log(`  ${p.name.padEnd(11)} RSS ${(r[p.name]!.before / 1024).toFixed(1)} MiB -> ${(r[p.name]!.after / 1024).toFixed(1)} MiB: ${(r[p.name]!.perConnBytes / 1024).toFixed(2)} KiB per connection`);
    const e = r.egressd!.perConnBytes;
    console.log(`  egressd per connection ${(e / 1024).toFixed(2)} KiB, target <= 4 KiB${e <= 4096 ? "  PASS" : "  MISS"}; microsocks/egressd ${(r.microsocks!.perConnBytes / e).toFixed(2)}x`);
  }
  await stopAll();
}

try {
  await main();
} finally {
  await stopAll();
}
