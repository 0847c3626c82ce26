/**
 * The splice relay engine (`proxy.relay: "splice"`): once a tunnel is established, both sockets'
 * fds leave Bun's event loop for a relay thread (splice-worker.ts) that moves the bytes with
 * splice(2), kernel to kernel, without a copy through JavaScript.
 *
 * The hand-off: each fd is dup(2)ed, then Bun's socket is closed with `end()`, which (with nothing
 * left to write) only removes it from Bun's epoll and closes Bun's fd: no FIN, no SO_LINGER, the
 * socket lives on in the dup. Its options (keepalive, TCP_NODELAY) belong to the socket and stay.
 * A connection is handed off only when nothing is in flight in the JS relay (no buffered bytes, no
 * FIN or close seen); otherwise it stays on the JS relay.
 *
 * Byte counters: the thread adds to a shared array, folded into the proxy's counters every second
 * and at the end, so that they are exact once a connection has closed. `lastActivity` is taken
 * from the counters moving, on the listener's sweep.
 *
 * Does not decide which connections to hand off (core.ts does) or time anything out (server.ts).
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import type { ClientLeg } from "./protocol.ts";
import type { ByteCounters, RelayOwner, RelayStats } from "./relay.ts";
import { socketFd } from "../net/sockopt.ts";
import { SpliceOp, type SpliceDone, type SpliceInit } from "./splice-ops.ts";

/** Connections one engine relays at once; beyond this, connections stay on the JS relay. */
export const SPLICE_SLOTS = 65_536;

/** Each direction's pipe, in bytes (F_SETPIPE_SZ; the kernel rounds up to a power of two pages). */
export const SPLICE_PIPE_SIZE = 1024 * 1024;

const F_DUPFD_CLOEXEC = 1030;
const O_CLOEXEC = 0o2000000;

interface Libc {
  fcntl(fd: number, cmd: number, arg: number): number;
  pipe2(fds: ReturnType<typeof ptr>, flags: number): number;
  write(fd: number, buf: ReturnType<typeof ptr>, n: number): number;
  close(fd: number): number;
}

let libc: Libc | null = null;
function loadLibc(): Libc {
  libc ??= dlopen("libc.so.6", {
    fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    pipe2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  }).symbols as unknown as Libc;
  return libc;
}

/**
 * The worker's entrypoint. In the compiled binary (scripts/build.sh names it as a second
 * entrypoint) every module is bundled into the main one at the root of Bun's embedded file
 * system, while the worker keeps its path under that root.
 */
function workerUrl(): string {
  const here = import.meta.url;
  return here.includes("/$bunfs/") ? new URL("./lib/proxy/splice-worker.ts", here.replace(/[^/]*$/, "")).href.replace("file://", "") : new URL("./splice-worker.ts", here).href;
}

/** What {@link SpliceEngine.adopt} needs of a Bun socket. */
export interface HandoffSocket {
  end(): void;
}

/** Options for {@link SpliceEngine.adopt}. */
export interface AdoptOptions {
  readonly stats: RelayStats;
  readonly counters: ByteCounters | null;
  readonly owner: RelayOwner;
  readonly clock: (() => number) | null;
  /** Bytes already relayed by the JS relay, counted in `stats` already. */
  readonly up: number;
  readonly down: number;
  /** Called before Bun's sockets are closed: the caller detaches its handlers from them. */
  readonly detach: (leg: SpliceLeg) => void;
}

/** A connection relayed by the thread; the listener still sees it as the client's leg. */
export class SpliceLeg implements ClientLeg {
  /** Bytes counted into the stats so far, each way. */
  #foldedUp = 0;
  #foldedDown = 0;
  #seen = -1;
  #last = 0;
  done = false;

  constructor(
    readonly slot: number,
    readonly engine: SpliceEngine,
    readonly options: AdoptOptions,
  ) {
    this.#last = options.clock?.() ?? 0;
  }

  get clock(): (() => number) | null {
    return this.options.clock;
  }

  get bytesClientToTarget(): number {
    return this.options.up + this.engine.counters[this.slot * 2]!;
  }

  get bytesTargetToClient(): number {
    return this.options.down + this.engine.counters[this.slot * 2 + 1]!;
  }

  /** When a byte last moved, as far as the counters show at the time of asking. */
  get lastActivity(): number {
    const total = this.bytesClientToTarget + this.bytesTargetToClient;
    if (total !== this.#seen) {
      this.#seen = total;
      this.#last = this.options.clock?.() ?? 0;
    }
    return this.#last;
  }

  /** Adds what moved since the last call to the proxy's counters. */
  fold(): void {
    const c = this.engine.counters;
    const up = c[this.slot * 2]! - this.#foldedUp;
    const down = c[this.slot * 2 + 1]! - this.#foldedDown;
    if (up === 0 && down === 0) return;
    this.#foldedUp += up;
    this.#foldedDown += down;
    const s = this.options.stats;
    s.bytesClientToTarget += up;
    s.bytesTargetToClient += down;
    const p = this.options.counters;
    if (p) {
      p.bytesClientToTarget += up;
      p.bytesTargetToClient += down;
    }
  }

