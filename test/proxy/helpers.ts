/**
 * Helpers for the proxy's loopback tests: the proxy as a real process, targets (echo, HTTP, a
 * black hole, a DNS server), and a raw SOCKS5 client built on the wire-format encoders.
 *
 * Every process and server a helper starts is registered and torn down by {@link cleanup}, which
 * each test file calls from `afterEach`/`afterAll`, so a failing test leaves nothing running.
 * All traffic stays on 127.0.0.0/8 and ::1.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket } from "bun";
import { parseIp } from "../../lib/net/ip.ts";
import {
  AuthMethod,
  Command,
  NEED_MORE,
  Socks5ProtocolError,
  type ParseResult,
} from "../../lib/proxy/socks5.ts";
import {
  encodeAuthRequest,
  encodeGreeting,
  parseAuthReply,
  parseMethodSelection,
} from "../../lib/proxy/socks5-greeting.ts";
import {
  encodeRequest,
  parseReply,
  type ReplyMessage,
  type Socks5Host,
} from "../../lib/proxy/socks5-request.ts";

/** The repository root. */
export const ROOT = join(import.meta.dir, "..", "..");
/** The bun that runs the tests. */
export const BUN = join(ROOT, "node_modules", ".bin", "bun");
/** Debian's python3 with python3-socks (the pyenv one on PATH lacks the module). */
export const PYTHON = "/usr/bin/python3";

const cleanups: (() => void | Promise<void>)[] = [];

/** Registers a teardown step for {@link cleanup}. */
export function onCleanup(f: () => void | Promise<void>): void {
  cleanups.push(f);
}

