/**
 * egressd's SOCKS5 proxy against Debian's microsocks and dante (danted), and against a C relay
 * that moves bytes with splice(2) (bench/splice-relay.c, built here with `cc -O2`: the physical
 * limit), all started here on loopback in the same run and driven by the same load generator.
 * On demand, not in CI:
 *
 *   bench/run.sh [--seconds 5] [--reps 2] [--rounds 8] [--conns 10000] [--dante-conns 2000]
 *                [--only throughput,connrate|rate,latency,rss,http]
 *                [--peers egressd,microsocks,dante,c-splice] [--no-ceiling]
 *
 * Every figure is printed for every proxy with its ratio to microsocks and to the C relay:
 * single-stream and 4-stream upload throughput with the proxy's CPU time per GB, connections per
 * second (CONNECT, 1-byte echo, close) with the proxy's CPU time per connection (user + system,
 * all threads and processes, from /proc/<pid>/stat), 64-byte ping-pong latency (each proxy's
 * measurement paired with a direct one taken just before it; overhead = proxy p50 - that direct
 * p50), and memory per idle proxied connection at ~10k connections. A closing table repeats them
 * all, and the issue's targets for egressd are marked PASS or MISS.
 *
 * Also measures egressd's HTTP CONNECT against its SOCKS5 on the same port (`--only http`):
 * single-stream throughput and connection rate, with the HTTP/SOCKS5 ratios (issue 13: both within
 * 10%).
 *
 * The connection-rate and latency tests also run bench/bare-forwarder.ts ("bun-bare"), the least
 * a SOCKS5 proxy on Bun's sockets can do, as the ceiling of what egressd's own code could reach
 * (`--no-ceiling` skips it; it has no backpressure, so it sits out the throughput test).
 *
 * The proxies, the targets (bench/targets.ts) and this load generator are separate processes; on a
 * 2-core machine they compete for CPU, so absolute numbers are modest and noisy. Ratios are what
 * the targets are about. Each test alternates the proxies' order `--reps` times and keeps the best
 * run of each, which favours none.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Conn, direct, viaHttpConnect, viaSocks, waitForPort } from "./client.ts";

const ROOT = join(import.meta.dir, "..");
const BUN = join(ROOT, "node_modules", ".bin", "bun");

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
const SECONDS = Number(flag("seconds", "5"));
const REPS = Number(flag("reps", "2"));
const ROUNDS = Number(flag("rounds", "8"));
/** Tests to run; "rate" is an alias of "connrate". */
const ONLY = new Set(flag("only", "throughput,connrate,latency,rss,http").split(",").map((t) => (t === "rate" ? "connrate" : t)));
/** The proxies to compare (bun-bare is added by the connrate and latency tests unless --no-ceiling). */
const PEERS = new Set(flag("peers", "egressd,microsocks,dante,c-splice").split(","));
for (const t of ONLY) if (!["throughput", "connrate", "latency", "rss", "http"].includes(t)) throw new Error(`--only: unknown test "${t}" (throughput, connrate or rate, latency, rss, http)`);
for (const p of PEERS) if (!["egressd", "microsocks", "dante", "c-splice"].includes(p)) throw new Error(`--peers: unknown proxy "${p}" (egressd, microsocks, dante, c-splice)`);
const CEILING = !process.argv.includes("--no-ceiling");

type Name = "egressd" | "microsocks" | "dante" | "bun-bare" | "c-splice";

