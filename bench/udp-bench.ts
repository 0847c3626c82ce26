/**
 * SOCKS5 UDP ASSOCIATE through `egressd proxy` against the same UDP echo reached directly, in one
 * run, on loopback. On demand, not in CI:
 *
 *   node_modules/.bin/bun bench/udp-bench.ts [--rounds 6] [--count 3000] [--seconds 3] [--window 32]
 *
 * - round trip: `--rounds` rounds; each sends `--count` 64-byte datagrams one at a time (send,
 *   wait for the echo, next), directly and through egressd (order alternating), and takes p50 and
 *   p99 of each; the overhead is egressd's p50 minus the direct p50 of the same round. Reported:
 *   the medians over rounds.
 * - datagrams per second: `--window` 64-byte datagrams in flight, each echo answered by the next
 *   datagram, for `--seconds`, directly and through egressd; echoes received per second, and how
 *   many of the datagrams sent never came back (UDP drops when a socket buffer is full).
 *
 * The proxy, the echo target (bench/udp-echo.ts) and this load generator are three processes on a
 * machine whose cores they share; absolute figures move with the load, which is why the
 * direct path is measured in the same rounds.
 */
import { join } from "node:path";
import { parseIp } from "../lib/net/ip.ts";
import { encodeUdpDatagram, parseUdpDatagram, UdpHeaderError } from "../lib/proxy/socks5-udp.ts";
import { AuthMethod, Command, NEED_MORE, Socks5ProtocolError } from "../lib/proxy/socks5.ts";
import { encodeGreeting } from "../lib/proxy/socks5-greeting.ts";
import { encodeRequest, parseReply } from "../lib/proxy/socks5-request.ts";
import { direct, waitForPort } from "./client.ts";

const ROOT = join(import.meta.dir, "..");
const BUN = join(ROOT, "node_modules", ".bin", "bun");

function flag(name: string, dflt: string): number {
  const i = process.argv.indexOf(`--${name}`);
  return Number(i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt);
}
const ROUNDS = flag("rounds", "6");
const COUNT = flag("count", "3000");
const SECONDS = flag("seconds", "3");
const WINDOW = flag("window", "32");

const children: { kill(sig?: NodeJS.Signals): void; exited: Promise<number> }[] = [];

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text.trim();
}

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** A path to the echo: how to wrap a payload, and how to unwrap what comes back. */
interface Path {
  readonly name: "direct" | "egressd";
  readonly to: { port: number; address: string };
  wrap(payload: Uint8Array): Uint8Array;
  unwrap(datagram: Uint8Array): Uint8Array | null;
  /** Ends the association (egressd): its relay accepts one client port, so each socket gets its own. */
  close(): void;
}

/** Opens a path for one client socket. */
type PathFactory = () => Promise<Path>;

async function viaEgressd(proxyPort: number, echoPort: number): Promise<Path> {
  const conn = await direct(proxyPort);
  // Greeting and request in one write; the method selection (2 bytes) and the reply follow.
  let buf = new Uint8Array(0);
  const replied = new Promise<ReturnType<typeof parseReply>>((resolve) => {
    conn.onData = (d) => {
      const n = new Uint8Array(buf.length + d.length);
      n.set(buf);
      n.set(d, buf.length);
      buf = n;
      if (buf.length > 2) {
        const r = parseReply(buf.subarray(2));
        if (r !== NEED_MORE) resolve(r);
      }
    };
  });
  conn.socket.write(new Uint8Array([...encodeGreeting([AuthMethod.noAuth]), ...encodeRequest(Command.udpAssociate, { type: "ip", ip: parseIp("0.0.0.0")! }, 0)]));
  const r = await replied;
  if (r === NEED_MORE || r instanceof Socks5ProtocolError) throw new Error(`bad UDP ASSOCIATE reply: ${String(r)}`);
  const reply = r.value;
  if (reply.reply !== 0) throw new Error(`UDP ASSOCIATE refused: reply ${reply.reply}`);
  const dst = { host: { type: "ip" as const, ip: parseIp("127.0.0.1")! }, port: echoPort };
  return {
    name: "egressd",
    close: () => conn.socket.end(),
    to: { port: reply.port, address: "127.0.0.1" },
    wrap: (p) => encodeUdpDatagram(dst, p),
    unwrap: (d) => {
      const r = parseUdpDatagram(d);
      return r instanceof UdpHeaderError ? null : r.data;
    },
  };
}

