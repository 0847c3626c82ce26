/**
 * The daemon's one cache of the host reads that fork a process: `wg show <if> dump` and the leak
 * guard's nft counter. Readiness, the `STATUS=` line, `egressd_tunnel_up`, the `wireguard_*`
 * families and the leak guard's families all read through it, so a scrape storm or a probe loop
 * forks `wg` and `nft` at most once per `maxAgeMs`, and they all agree on what they saw.
 *
 * A reconcile pass that repaired something drops it ({@link HostReads.afterPass}): the host just
 * changed (a re-created interface, a re-applied nft table), and a scrape or probe right after the
 * repair must see the state after it, not a cached one from before. `egressd status` does not go
 * through it: it reads the host afresh.
 */
import type { HostManager } from "../host/manager.ts";
import type { WgDump } from "../host/wgdump.ts";
import { cached, type Cached } from "../metrics/cache.ts";

/** The leak guard's counter as lib/host reads it. */
export type LeakCount = NonNullable<Awaited<ReturnType<HostManager["leakCounter"]>>>;

/** The host manager's reads that {@link HostReads} caches. */
export type HostReadSource = Pick<HostManager, "wireguardDump" | "leakCounter">;

/** Options for {@link HostReads}. */
export interface HostReadsOptions {
  /** How long a read is reused, ms. Default 1000. */
  maxAgeMs?: number;
  /** Monotonic clock in ms. Default `performance.now`. */
  now?: () => number;
}

/** See the module comment. */
export class HostReads {
  readonly #host: HostReadSource;
  readonly #o: { maxAgeMs: number; now?: () => number };
  readonly #dump: Cached<WgDump | null>;
  /** With several exits: one cache per exit, by name. */
  readonly #exitDumps = new Map<string, Cached<WgDump | null>>();
  readonly #leak: Cached<LeakCount | null>;

  /** Reads nothing until asked. See {@link HostReadsOptions} for defaults. */
  constructor(host: HostReadSource, opts: HostReadsOptions = {}) {
    const o = { maxAgeMs: opts.maxAgeMs ?? 1000, now: opts.now };
    this.#host = host;
    this.#o = o;
    this.#dump = cached(() => host.wireguardDump(), o);
    this.#leak = cached(() => host.leakCounter(), o);
  }

  /**
   * `wg show <if> dump` of the first exit's interface, or of exit `exit`'s: null when the interface
   * is missing; rejects when `wg` fails.
   */
  dump(exit?: string): Promise<WgDump | null> {
    if (exit === undefined) return this.#dump.get();
    let c = this.#exitDumps.get(exit);
    if (!c) this.#exitDumps.set(exit, (c = cached(() => this.#host.wireguardDump(exit), this.#o)));
    return c.get();
  }

  /** The leak guard's counter: null when our nft table is missing; rejects when `nft` fails. */
  leakCounter(): Promise<LeakCount | null> {
    return this.#leak.get();
  }

  /** Called after every reconcile pass: one that repaired something drops both reads. */
  afterPass(pass: { readonly repairs: readonly unknown[] }): void {
    if (pass.repairs.length > 0) this.invalidate();
  }

  /** Forgets both reads, so the next ones fork again. */
  invalidate(): void {
    this.#dump.invalidate();
    for (const c of this.#exitDumps.values()) c.invalidate();
    this.#leak.invalidate();
  }
}