interface Proxy {
  readonly name: Name;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

const children: { kill(sig?: number | NodeJS.Signals): void; exited: Promise<number> }[] = [];
async function stopAll(): Promise<void> {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
  rmSync(WORK, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void stopAll().then(() => process.exit(130)));

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** This run's scratch directory: dante's config and log, the C relay's binary. */
const WORK = mkdtempSync(join(tmpdir(), "egressd-bench-"));

/** A minimal danted.conf: loopback in and out, no auth, CONNECT from 127.0.0.0/8, one log line per connection. */
function danteConfig(port: number): string {
  const file = join(WORK, "danted.conf");
  writeFileSync(
    file,
    [
      `logoutput: ${join(WORK, "danted.log")}`,
      `internal: 127.0.0.1 port = ${port}`,
      "external: 127.0.0.1",
      "socksmethod: none",
      "clientmethod: none",
      "user.privileged: root",
      "user.unprivileged: nobody",
      "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }",
      "socks pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  command: connect\n  log: connect\n}",
      "",
    ].join("\n"),
  );
  return file;
}

/** Builds bench/splice-relay.c with the system compiler into the scratch directory. */
function buildSpliceRelay(): string {
  const out = join(WORK, "splice-relay");
  const cc = Bun.spawnSync(["cc", "-O2", "-pthread", "-o", out, join(import.meta.dir, "splice-relay.c")], { stderr: "pipe" });
  if (cc.exitCode !== 0) throw new Error(`cc failed to build bench/splice-relay.c:\n${cc.stderr.toString()}`);
  return out;
}

async function startProxy(name: Name): Promise<Proxy> {
  const port = freePort();
  const argv = {
    egressd: () => [BUN, join(ROOT, "main.ts"), "proxy", "--listen", `127.0.0.1:${port}`, "--allow-destination", "127.0.0.0/8"],
    microsocks: () => ["microsocks", "-i", "127.0.0.1", "-p", String(port)],
    // In the foreground (no -D): the mother process is ours, its children die with it.
    dante: () => ["danted", "-f", danteConfig(port), "-p", join(WORK, "danted.pid")],
    "bun-bare": () => [BUN, join(import.meta.dir, "bare-forwarder.ts"), String(port)],
    "c-splice": () => [buildSpliceRelay(), String(port)],
  }[name]();
  // egressd, microsocks and dante log one line per connection (egressd at its default info level);
  // to a file, not a pipe we would have to drain. bun-bare and the C relay log nothing.
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: Bun.file(join(WORK, `${name}.log`)) });
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

/** `pid` and every live descendant (dante is a tree of processes: negotiate, request and io children). */
function processTree(pid: number): number[] {
  const parent = new Map<number, number[]>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = readFileSync(`/proc/${e}/stat`, "utf8");
      const ppid = Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(ppid, [...(parent.get(ppid) ?? []), Number(e)]);
    } catch {
      // exited while we looked
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(parent.get(out[i]!) ?? []));
  return out;
}

/**
 * Memory of `pid` and its descendants, KiB: the sum of their PSS (proportional set size, from
 * smaps_rollup), so that pages dante's processes share are counted once; for a single process
 * its change is the change of VmRSS.
 */
function rssKiB(pid: number): number {
  let kib = 0;
  for (const p of processTree(pid)) {
    try {
      kib += Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, "utf8"))?.[1] ?? 0);
    } catch {
      // exited while we looked
    }
  }
  return kib;
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ; 100 on Linux). */
const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/**
 * CPU time (user + system, all threads) so far of a process and its live descendants, plus what
 * its reaped children used, in microseconds.
 */
function cpuUs(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      // Fields after the parenthesised command name; utime, stime, cutime, cstime are fields 14-17.
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]) + (p === pid ? Number(f[13]) + Number(f[14]) : 0);
    } catch {
      // exited while we looked
    }
  }
  return (ticks * 1e6) / CLK_TCK;
}