/** One UDP socket; `onEcho` gets each unwrapped reply. */
async function socketFor(path: Path, onEcho: (payload: Uint8Array) => void) {
  return Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: "uint8array",
    socket: {
      data: (_s, d) => {
        const p = path.unwrap(d);
        if (p) onEcho(p);
      },
    },
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** `COUNT` sequential round trips; microseconds, sorted. A lost datagram is re-sent after 200 ms. */
async function roundTrips(open: PathFactory): Promise<number[]> {
  const path = await open();
  let wake: (() => void) | null = null;
  const sock = await socketFor(path, () => wake?.());
  const payload = path.wrap(new Uint8Array(64).fill(0x61));
  const out: number[] = [];
  for (let i = 0; i < COUNT; i++) {
    for (;;) {
      const t0 = performance.now();
      const got = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 200);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
        sock.send(payload, path.to.port, path.to.address);
      });
      if (got) {
        out.push((performance.now() - t0) * 1000);
        break;
      }
    }
  }
  sock.close();
  path.close();
  return out.sort((a, b) => a - b);
}

/** Echoes per second with `WINDOW` in flight; and the share of datagrams that never came back. */
async function rate(open: PathFactory): Promise<{ perSecond: number; lost: number }> {
  const path = await open();
  let received = 0;
  let sent = 0;
  let running = true;
  const payload = path.wrap(new Uint8Array(64).fill(0x62));
  const sock = await socketFor(path, () => {
    received++;
    if (running) {
      sent++;
      sock.send(payload, path.to.port, path.to.address);
    }
  });
  const start = performance.now();
  for (let i = 0; i < WINDOW; i++) {
    sent++;
    sock.send(payload, path.to.port, path.to.address);
  }
  // Refill the window when datagrams were lost, so that a drop does not stall the run.
  let lastReceived = 0;
  while (performance.now() - start < SECONDS * 1000) {
    await Bun.sleep(50);
    if (received === lastReceived) for (let i = 0; i < WINDOW; i++, sent++) sock.send(payload, path.to.port, path.to.address);
    lastReceived = received;
  }
  running = false;
  const elapsed = (performance.now() - start) / 1000;
  const counted = received;
  await Bun.sleep(200); // the last echoes in flight
  sock.close();
  path.close();
  return { perSecond: counted / elapsed, lost: Math.max(0, sent - received) / sent };
}

async function main(): Promise<void> {
  const echo = Bun.spawn([BUN, join(import.meta.dir, "udp-echo.ts")], { stdout: "pipe", stderr: "inherit" });
  children.push(echo);
  const echoPort = Number(await firstLine(echo.stdout as ReadableStream<Uint8Array>));
  const proxyPort = freePort();
  const proxy = Bun.spawn([BUN, join(ROOT, "main.ts"), "proxy", "--listen", `127.0.0.1:${proxyPort}`, "--allow-destination", "127.0.0.0/8"], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: Bun.file("/tmp/egressd-udp-bench.log"),
  });
  children.push(proxy);
  await waitForPort(proxyPort);
  const paths: Record<Path["name"], PathFactory> = {
    direct: async () => ({ name: "direct", to: { port: echoPort, address: "127.0.0.1" }, wrap: (p) => p, unwrap: (d) => d, close: () => undefined }),
    egressd: () => viaEgressd(proxyPort, echoPort),
  };

  const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
  console.log(`UDP echo through egressd's UDP ASSOCIATE vs direct, 64-byte datagrams, loopback (load average ${load})`);
  const rows: Record<string, { p50: number[]; p99: number[] }> = { direct: { p50: [], p99: [] }, egressd: { p50: [], p99: [] } };
  const overhead: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order: Path["name"][] = r % 2 === 0 ? ["direct", "egressd"] : ["egressd", "direct"];
    const p50: Record<string, number> = {};
    for (const name of order) {
      const t = await roundTrips(paths[name]);
      p50[name] = percentile(t, 50);
      rows[name]!.p50.push(percentile(t, 50));
      rows[name]!.p99.push(percentile(t, 99));
    }
    overhead.push(p50.egressd! - p50.direct!);
    console.log(`  round ${r + 1}: direct p50 ${p50.direct!.toFixed(1)} us, egressd p50 ${p50.egressd!.toFixed(1)} us`);
  }
  const rates: Record<string, { perSecond: number; lost: number }> = {};
  for (const name of ["direct", "egressd"] as const) rates[name] = await rate(paths[name]);

  const us = (n: number) => `${n.toFixed(1)} us`;
  console.log("");
  console.log(`| path | round trip p50 | round trip p99 | datagrams/s (window ${WINDOW}) | lost |`);
  console.log("|---|---|---|---|---|");
  for (const name of ["direct", "egressd"]) {
    const r = rows[name]!;
    console.log(`| ${name} | ${us(median(r.p50))} | ${us(median(r.p99))} | ${Math.round(rates[name]!.perSecond)} | ${(rates[name]!.lost * 100).toFixed(2)}% |`);
  }
  console.log(`\negressd p50 overhead over direct: +${us(median(overhead))} (median of ${ROUNDS} rounds); rate ${(rates.egressd!.perSecond / rates.direct!.perSecond).toFixed(2)}x direct`);
}

try {
  await main();
} finally {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
}
