/**
 * The byte pump between a client and its target, once CONNECT has succeeded.
 *
 * - Backpressure both ways: `write` on a Bun socket is unbuffered and may take only part of a
 *   chunk. The rest is kept (one buffer per direction) and the reading side is paused until the
 *   writing side drains, so memory per connection stays bounded by one read.
 * - Half-close: a FIN from one side is forwarded (`shutdown`) once everything before it has been
 *   written, and the other direction keeps flowing until it ends too.
 * - An abortive close (reset, error) on one side resets the other, so neither peer mistakes a
 *   truncated stream for a complete one. A write that fails counts as one, even when Bun then
 *   reports the socket's close as clean.
 *
 * Does not time anything out (server.ts sweeps idle relays) and never inspects the bytes.
 *
 * Bun's socket events, as relied on here (Bun 1.x with `allowHalfOpen: true`): `end` is a FIN
 * received; `shutdown()` sends a FIN and keeps reading; `end()` closes the socket at once and
 * fires `close` synchronously; after we have sent a FIN, the peer's FIN arrives as `close`
 * without an error rather than as `end`.
 */
import { concat } from "./bytes.ts";
import type { DialStats, TargetLeg } from "./dial.ts";

// Bits of Relay.#flags: a FIN received from a side, a FIN sent to it, its socket closed, reported.
const CLIENT_EOF = 1;
const TARGET_EOF = 2;
const CLIENT_SHUT = 4;
const TARGET_SHUT = 8;
const CLIENT_GONE = 16;
const TARGET_GONE = 32;
const REPORTED = 64;

/** The part of a Bun socket the relay uses. */
export interface RelaySocket {
  write(data: Uint8Array): number;
  shutdown(): void;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
}

/** Byte counters the relay adds to. */
export interface RelayStats extends DialStats {
  bytesClientToTarget: number;
  bytesTargetToClient: number;
}

/** Told when a relay is over. */
export interface RelayOwner {
  /** Called once, after both sockets have closed. `error` is the first abortive error, if any. */
  relayClosed(relay: Relay, error: Error | undefined): void;
}

/** Options for {@link Relay}. */
export interface RelayOptions {
  /** The client leg. */
  readonly client: RelaySocket;
  /** The target leg. */
  readonly target: RelaySocket;
  /** Byte counters to add to. */
  readonly stats: RelayStats;
  /** Told once both sides have closed. */
  readonly owner: RelayOwner;
  /** For idle timeouts; null (the default) skips the bookkeeping. */
  readonly clock?: (() => number) | null;
  /** A second set of byte counters to add to (the connection's protocol's). Default none. */
  readonly counters?: ByteCounters | null;
}

/** Bytes relayed each way. */
export interface ByteCounters {
  bytesClientToTarget: number;
  bytesTargetToClient: number;
}

/** One client-target pair. Its methods are called from the socket handlers of both sides. */
export class Relay implements TargetLeg {
  /** Bytes read from the client (and passed on to the target). */
  bytesClientToTarget = 0;
  /** Bytes read from the target (and passed on to the client). */
  bytesTargetToClient = 0;
  /** `clock()` at the last byte either way; only kept when a clock is given. */
  lastActivity = 0;

  #toTarget: Uint8Array | null = null;
  #toClient: Uint8Array | null = null;
  /** The end-of-stream state, as bits (CLIENT_EOF...): one slot instead of seven per idle relay. */
  #flags = 0;

  /** Whether any of `bits` is set. */
  #any(bits: number): boolean {
    return (this.#flags & bits) !== 0;
  }

  /** Whether all of `bits` are set. */
  #all(bits: number): boolean {
    return (this.#flags & bits) === bits;
  }
  #error: Error | undefined;

  readonly client: RelaySocket;
  readonly target: RelaySocket;
  readonly stats: RelayStats;
  readonly owner: RelayOwner;
  /** For idle timeouts; null skips the bookkeeping. */
  readonly clock: (() => number) | null;
  readonly #counters: ByteCounters | null;

  constructor(options: RelayOptions) {
    this.#counters = options.counters ?? null;
    this.client = options.client;
    this.target = options.target;
    this.stats = options.stats;
    this.owner = options.owner;
    this.clock = options.clock ?? null;
    if (this.clock) this.lastActivity = this.clock();
  }

  /** True once both sides have closed. */
  get closed(): boolean {
    return this.#all(CLIENT_GONE | TARGET_GONE);
  }