function fdLimit(): number {
  return Number(/Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"))![1]);
}

interface TputRun {
  /** MB/s (10^6 bytes). */
  readonly mbps: number;
  /** The proxy's CPU time per GB (10^9 bytes) moved, seconds; NaN without a proxy. */
  readonly cpuSecPerGB: number;
}

/** Upload for `seconds` over `streams` connections, through the proxy process `pid` (0: none). */
async function throughput(open: () => Promise<Conn>, streams: number, seconds: number, pid = 0): Promise<TputRun> {
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
  const sent0 = sent;
  const cpu0 = pid ? cpuUs(pid) : 0;
  await Bun.sleep(seconds * 1000);
  running = false;
  const bytes = sent - sent0;
  const cpu = pid ? cpuUs(pid) - cpu0 : NaN;
  const mbps = bytes / ((performance.now() - t0) / 1000) / 1e6;
  for (const c of conns) c.socket.terminate();
  return { mbps, cpuSecPerGB: cpu / 1e6 / (bytes / 1e9) };
}

interface RateRun {
  readonly rate: number;
  /** The proxy's CPU time per connection in this run, microseconds. */
  readonly cpuUsPerConn: number;
}

/** CONNECT + 1-byte echo + close, `workers` at a time, for `seconds`. */
async function connRate(proxy: Proxy, echoPort: number, workers: number, seconds: number, open: (proxyPort: number, targetPort: number) => Promise<Conn> = viaSocks): Promise<RateRun> {
  const proxyPort = proxy.port;
  const cpu0 = cpuUs(proxy.pid);
  let done = 0;
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < until) {
        try {
          const c = await open(proxyPort, echoPort);
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
  if (errors > 0) console.log(`    (${proxy.name}: ${errors} connection errors)`);
  const rate = done / ((performance.now() - t0) / 1000);
  return { rate, cpuUsPerConn: done > 0 ? (cpuUs(proxy.pid) - cpu0) / done : NaN };
}

/** Sequential 64-byte round trips; returns sorted RTTs in microseconds. */
async function pingPong(conn: Conn, n: number): Promise<number[]> {
  const msg = new Uint8Array(64).fill(0x70);
  const rtts: number[] = [];
  for (let i = -200; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      let got = 0;
      conn.onData = (d) => {
        got += d.length;
        if (got >= 64) resolve();
      };
      conn.socket.write(msg);
    });
    if (i >= 0) rtts.push((performance.now() - t0) * 1000); // the first 200 warm up
  }
  conn.socket.end();
  return rtts.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const median = (xs: number[]) => pct([...xs].sort((a, b) => a - b), 50);

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

const fmt = (x: number) => (!Number.isFinite(x) ? "-" : Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(Math.abs(x) >= 10 ? 1 : 2));
const ratio = (x: number, ref: number | undefined) => (ref === undefined || !Number.isFinite(x) || !Number.isFinite(ref) || ref === 0 ? "-" : `${(x / ref).toFixed(2)}x`);

/** Every figure of the run, for the closing table. */
const summary: { title: string; unit: string; values: Record<string, number> }[] = [];

/** Prints one figure for every proxy that ran it, with its ratios to microsocks and to the C relay (the limit). */
function figure(title: string, unit: string, values: Record<string, number>, note = ""): void {
  summary.push({ title, unit, values });
  console.log(`  ${title} (${unit})${note ? ` ${note}` : ""}`);
  for (const [name, v] of Object.entries(values)) {
    console.log(`    ${name.padEnd(11)} ${fmt(v).padStart(9)}   ${ratio(v, values.microsocks).padStart(7)} microsocks   ${ratio(v, values["c-splice"]).padStart(7)} c-splice`);
  }
}

function verdict(label: string, ok: boolean | undefined): void {
  if (ok !== undefined) console.log(`  target: ${label}${ok ? "  PASS" : "  MISS"}`);
}

/** Runs `run` for every proxy `reps` times, alternating the order, and keeps each one's best run by `score`. */
async function best<T>(reps: number, proxies: Proxy[], run: (p: Proxy) => Promise<T>, score: (t: T) => number): Promise<Record<string, T>> {
  const out: Record<string, T> = {};
  for (let r = 0; r < reps; r++) {
    for (const p of r % 2 === 0 ? proxies : [...proxies].reverse()) {
      const v = await run(p);
      if (out[p.name] === undefined || score(v) > score(out[p.name]!)) out[p.name] = v;
    }
  }
  return out;
}

const pick = <T>(runs: Record<string, T>, f: (t: T) => number): Record<string, number> => Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, f(v)]));
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