  // Bun's sockets are closed: none of their events can reach here but the close of the hand-off.
  fromClient(): void {}
  clientDrained(): void {}
  clientEnded(): void {}
  clientClosed(): void {}
  fromTarget(): void {}
  targetDrained(): void {}
  targetEnded(): void {}
  targetClosed(): void {}

  /** Resets both sockets now (idle timeout, shutdown deadline). */
  abort(): void {
    if (!this.done) this.engine.command(SpliceOp.abort, this.slot, -1, -1);
  }
}

/** The relay thread and its connections; one per server, started on first use. */
export class SpliceEngine {
  readonly counters = new Float64Array(new SharedArrayBuffer(SPLICE_SLOTS * 2 * 8));
  #worker: Worker | null = null;
  #ready = false;
  #cmdFd = -1;
  #legs = new Map<number, SpliceLeg>();
  #free: number[] = [];
  #next = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #cmd = new Int32Array(4);
  /** Why the engine cannot run (no libc, no worker); null while it can. */
  broken: string | null = null;
  /** Set once the core has logged {@link broken}. */
  warned = false;

  /** Connections being relayed now. */
  get active(): number {
    return this.#legs.size;
  }

  /**
   * Moves a connection to the thread: true when done (the sockets are closed on Bun's side), false
   * when it must stay on the JS relay (no fd, no slot, the engine could not start).
   */
  adopt(client: HandoffSocket, target: HandoffSocket, options: AdoptOptions): SpliceLeg | null {
    const cfd = socketFd(client);
    const tfd = socketFd(target);
    if (cfd === null || tfd === null || this.broken !== null) return null;
    // Until the thread says it runs, connections stay on the JS relay: a thread that cannot load
    // (a binary built without its entrypoint) must not take sockets with it.
    if (!this.#start() || !this.#ready) return null;
    const slot = this.#free.pop() ?? (this.#next < SPLICE_SLOTS ? this.#next++ : -1);
    if (slot < 0) return null;
    const l = loadLibc();
    const c = l.fcntl(cfd, F_DUPFD_CLOEXEC, 0);
    const t = c < 0 ? -1 : l.fcntl(tfd, F_DUPFD_CLOEXEC, 0);
    if (c < 0 || t < 0) {
      if (c >= 0) l.close(c);
      this.#free.push(slot);
      return null;
    }
    this.counters[slot * 2] = 0;
    this.counters[slot * 2 + 1] = 0;
    const leg = new SpliceLeg(slot, this, options);
    this.#legs.set(slot, leg);
    options.detach(leg);
    client.end();
    target.end();
    this.command(SpliceOp.add, slot, c, t);
    this.#timer ??= setInterval(() => {
      for (const leg of this.#legs.values()) leg.fold();
    }, 1000);
    this.#timer.unref?.();
    this.#worker!.ref();
    return leg;
  }

  /** @internal Sends one command to the thread. */
  command(op: number, slot: number, a: number, b: number): void {
    const cmd = this.#cmd;
    cmd[0] = op;
    cmd[1] = slot;
    cmd[2] = a;
    cmd[3] = b;
    loadLibc().write(this.#cmdFd, ptr(cmd), 16); // 16 bytes < PIPE_BUF: atomic, and never short
  }

  #start(): boolean {
    if (this.#worker) return true;
    try {
      const l = loadLibc();
      const fds = new Int32Array(2);
      if (l.pipe2(ptr(fds), O_CLOEXEC) !== 0) throw new Error("pipe2 failed");
      this.#cmdFd = fds[1]!;
      const worker = new Worker(workerUrl());
      worker.onmessage = (e: MessageEvent<SpliceDone | "ready">) => {
        if (e.data === "ready") this.#ready = true;
        else this.#done(e.data);
      };
      worker.onerror = (e) => {
        this.broken = `relay thread failed: ${e.message}`;
        this.#ready = false;
      };
      const init: SpliceInit = { cmdFd: fds[0]!, counters: this.counters.buffer as SharedArrayBuffer, pipeSize: SPLICE_PIPE_SIZE };
      worker.postMessage(init);
      worker.unref();
      this.#worker = worker;
      return true;
    } catch (err) {
      this.broken = err instanceof Error ? err.message : String(err);
      return false;
    }
  }

  #done(d: SpliceDone): void {
    const leg = this.#legs.get(d.slot);
    if (!leg) return;
    leg.done = true;
    leg.fold();
    this.#legs.delete(d.slot);
    this.#free.push(d.slot);
    if (this.#legs.size === 0) this.#worker?.unref();
    const error = d.error ? Object.assign(new Error(`${d.error.side} ${d.error.code}: connection reset`), { code: d.error.code }) : undefined;
    leg.options.owner.relayClosed(leg as never, error);
  }
}