/** Runs every registered teardown, newest first; errors are collected and rethrown after all ran. */
export async function cleanup(): Promise<void> {
  const errors: unknown[] = [];
  while (cleanups.length > 0) {
    const f = cleanups.pop()!;
    try {
      await f();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, "cleanup failed");
}

/**
 * The argv that runs `egressd proxy` from source: through main.ts once the dispatcher knows the
 * subcommand, otherwise the subcommand's own file.
 */
export function proxyArgv(): string[] {
  let main = "";
  try {
    main = readFileSync(join(ROOT, "lib", "cli", "main.ts"), "utf8");
  } catch {
    // no dispatcher yet
  }
  return main.includes("proxyCommand") ? [BUN, join(ROOT, "main.ts"), "proxy"] : [BUN, join(ROOT, "lib", "cli", "proxy.ts")];
}

/** A running `egressd proxy` process. */
export interface ProxyProcess {
  readonly proc: ReturnType<typeof Bun.spawn>;
  /** The first listener's port (on 127.0.0.1 unless `--listen` said otherwise). */
  readonly port: number;
  /** Every `host:port` from the "proxy listening" line. */
  readonly listening: readonly string[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves to the exit code. */
  stop(): Promise<number>;
}

/**
 * Spawns `egressd proxy --listen 127.0.0.1:0 <args>` (or with the `--listen` flags in `args`) and
 * waits for its "proxy listening" line. `wrap` runs it under a command that execs it, such as
 * `prlimit --nofile=256:256 --`, so that `proc.pid` is still the proxy's.
 */
export async function spawnProxy(args: string[], opts: { wrap?: readonly string[] } = {}): Promise<ProxyProcess> {
  const argv = [...(opts.wrap ?? []), ...proxyArgv(), ...(args.includes("--listen") ? [] : ["--listen", "127.0.0.1:0"]), ...args];
  const proc = Bun.spawn(argv, { cwd: ROOT, stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { ...process.env, JOURNAL_STREAM: "" } });
  let log = "";
  let exited = false;
  const stop = async () => {
    if (!exited) {
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(t);
    }
    return proc.exitCode ?? -1;
  };
  onCleanup(async () => void (await stop()));
  void proc.exited.then(() => (exited = true));
  const decoder = new TextDecoder();
  const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
  const listening = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start in 10 s:\n${log}`)), 10_000);
    (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        log += decoder.decode(value, { stream: true });
        const m = /proxy listening listen=(\S+)/.exec(log);
        if (m) {
          clearTimeout(timer);
          return resolve(m[1]!.split(","));
        }
      }
      clearTimeout(timer);
      reject(new Error(`proxy exited with ${await proc.exited} before listening:\n${log}`));
    })().catch(reject);
  });
  // Keep draining stderr so the child never blocks on a full pipe.
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      log += decoder.decode(value, { stream: true });
    }
  })();
  const port = Number(/:(\d+)$/.exec(listening[0]!)![1]);
  return { proc, port, listening, stderr: () => log, stop };
}

/** A TCP server on 127.0.0.1 for tests. */
export interface TestServer {
  readonly port: number;
  /** Remote ports of accepted connections, in order (to check the proxy's BND.PORT). */
  readonly peers: number[];
  stop(): void;
}

/** An echo server on 127.0.0.1:0. */
export function echoServer(): TestServer {
  const peers: number[] = [];
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        peers.push(s.remotePort);
      },
      data(s, d) {
        s.write(d);
      },
      end(s) {
        s.end();
      },
    },
  });
  const stop = () => l.stop(true);
  onCleanup(stop);
  return { port: l.port, peers, stop };
}

/** An HTTP server on 127.0.0.1:0 answering every request with `body`. */
export function httpServer(body: string): TestServer {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(body) });
  const stop = () => void s.stop(true);
  onCleanup(stop);
  return { port: s.port!, peers: [], stop };
}

/**
 * A port on 127.0.0.1 where connects hang in SYN-SENT: a listener whose accept queue is full
 * (backlog 0, connections never accepted), so the kernel drops further SYNs (Linux's
 * tcp_conn_request does, whatever the sysctls). A probe connect checks that it does here: a port
 * that answers is an error saying so, rather than a 502 where a 504 was meant.
 */
export async function blackhole(): Promise<number> {
  const script = `
import select, socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
port = s.getsockname()[1]
held = []
def syn():
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", port))
    except BlockingIOError: pass
    held.append(c)
    return c
for i in range(3): syn()
time.sleep(0.2)
probe = syn()
if select.select([], [probe], [], 0.5)[1]:
    err = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    print("answered", "reset" if err else "accepted", flush=True)
else:
    print(port, flush=True)
sys.stdin.read()
`;
  const proc = Bun.spawn([PYTHON, "-c", script], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  onCleanup(async () => {
    proc.kill();
    await proc.exited;
  });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const { value } = await reader.read();
  const line = new TextDecoder().decode(value).trim();
  if (!/^\d+$/.test(line)) {
    throw new Error(`blackhole: a connect to a listener with a full accept queue was ${line.split(" ")[1]} instead of left unanswered; this kernel does not drop such SYNs, and the 504 tests need it to`);
  }
  return Number(line);
}

/** A port on 127.0.0.1 with nothing listening (bound, then closed). */
export function closedPort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** A TCP connection with awaitable reads, for driving the proxy byte by byte. */
export class RawConn {
  #buf = new Uint8Array(0);
  #waiters: (() => void)[] = [];
  #eof = false;
  closed: Promise<void>;
  #closed!: () => void;
  /** Set when the peer reset the connection. */
  error: Error | undefined;

  private constructor(readonly socket: Socket<RawConn>) {
    this.closed = new Promise((r) => (this.#closed = r));
  }

  /** Connects to `host:port`. */
  static async connect(port: number, host = "127.0.0.1"): Promise<RawConn> {
    let conn!: RawConn;
    const socket = await Bun.connect<RawConn>({
      hostname: host,
      port,
      allowHalfOpen: true,
      socket: {
        open(s) {
          conn = new RawConn(s);
          s.data = conn;
        },
        data(s, d) {
          s.data.#push(d);
        },
        end(s) {
          s.data.#eof = true;
          s.data.#wake();
        },
        close(s, err) {
          s.data.error ??= err;
          s.data.#eof = true;
          s.data.#wake();
          s.data.#closed();
        },
      },
    });
    onCleanup(() => socket.terminate());
    return conn ?? (socket.data as RawConn);
  }

  #push(d: Uint8Array): void {
    const n = new Uint8Array(this.#buf.length + d.length);
    n.set(this.#buf);
    n.set(d, this.#buf.length);
    this.#buf = n;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Bytes received and not yet consumed. */
  get buffered(): Uint8Array {
    return this.#buf;
  }

  /** True once the peer sent a FIN or the connection closed. */
  get eof(): boolean {
    return this.#eof;
  }

  /** Writes all of `data` (test payloads are small enough for the socket buffer). */
  write(data: Uint8Array | string): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const n = this.socket.write(bytes);
    if (n !== bytes.length) throw new Error(`short write: ${n} of ${bytes.length}`);
  }

  /** Waits until `parse` yields a message (consuming it) or fails, or until EOF or `ms`. */
  async read<T>(parse: (b: Uint8Array) => ParseResult<T>, ms = 5000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = parse(this.#buf);
      if (r instanceof Socks5ProtocolError) throw r;
      if (r !== NEED_MORE) {
        this.#buf = this.#buf.slice(r.consumed);
        return r.value;
      }
      if (this.#eof) throw new Error(`connection ended with ${this.#buf.length} bytes buffered: [${Array.from(this.#buf).join(",")}]`);
      await this.#wait(deadline);
    }
  }

  /** Waits for exactly `n` bytes. */
  readBytes(n: number, ms = 5000): Promise<Uint8Array> {
    return this.read((b) => (b.length >= n ? { value: b.slice(0, n), consumed: n } : NEED_MORE), ms);
  }

  /** Waits for EOF; returns every byte received until then. */
  async readToEnd(ms = 5000): Promise<Uint8Array> {
    const deadline = Date.now() + ms;
    while (!this.#eof) await this.#wait(deadline);
    const out = this.#buf;
    this.#buf = new Uint8Array(0);
    return out;
  }

  #wait(deadline: number): Promise<void> {
    const left = deadline - Date.now();
    if (left <= 0) return Promise.reject(new Error(`timed out with ${this.#buf.length} bytes buffered`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out with ${this.#buf.length} bytes buffered`)), left);
      this.#waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Sends a FIN. */
  shutdown(): void {
    this.socket.shutdown();
  }

  /** Closes the connection. */
  end(): void {
    this.socket.end();
  }
}

/** What {@link socksConnect} got back. */
export interface SocksResult {
  readonly conn: RawConn;
  readonly reply: ReplyMessage;
}

/** Host shorthand: an IP literal, or a domain name when it is not one (or `asDomain`). */
export function host(text: string, asDomain = false): Socks5Host {
  const ip = asDomain ? null : parseIp(text);
  return ip ? { type: "ip", ip } : { type: "domain", name: text };
}

/** Performs greeting (and auth) and a request; returns the reply and the still-open connection. */
export async function socksConnect(
  proxyPort: number,
  target: Socks5Host,
  port: number,
  opts: { auth?: { username: string; password: string }; command?: number } = {},
): Promise<SocksResult> {
  const conn = await RawConn.connect(proxyPort);
  conn.write(encodeGreeting(opts.auth ? [AuthMethod.usernamePassword] : [AuthMethod.noAuth]));
  const method = await conn.read(parseMethodSelection);
  if (method === AuthMethod.noAcceptable) throw new Error("no acceptable method");
  if (opts.auth) {
    conn.write(encodeAuthRequest(opts.auth.username, opts.auth.password));
    const status = await conn.read(parseAuthReply);
    if (status !== 0) throw new Error(`auth failed with status ${status}`);
  }
  conn.write(encodeRequest(opts.command ?? Command.connect, target, port));
  const reply = await conn.read(parseReply);
  return { conn, reply };
}

/** A tiny authoritative DNS server on UDP 127.0.0.x for tunnel-mode tests. */
export interface DnsServer {
  readonly address: string;
  readonly port: number;
  /** Names asked, with their qtype (1 = A, 28 = AAAA). */
  readonly queries: { name: string; type: number }[];
  stop(): void;
}

/**
 * Starts a DNS server answering A/AAAA from `records` (name -> addresses), NXDOMAIN for other
 * names. `delayMs` per qtype delays answers; a name mapped to "drop" is never answered.
 */
export async function dnsServer(records: Record<string, string[] | "drop">, opts: { address?: string; delayMs?: Partial<Record<1 | 28, number>> } = {}): Promise<DnsServer> {
  const sock: UdpSocket = createSocket("udp4");
  const queries: { name: string; type: number }[] = [];
  let closed = false;
  sock.on("message", (msg, rinfo) => {
    // RFC 1035 §4.1: 12-byte header, then QNAME (labels), QTYPE, QCLASS.
    if (msg.length < 12) return;
    let at = 12;
    const labels: string[] = [];
    while (at < msg.length && msg[at] !== 0) {
      const len = msg[at]!;
      labels.push(msg.subarray(at + 1, at + 1 + len).toString("latin1"));
      at += 1 + len;
    }
    const qEnd = at + 5;
    if (qEnd > msg.length) return;
    const qtype = msg.readUInt16BE(at + 1);
    const name = labels.join(".").toLowerCase();
    queries.push({ name, type: qtype });
    const rec = records[name];
    if (rec === "drop") return;
    const answers = (rec ?? []).map((a) => parseIp(a)!).filter((a) => (qtype === 1 && a.family === 4) || (qtype === 28 && a.family === 6));
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // ID
    header.writeUInt16BE(0x8000 | 0x0400 | (msg.readUInt16BE(2) & 0x0100) | (rec === undefined ? 3 : 0), 2); // QR AA RD, NXDOMAIN
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    const parts: Buffer[] = [header, msg.subarray(12, qEnd)];
    for (const a of answers) {
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
      rr.writeUInt16BE(qtype, 2);
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(a.bytes.length, 10);
      parts.push(rr, Buffer.from(a.bytes));
    }
    const send = () => {
      if (!closed) sock.send(Buffer.concat(parts), rinfo.port, rinfo.address);
    };
    const delay = opts.delayMs?.[qtype as 1 | 28] ?? 0;
    if (delay > 0) setTimeout(send, delay);
    else send();
  });
  sock.on("error", (err: NodeJS.ErrnoException) => {
    // An answer sent to a resolver that had already given up comes back as ICMP port unreachable,
    // which Linux reports on this socket's next recvmsg; that is the client's business, not ours.
    if (err.code !== "ECONNREFUSED") throw err;
  });
  const address = opts.address ?? "127.0.0.1";
  await new Promise<void>((resolve) => sock.bind(0, address, resolve));
  const stop = () => {
    if (closed) return;
    closed = true; // delayed answers still pending are dropped
    sock.close();
  };
  onCleanup(stop);
  return { address, port: sock.address().port, queries, stop };
}

/** Waits until `cond()` holds, polling every 5 ms; throws after `ms`. */
export async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}
