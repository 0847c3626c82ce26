/**
 * Reconciliation: observe the host in machine form, compare it with the desired state, apply only the
 * difference, and record every repair.
 *
 * A pass walks the host parts in build order (the manager's one list: sysctl, interface, routes, rules,
 * firewall). Each part is observed right before it is planned, so a repair earlier in the pass (say,
 * recreating the interface, which takes its routes with it) is seen by the next part. All changes of one
 * pass form one {@link Transaction}: when a change fails, the ones already applied are undone in reverse order, the
 * host is back where the pass found it, and the error says what failed. The next pass tries again.
 *
 * With nothing to repair, a pass only reads (about ten short `ip`/`wg`/`nft` reads), so running it every
 * 2 s is cheap, and running it twice in a row changes nothing the second time.
 *
 * The timer belongs to the daemon; {@link startReconcileLoop} is the small helper it uses. It never runs
 * two passes at once, and {@link ReconcileLoop.trigger} runs one on demand.
 */
import type { Runner } from "../exec/runner.ts";
import { silentLogger, type Logger } from "../log/logger.ts";
import type { Change, Repair } from "./change.ts";
import { ReconcileError } from "./errors.ts";
import { tagExit } from "./part.ts";
import { Transaction } from "./transaction.ts";

/** Something a pass can plan: a host part, or (in tests) any named planner. Observation happens inside `plan()`. */
export interface Plannable {
  readonly name: string;
  /** With several exits: the exit the part belongs to; its changes are tagged with it. */
  readonly exit?: string;
  plan(mode: "reconcile"): Promise<Change[]>;
}

/** What one reconcile pass did. */
export interface ReconcileResult {
  /** Repairs applied, in order; empty when the host already matched. */
  readonly repairs: readonly Repair[];
  readonly durationMs: number;
}

/** Options for {@link runPass}. */
export interface PassOptions {
  /** Default {@link silentLogger}. */
  log?: Logger;
  /** Default `Date.now`. */
  now?: () => number;
  /** Called after each repair is applied. Default: none. */
  onRepair?: (repair: Repair) => void;
}

/**
 * One reconcile pass over `parts`, in order, as one {@link Transaction}. Throws {@link ReconcileError}
 * (after rolling back) when a change fails; errors from observing/planning propagate after rollback too.
 */
export async function runPass(parts: readonly Plannable[], runner: Runner, opts: PassOptions = {}): Promise<ReconcileResult> {
  const log = opts.log ?? silentLogger;
  const started = performance.now();
  const tx = new Transaction({ runner, log, now: opts.now });
  for (const part of parts) {
    let changes: Change[];
    try {
      changes = tagExit(part, await part.plan("reconcile"));
    } catch (err) {
      const failures = await tx.rollback();
      for (const f of failures) log.error("undo failed after a planning error", { step: f.step, error: f.error.message });
      throw err;
    }
    for (const change of changes) {
      let repair: Repair;
      try {
        repair = await tx.apply(change);
      } catch (err) {
        const cause = err instanceof Error ? err : new Error(String(err));
        log.error("repair failed; rolling back the pass", { component: change.component, action: change.action, error: cause.message });
        const rolledBack = tx.repairs;
        const failures = await tx.rollback();
        throw new ReconcileError({ component: change.component, action: change.action, reason: change.reason }, cause, rolledBack, failures);
      }
      log.info("repaired", { component: repair.component, action: repair.action, reason: repair.reason });
      opts.onRepair?.(repair);
    }
  }
  return { repairs: tx.repairs, durationMs: performance.now() - started };
}

/** A running reconcile timer. */
export interface ReconcileLoop {
  /** Runs a pass now (after the current one, if any) and returns its result. */
  trigger(): Promise<ReconcileResult>;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

/** Options for {@link startReconcileLoop}. */
export interface ReconcileLoopOptions {
  /** Time between the starts of two timer-driven passes, ms. Default 2000. */
  intervalMs?: number;
  /** Default {@link silentLogger}. */
  log?: Logger;
  /** Called after every timer-driven pass. Default: none. */
  onResult?: (result: ReconcileResult) => void;
  /** Called when a timer-driven pass fails; the loop keeps going. Default: log at error level. */
  onError?: (error: unknown) => void;
}

/**
 * Runs `target.reconcile()` every `intervalMs`, start to start; passes never overlap (a pass that runs
 * long delays the next). Failures are reported and the loop continues: the next pass retries.
 */
export function startReconcileLoop(target: { reconcile(): Promise<ReconcileResult> }, opts: ReconcileLoopOptions = {}): ReconcileLoop {
  const interval = opts.intervalMs ?? 2000;
  const log = opts.log ?? silentLogger;
  const onError = opts.onError ?? ((err: unknown) => log.error("reconcile failed", { error: err instanceof Error ? err.message : String(err) }));
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let chain: Promise<unknown> = Promise.resolve();

  const run = (): Promise<ReconcileResult> => {
    const p = chain.then(() => target.reconcile());
    chain = p.catch(() => undefined);
    return p;
  };
  // Passes start every `interval` ms (fixed rate, measured start to start) unless one runs longer, so
  // drift is seen at most `interval` ms after it happens; a slow pass delays the next, never overlaps it.
  const schedule = (delay: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      const started = performance.now();
      run()
        .then((r) => opts.onResult?.(r), onError)
        .finally(() => schedule(Math.max(0, interval - (performance.now() - started))));
    }, delay);
  };
  schedule(interval);
  return {
    trigger: run,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await chain;
    },
  };
}
