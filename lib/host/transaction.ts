/**
 * The one rollback mechanism: a stack of undo actions, run in reverse order when something later fails.
 *
 * Two kinds of entry share the stack:
 * - {@link Transaction.apply} applies a host {@link Change} through a recording runner, records it as a
 *   {@link Repair}, and stacks the change's own undo (a reconcile pass, and each part within `up()`);
 * - {@link Transaction.defer} stacks any undo action under a name (`up()` stacks each finished part's
 *   `remove()`; the daemon stacks the inverse of each reload step).
 *
 * {@link Transaction.rollback} runs the stack in reverse, continues past failures, logs each, and
 * returns them; nothing is swallowed. Callers wrap the failure in their own error (HostSetupError,
 * ReconcileError, a refused reload).
 */
import type { Runner } from "../exec/runner.ts";
import { silentLogger, type Logger } from "../log/logger.ts";
import { recordingRunner, type Change, type Repair } from "./change.ts";
import type { StepFailure } from "./errors.ts";

/** Options for {@link Transaction}. */
export interface TransactionOptions {
  /** Runs the changes given to {@link Transaction.apply}. Default: none (then only `defer` may be used). */
  runner?: Runner;
  /** Default {@link silentLogger}. */
  log?: Logger;
  /** Stamps repairs, ms. Default `Date.now`. */
  now?: () => number;
}

interface Entry {
  readonly label: string;
  readonly undo: (() => Promise<void>) | null;
}

/** See the module comment. */
export class Transaction {
  readonly #runner: Runner | undefined;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #stack: Entry[] = [];
  readonly #repairs: Repair[] = [];

  constructor(opts: TransactionOptions = {}) {
    this.#runner = opts.runner;
    this.#log = opts.log ?? silentLogger;
    this.#now = opts.now ?? Date.now;
  }

  /** Repairs applied through {@link apply} and not rolled back, in order. */
  get repairs(): Repair[] {
    return [...this.#repairs];
  }

  /**
   * Applies one change through a recording runner and stacks its undo. A failing change throws its own
   * error and is not stacked (a change leaves nothing half-done behind).
   */
  async apply(change: Change): Promise<Repair> {
    const runner = this.#runner;
    if (runner === undefined) throw new TypeError("Transaction.apply needs a runner");
    const rec = recordingRunner(runner);
    await change.apply(rec.runner);
    const repair: Repair = {
      component: change.component,
      action: change.action,
      reason: change.reason,
      ...(change.exit !== undefined ? { exit: change.exit } : {}),
      commands: rec.commands,
      at: this.#now(),
    };
    this.#repairs.push(repair);
    const undo = change.undo;
    this.#stack.push({ label: `${change.component}/${change.action}`, undo: undo ? () => undo.call(change, runner) : null });
    return repair;
  }

  /** Applies every change in order; on the first failure rolls back everything and rethrows. */
  async applyAll(changes: readonly Change[]): Promise<Repair[]> {
    const out: Repair[] = [];
    for (const change of changes) {
      try {
        out.push(await this.apply(change));
      } catch (err) {
        await this.rollback();
        throw err;
      }
    }
    return out;
  }

  /** Stacks an undo action under `label` for something done outside {@link apply}. */
  defer(label: string, undo: () => Promise<void>): void {
    this.#stack.push({ label, undo });
  }

  /** Undoes everything stacked, newest first, continuing past failures, which it logs and returns. */
  async rollback(): Promise<StepFailure[]> {
    const failures: StepFailure[] = [];
    while (this.#stack.length > 0) {
      const { label, undo } = this.#stack.pop()!;
      if (undo === null) {
        this.#log.warn("change cannot be undone; leaving it", { step: label });
        continue;
      }
      try {
        await undo();
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        this.#log.error("undo failed", { step: label, error: error.message });
        failures.push({ step: label, error });
      }
    }
    this.#repairs.length = 0;
    return failures;
  }
}
