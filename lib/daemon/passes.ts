/**
 * The reconcile loop as the daemon runs it: the timer, and each pass timed and recorded for
 * `egressd status`, the watchdog's health and the metrics. The pass itself (observe, diff, repair) is
 * the host manager's; the daemon's lifecycle (daemon.ts) starts and stops this.
 */
import type { HostManager } from "../host/manager.ts";
import { startReconcileLoop, type ReconcileLoop, type ReconcileResult } from "../host/reconcile.ts";
import type { Logger } from "../log/logger.ts";
import type { HostReads } from "./host-reads.ts";
import type { ReconcileStatus } from "./status.ts";

/** What {@link ReconcilePasses} runs passes with. */
export interface ReconcilePassesOptions {
  readonly host: HostManager;
  /** Told of each successful pass, so it drops what a repair made stale. */
  readonly reads: HostReads;
  readonly log: Logger;
  /** Called after every pass, successful or not (the daemon refreshes its `STATUS=` line). */
  readonly onPassEnd: () => void;
}

/** See the module comment. */
export class ReconcilePasses {
  readonly #opts: ReconcilePassesOptions;
  #loop: ReconcileLoop | null = null;
  #lastPassAt = Date.now();
  #lastPass: ReconcileStatus | null = null;
  #passRunning = false;

  /** Starts no timer: {@link start} does. */
  constructor(opts: ReconcilePassesOptions) {
    this.#opts = opts;
  }

  /** The last pass, as status shows it; null before the first. */
  get lastPass(): ReconcileStatus | null {
    return this.#lastPass;
  }

  /** Whether a pass is running now. */
  get passRunning(): boolean {
    return this.#passRunning;
  }

  /**
   * Starts the reconcile timer, stopping the one running (a reload's new interval); a failed pass
   * is logged by {@link pass} and retried at the next tick.
   */
  start(intervalMs: number): void {
    this.#loop?.stop();
    this.#loop = startReconcileLoop({ reconcile: () => this.pass() }, { intervalMs, log: this.#opts.log, onError: () => {} });
  }

  /** Stops the timer. */
  stop(): void {
    this.#loop?.stop();
  }

  /** One reconcile pass, timed and recorded for status, watchdog and metrics. */
  async pass(): Promise<ReconcileResult> {
    const started = Date.now();
    this.#passRunning = true;
    try {
      const r = await this.#opts.host.reconcile();
      const repairs = r.repairs.map((x) => ({ object: x.component, detail: `${x.exit !== undefined ? `exit ${x.exit}: ` : ""}${x.action} (${x.reason})` }));
      this.#lastPass = { at: Date.now(), durationMs: r.durationMs, ok: true, error: null, repairs };
      this.#opts.reads.afterPass(r);
      return r;
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      this.#lastPass = { at: Date.now(), durationMs: Date.now() - started, ok: false, error, repairs: [] };
      this.#opts.log.error("reconcile failed", { error });
      throw e;
    } finally {
      this.#passRunning = false;
      this.#lastPassAt = Date.now();
      this.#opts.onPassEnd();
    }
  }

  /** Null when passes keep finishing, else why not: none for 5 intervals (at least 60 s). */
  stalled(intervalMs: number): string | null {
    const limit = Math.max(60_000, 5 * intervalMs);
    const since = Date.now() - this.#lastPassAt;
    return since > limit ? `no reconcile pass has finished for ${Math.round(since / 1000)} s` : null;
  }
}