async function main(): Promise<void> {
  const targets = await startTargets();
  const order: Name[] = ["egressd", "microsocks", "dante", "c-splice"];
  const peers: Proxy[] = [];
  for (const name of order) if (PEERS.has(name)) peers.push(await startProxy(name));
  const egressd = peers.find((p) => p.name === "egressd");
  const bare = CEILING && (ONLY.has("connrate") || ONLY.has("latency")) ? await startProxy("bun-bare") : null;
  const withBare = bare ? [...peers, bare] : peers;
  console.log(`${peers.map((p) => p.name).join(", ")}${bare ? " and bun-bare" : ""} on loopback; ${navigator.hardwareConcurrency} CPUs, bun ${Bun.version}, ${SECONDS}s runs, best of ${REPS}; load average ${loadavg()}`);

  if (ONLY.has("throughput")) {
    // bun-bare has no backpressure: it would buffer without bound, so it sits out.
    console.log("throughput (upload into a discard server; best run of each)");
    const one = await best(REPS, peers, (p) => throughput(() => viaSocks(p.port, targets.discard), 1, SECONDS, p.pid), (t) => t.mbps);
    figure("1-stream upload", "MB/s", pick(one, (t) => t.mbps));
    figure("proxy CPU per GB, 1 stream", "s/GB, lower is better", pick(one, (t) => t.cpuSecPerGB));
    const four = await best(REPS, peers, (p) => throughput(() => viaSocks(p.port, targets.discard), 4, SECONDS, p.pid), (t) => t.mbps);
    figure("4-stream upload", "MB/s", pick(four, (t) => t.mbps));
    figure("proxy CPU per GB, 4 streams", "s/GB, lower is better", pick(four, (t) => t.cpuSecPerGB));
    const d = await throughput(() => direct(targets.discard), 1, SECONDS);
    console.log(`  (direct, no proxy: 1 stream ${fmt(d.mbps)} MB/s)`);
    if (one.egressd && one["c-splice"]) verdict("egressd 1 stream >= 0.8x c-splice", one.egressd.mbps >= 0.8 * one["c-splice"].mbps);
  }

  if (ONLY.has("connrate")) {
    console.log("connection rate (CONNECT + 1-byte echo + close, 16 at a time; best run of each)");
    const runs = await best(REPS, withBare, (p) => connRate(p, targets.echo, 16, SECONDS), (r) => r.rate);
    figure("connections/s", "conn/s", pick(runs, (r) => r.rate));
    figure("proxy CPU per connection", "us, user + system, all threads, lower is better", pick(runs, (r) => r.cpuUsPerConn));
    if (runs.egressd && runs.microsocks) verdict("egressd >= 1.0x microsocks", runs.egressd.rate >= runs.microsocks.rate);
    if (bare && runs.microsocks) console.log(`  ceiling: bun-bare/microsocks ${ratio(runs["bun-bare"]!.rate, runs.microsocks.rate)} (no policy, logging or counters)`);
  }

  if (ONLY.has("http") && egressd) {
    // The same egressd process, the same targets: SOCKS5 CONNECT against HTTP CONNECT on one port.
    console.log("HTTP CONNECT against SOCKS5 on the same egressd port (issue 13 target: both within 10%)");
    const modes = [
      { name: "socks5", open: viaSocks },
      { name: "http_connect", open: viaHttpConnect },
    ];
    const tput: Record<string, number> = {};
    const rate: Record<string, RateRun> = {};
    for (let r = 0; r < REPS; r++) {
      for (const m of r % 2 === 0 ? modes : [...modes].reverse()) {
        tput[m.name] = Math.max(tput[m.name] ?? 0, (await throughput(() => m.open(egressd.port, targets.discard), 1, SECONDS)).mbps);
        const run = await connRate(egressd, targets.echo, 16, SECONDS, m.open);
        if (run.rate > (rate[m.name]?.rate ?? 0)) rate[m.name] = run;
      }
    }
    const t = tput.http_connect! / tput.socks5!;
    const c = rate.http_connect!.rate / rate.socks5!.rate;
    console.log(`  1 stream       socks5 ${fmt(tput.socks5!).padStart(8)} MB/s    http_connect ${fmt(tput.http_connect!).padStart(8)} MB/s    ratio ${t.toFixed(2)}x  target >= 0.9${t >= 0.9 ? "  PASS" : "  MISS"}`);
    console.log(`  connections/s  socks5 ${fmt(rate.socks5!.rate).padStart(8)}         http_connect ${fmt(rate.http_connect!.rate).padStart(8)}         ratio ${c.toFixed(2)}x  target >= 0.9${c >= 0.9 ? "  PASS" : "  MISS"}`);
    console.log(`  proxy CPU per connection: socks5 ${fmt(rate.socks5!.cpuUsPerConn)} us, http_connect ${fmt(rate.http_connect!.cpuUsPerConn)} us`);
  }

  if (ONLY.has("latency")) {
    const N = 2500;
    console.log(`64-byte ping-pong latency (microseconds; ${ROUNDS} rounds of ${N} round trips, order alternating)`);
    // The direct p50 of this machine drifts (11 to 80 us within a session), so every proxy's
    // measurement is paired with a direct one taken right before it; overhead = proxy p50 - that
    // direct p50. Medians over rounds.
    const p50: Record<string, number[]> = { direct: [] };
    const p99: Record<string, number[]> = { direct: [] };
    const over: Record<string, number[]> = {};
    for (const p of withBare) [p50[p.name], p99[p.name], over[p.name]] = [[], [], []];
    for (let r = 0; r < ROUNDS; r++) {
      for (const p of r % 2 === 0 ? withBare : [...withBare].reverse()) {
        const base = await pingPong(await direct(targets.echo), N);
        p50.direct!.push(pct(base, 50));
        p99.direct!.push(pct(base, 99));
        const x = await pingPong(await viaSocks(p.port, targets.echo), N);
        p50[p.name]!.push(pct(x, 50));
        p99[p.name]!.push(pct(x, 99));
        over[p.name]!.push(pct(x, 50) - pct(base, 50));
      }
    }
    console.log(`  ${"direct".padEnd(11)} p50 ${fmt(median(p50.direct!))} p99 ${fmt(median(p99.direct!))}  (medians over every baseline; per baseline: ${p50.direct!.map(fmt).join(" ")})`);
    for (const p of withBare) {
      console.log(`  ${p.name.padEnd(11)} p50 ${fmt(median(p50[p.name]!))} p99 ${fmt(median(p99[p.name]!))}  overhead p50 per round: ${over[p.name]!.map(fmt).join(" ")}`);
    }
    figure("p50 latency overhead over the direct p50 just before", "us, median over rounds, lower is better", Object.fromEntries(withBare.map((p) => [p.name, median(over[p.name]!)])));
    if (over.egressd && over.microsocks) {
      const wins = over.egressd.filter((x, i) => x <= over.microsocks![i]!).length;
      verdict(`egressd p50 overhead <= microsocks's (egressd lower or equal in ${wins} of ${ROUNDS} rounds)`, median(over.egressd) <= median(over.microsocks));
    }
  }

  if (ONLY.has("rss")) {
    // Each proxied connection costs the proxy two fds; stay under the fd limit of all the
    // processes (they share this one's limit), less the ~5% egressd keeps in reserve for its own
    // files (it admits fewer connections than the limit would hold, lib/proxy/fd-gate.ts).
    // bun-bare is not a product and sits out.
    const n = Math.min(Number(flag("conns", "10000")), Math.floor((fdLimit() * 0.94 - 100) / 2));
    // dante forks an io-child per 32 connections; 2,000 of them are enough for its per-connection
    // figure. The C relay holds 6 fds per connection (two sockets, two pipe pairs).
    const danteN = Math.min(n, Number(flag("dante-conns", "2000")));
    const spliceN = Math.min(n, Math.floor((fdLimit() - 100) / 6));
    console.log(`RSS per idle proxied connection at ${n} connections (dante at ${danteN}, c-splice at ${spliceN}; fd limit ${fdLimit()}; PSS summed over each proxy's processes)`);
    const r: Record<string, number> = {};
    for (const p of peers) {
      try {
        const x = await rssPerConn(p, targets.idle, p.name === "dante" ? danteN : p.name === "c-splice" ? spliceN : n);
        console.log(`  ${p.name.padEnd(11)} RSS ${(x.before / 1024).toFixed(1)} MiB -> ${(x.after / 1024).toFixed(1)} MiB`);
        r[p.name] = x.perConnBytes / 1024;
      } catch (e) {
        console.log(`  ${p.name.padEnd(11)} failed: ${(e as Error).message}`);
      }
    }
    figure("RSS per idle connection", "KiB, lower is better", r);
    if (r.egressd !== undefined) verdict("egressd <= 2 KiB per idle connection", r.egressd <= 2);
  }

  if (summary.length > 0) {
    const names = Object.keys(Object.assign({}, ...summary.map((s) => s.values)));
    console.log(`\nsummary (load average now ${loadavg()}); each cell: value (x microsocks, x c-splice)`);
    console.log(`| figure | ${names.join(" | ")} |`);
    console.log(`|---|${names.map(() => "---|").join("")}`);
    for (const s of summary) {
      const cells = names.map((n) => (s.values[n] === undefined ? "-" : `${fmt(s.values[n]!)} (${ratio(s.values[n]!, s.values.microsocks)}, ${ratio(s.values[n]!, s.values["c-splice"])})`));
      console.log(`| ${s.title}, ${s.unit.split(",")[0]} | ${cells.join(" | ")} |`);
    }
    if (PEERS.has("dante") && PEERS.has("egressd")) {
      const lower = (s: (typeof summary)[number]) => s.unit.includes("lower is better");
      const behind = summary.filter((s) => s.values.egressd !== undefined && s.values.dante !== undefined && (lower(s) ? s.values.egressd > s.values.dante : s.values.egressd < s.values.dante));
      verdict(`every figure ahead of dante${behind.length ? ` (behind on: ${behind.map((s) => s.title).join("; ")})` : ""}`, behind.length === 0);
    }
  }
  await stopAll();
}

try {
  await main();
} finally {
  await stopAll();
}