  /** Data read from the client. */
  fromClient(d: Uint8Array): void {
    if (this.clock) this.lastActivity = this.clock();
    this.bytesClientToTarget += d.length;
    this.stats.bytesClientToTarget += d.length;
    if (this.#counters) this.#counters.bytesClientToTarget += d.length;
    if (this.#any(TARGET_GONE | TARGET_SHUT)) return; // nowhere to go; the client is being closed
    if (this.#toTarget) {
      this.#toTarget = concat(this.#toTarget, d);
      return;
    }
    const n = this.target.write(d);
    if (n < 0) return this.#writeFailed("target");
    if (n === d.length) return;
    this.#toTarget = d.subarray(n);
    this.client.pause();
  }

  /** Data read from the target. */
  fromTarget(d: Uint8Array): void {
    if (this.clock) this.lastActivity = this.clock();
    this.bytesTargetToClient += d.length;
    this.stats.bytesTargetToClient += d.length;
    if (this.#counters) this.#counters.bytesTargetToClient += d.length;
    if (this.#any(CLIENT_GONE | CLIENT_SHUT)) return;
    if (this.#toClient) {
      this.#toClient = concat(this.#toClient, d);
      return;
    }
    const n = this.client.write(d);
    if (n < 0) return this.#writeFailed("client");
    if (n === d.length) return;
    this.#toClient = d.subarray(n);
    this.target.pause();
  }

  /** The target can take more. */
  targetDrained(): void {
    const buf = this.#toTarget;
    if (!buf) return;
    const n = this.target.write(buf);
    if (n < 0) return this.#writeFailed("target");
    if (n < buf.length) {
      this.#toTarget = buf.subarray(n);
      return;
    }
    this.#toTarget = null;
    if (this.#any(CLIENT_EOF)) this.#shutTarget();
    else this.client.resume();
  }

  /** The client can take more. */
  clientDrained(): void {
    const buf = this.#toClient;
    if (!buf) return;
    const n = this.client.write(buf);
    if (n < 0) return this.#writeFailed("client");
    if (n < buf.length) {
      this.#toClient = buf.subarray(n);
      return;
    }
    this.#toClient = null;
    if (this.#any(TARGET_EOF)) this.#shutClient();
    else this.target.resume();
  }

  /** The client sent a FIN: forward it once its data is through. */
  clientEnded(): void {
    if (this.#any(CLIENT_EOF)) return;
    this.#flags |= CLIENT_EOF;
    if (!this.#toTarget) this.#shutTarget();
    if (this.#any(CLIENT_SHUT) && !this.#any(CLIENT_GONE)) this.client.end(); // both directions done
  }

  /** The target sent a FIN: forward it once its data is through. */
  targetEnded(): void {
    if (this.#any(TARGET_EOF)) return;
    this.#flags |= TARGET_EOF;
    if (!this.#toClient) this.#shutClient();
    if (this.#any(TARGET_SHUT) && !this.#any(TARGET_GONE)) this.target.end();
  }

  /** The client socket closed; `error` set means it was reset or failed. */
  clientClosed(error: Error | undefined): void {
    if (this.#any(CLIENT_GONE)) return;
    this.#flags |= CLIENT_GONE;
    this.#toClient = null;
    if (error) {
      this.#error ??= error;
      if (!this.#any(TARGET_GONE)) this.target.terminate();
    } else {
      // A clean close is the client's FIN with nothing more to read from it; and since it can no
      // longer receive, the target's further output has nowhere to go.
      this.#flags |= CLIENT_EOF;
      if (!this.#toTarget) this.#shutTarget();
      if (!this.#any(TARGET_GONE) && !this.#toTarget) this.target.end();
    }
    this.#maybeReport();
  }

  /** The target socket closed; `error` set means it was reset or failed. */
  targetClosed(error: Error | undefined): void {
    if (this.#any(TARGET_GONE)) return;
    this.#flags |= TARGET_GONE;
    this.#toTarget = null;
    if (error) {
      this.#error ??= error;
      if (!this.#any(CLIENT_GONE)) this.client.terminate();
    } else {
      this.#flags |= TARGET_EOF;
      if (!this.#toClient) this.#shutClient();
      if (!this.#any(CLIENT_GONE) && !this.#toClient) this.client.end();
    }
    this.#maybeReport();
  }

  /** Resets both sides now (idle timeout, shutdown deadline). */
  abort(): void {
    if (!this.#any(CLIENT_GONE)) this.client.terminate();
    if (!this.#any(TARGET_GONE)) this.target.terminate();
  }

  /**
   * A write failed: Bun returns -1 once the socket is closed or reset, and then may report the
   * close as a clean `end` (a target that resets at accept, while the client's early data is
   * written). Bytes were lost, so this is abortive whatever the close event says: reset both.
   */
  #writeFailed(side: "client" | "target"): void {
    const err = Object.assign(new Error(`write to the ${side} failed: connection reset`), { code: "ECONNRESET" });
    this.#error ??= err;
    this.#toTarget = null;
    this.#toClient = null;
    if (side === "target") {
      if (!this.#any(CLIENT_GONE)) this.client.terminate();
      if (!this.#any(TARGET_GONE)) this.target.terminate();
    } else {
      if (!this.#any(TARGET_GONE)) this.target.terminate();
      if (!this.#any(CLIENT_GONE)) this.client.terminate();
    }
  }

  #shutTarget(): void {
    if (this.#any(TARGET_SHUT | TARGET_GONE)) return;
    this.#flags |= TARGET_SHUT;
    // Full close when the target has nothing more to say, or nobody to say it to.
    if (this.#any(TARGET_EOF | CLIENT_GONE)) this.target.end();
    else this.target.shutdown();
  }

  #shutClient(): void {
    if (this.#any(CLIENT_SHUT | CLIENT_GONE)) return;
    this.#flags |= CLIENT_SHUT;
    if (this.#any(CLIENT_EOF | TARGET_GONE)) this.client.end();
    else this.client.shutdown();
  }

  #maybeReport(): void {
    if (this.#any(REPORTED) || !this.#all(CLIENT_GONE | TARGET_GONE)) return;
    this.#flags |= REPORTED;
    this.owner.relayClosed(this, this.#error);
  }
}
