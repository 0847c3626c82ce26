/**
 * The two byte paths of a forwarding client connection (http-forward.ts), with their backpressure
 * and counters: toward the client, and toward the upstream of the request in progress.
 *
 *   upstream ──▶ sendClient ──▶ client socket     partial write: the rest is queued, the upstream's
 *                                                 reading pauses until clientDrained
 *   client ──▶ sendUpstream ──▶ upstream socket   queued before connect or after a partial write;
 *                                                 the forwarder pauses the client's reading past
 *                                                 HIGH_WATER queued
 *
 * Every byte written either way is counted for the connection's log line, its protocol's metrics
 * and the proxy's totals. Knows nothing of HTTP: the forwarder decides what is sent and when.
 */
import { concat } from "./bytes.ts";
import type { Upstream } from "./http-exchange.ts";
import type { ClientConn, ProtocolCore } from "./protocol.ts";
import { protocolStats, type ProtocolStats } from "./stats.ts";

/** Bytes queued toward one side before the other side's reading pauses. */
export const HIGH_WATER = 64 * 1024;

/** The byte paths of one forwarding connection; `current()` is the upstream of the request in progress. */
export class ForwardPipe {
  bytesClientToTarget = 0;
  bytesTargetToClient = 0;
  /** The client socket has closed: nothing more is written to it. */
  clientGone = false;
  /** The client's reading is paused (its bytes wait in the kernel). */
  paused = false;
  /** Bytes for the client not yet written (its socket is full). */
  #toClient: Uint8Array | null = null;
  readonly #core: ProtocolCore;
  readonly #conn: ClientConn;
  readonly #counters: ProtocolStats;
  readonly #current: () => Upstream | null;

  constructor(core: ProtocolCore, options: { conn: ClientConn; current: () => Upstream | null }) {
    this.#core = core;
    this.#conn = options.conn;
    this.#current = options.current;
    this.#counters = protocolStats(core.stats, "http");
  }

  /** Something is still queued for the client. */
  get clientBacklogged(): boolean {
    return this.#toClient !== null;
  }

  /** Writes `d` to the client, or queues it behind what is queued; counts it either way. */
  sendClient(d: Uint8Array): void {
    this.#count(0, d.length);
    if (this.#toClient) {
      this.#toClient = concat(this.#toClient, d);
      return;
    }
    this.#writeClient(d);
  }

  /** The client can take more: writes what is queued. True when a backlog has now cleared. */
  drainClient(): boolean {
    const buf = this.#toClient;
    if (!buf) return false;
    this.#toClient = null;
    this.#writeClient(buf);
    return this.#toClient === null;
  }

  /** Takes what is queued for the client (to hand it to the relay), leaving nothing queued. */
  takeClientBacklog(): Uint8Array | null {
    const buf = this.#toClient;
    this.#toClient = null;
    return buf;
  }

  /** Queues `d` for `up` and writes what its socket takes (nothing before it is connected). */
  sendUpstream(up: Upstream, d: Uint8Array): void {
    up.pending = up.pending ? concat(up.pending, d) : d;
    this.flushUpstream(up);
  }

  /** Writes what is pending for `up`, as far as its socket takes it. */
  flushUpstream(up: Upstream): void {
    const socket = up.socket;
    const buf = up.pending;
    if (!socket || !buf) return;
    up.pending = null;
    const n = socket.write(buf);
    if (n > 0) {
      up.sent += n;
      this.#count(n, 0);
    }
    if (n >= 0 && n < buf.length) up.pending = buf.subarray(n); // n < 0: closing; its close event follows
  }

  pauseClient(): void {
    if (this.paused) return;
    this.paused = true;
    this.#conn.socket.pause();
  }

  resumeClient(): void {
    if (!this.paused) return;
    this.paused = false;
    this.#conn.socket.resume();
  }

  #writeClient(d: Uint8Array): void {
    if (this.clientGone) return;
    const n = this.#conn.socket.write(d);
    if (n === d.length || n < 0) return;
    this.#toClient = d.subarray(n);
    this.#current()?.socket?.pause();
  }

  #count(up: number, down: number): void {
    this.bytesClientToTarget += up;
    this.bytesTargetToClient += down;
    this.#counters.bytesClientToTarget += up;
    this.#counters.bytesTargetToClient += down;
    this.#core.stats.bytesClientToTarget += up;
    this.#core.stats.bytesTargetToClient += down;
  }
}
