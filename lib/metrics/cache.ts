/**
 * A short-lived, single-flight cache for sources that cost a process fork (`wg show <if> dump`,
 * `nft -j list counters`), so that a scrape storm forks at most once per `maxAgeMs`.
 *
 * Concurrent callers share the load in flight, however long it takes: a hung `wg` is not forked
 * again behind itself (the runner's own timeout ends it). A failure is cached like a value: a broken
 * `wg` must not be forked on every scrape either. Age counts from when the load started, so an
 * answer is never older than `maxAgeMs` plus the load's own duration.
 */

/** Options for {@link cached}. */
export interface CachedOptions {
  /** How long a result is reused, in ms. Default 1000. */
  maxAgeMs?: number;
  /** Monotonic clock in ms. Default `performance.now`. */
  now?: () => number;
}

/** A cached source. */
export interface Cached<T> {
  /** The cached result if fresh, else a new load (shared with concurrent callers). */
  get(): Promise<T>;
  /** Forgets the result, so the next `get` loads (e.g. after a reload changed the interface). */
  invalidate(): void;
}

/** Wraps `load` in a cache; see {@link CachedOptions} for defaults. */
export function cached<T>(load: () => T | Promise<T>, opts: CachedOptions = {}): Cached<T> {
  const maxAgeMs = opts.maxAgeMs ?? 1000;
  const now = opts.now ?? (() => performance.now());
  let entry: { startedAt: number; result: Promise<T>; settled: boolean } | null = null;
  return {
    get() {
      const t = now();
      // `t < startedAt` only if an injected clock went backwards; treat that as stale.
      if (entry && (!entry.settled || (t - entry.startedAt < maxAgeMs && t >= entry.startedAt))) return entry.result;
      const result = Promise.resolve().then(load);
      const mine = { startedAt: t, result, settled: false };
      // Callers see a rejection themselves; this handler only marks the entry settled.
      result.then(
        () => void (mine.settled = true),
        () => void (mine.settled = true),
      );
      entry = mine;
      return result;
    },
    invalidate() {
      entry = null;
    },
  };
}
