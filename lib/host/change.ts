/**
 * The unit of host change: a named step pair. `up()` runs whole components as steps; `reconcile()` runs
 * one {@link Change} per difference it found and records each as a {@link Repair}. Both undo what they
 * finished, in reverse order, when a later step fails.
 */
import type { ChildHandle, RunOptions, RunResult, Runner, StartOptions } from "../exec/runner.ts";
import type { Logger } from "../log/logger.ts";
import { HostSetupError, type StepFailure } from "./errors.ts";

/** The parts of the host egressd owns, in the order they are built. */
export type Component = "sysctl" | "interface" | "wireguard" | "endpoint" | "routes" | "rules" | "firewall";

/** One planned difference between desired and observed state, with its inverse. */
export interface Change {
  readonly component: Component;
  /** Short verb phrase, stable for tests and metrics: `add-rule`, `create-interface`, `apply-ruleset`, ... */
  readonly action: string;
  /** Why, in words: what was observed and what was desired. */
  readonly reason: string;
  apply(runner: Runner): Promise<void>;
  /** Restores what {@link apply} changed. Absent when the prior state cannot be restored (documented per action). */
  undo?(runner: Runner): Promise<void>;
}

/** A change that was applied by a reconcile pass (or by up() repairing a stale host). */
export interface Repair {
  readonly component: Component;
  readonly action: string;
  readonly reason: string;
  /** Every command the repair ran, as argv (stdin is never recorded). */
  readonly commands: readonly (readonly string[])[];
  /** When it was applied, ms since the epoch. */
  readonly at: number;
}

/** A runner that forwards to `base` and remembers the argv of every command. */
export function recordingRunner(base: Runner): { runner: Runner; commands: string[][] } {
  const commands: string[][] = [];
  const runner: Runner = {
    run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
      commands.push([...argv]);
      return base.run(argv, opts);
    },
    start(argv: readonly string[], opts?: StartOptions): ChildHandle {
      commands.push([...argv]);
      return base.start(argv, opts);
    },
  };
  return { runner, commands };
}

/** A named step pair for {@link runSteps}. */
export interface Step {
  readonly name: string;
  do(): Promise<void>;
  /** Undoes {@link do}; omitted for checks that change nothing. */
  undo?(): Promise<void>;
}

/**
 * Runs steps in order. When one fails, undoes the finished ones in reverse order and throws
 * {@link HostSetupError} naming the failed step (with any undo failures attached; none is swallowed).
 */
export async function runSteps(steps: readonly Step[], log: Logger): Promise<void> {
  const done: Step[] = [];
  for (const step of steps) {
    try {
      await step.do();
      done.push(step);
    } catch (err) {
      const cause = err instanceof Error ? err : new Error(String(err));
      log.error("host step failed; rolling back", { step: step.name, error: cause.message });
      const failures = await undoAll(done, log);
      throw new HostSetupError(step.name, cause, failures);
    }
  }
}

/** Undoes finished steps in reverse order, continuing past failures, and returns them. */
export async function undoAll(done: readonly Step[], log: Logger): Promise<StepFailure[]> {
  const failures: StepFailure[] = [];
  for (const step of [...done].reverse()) {
    if (!step.undo) continue;
    try {
      await step.undo();
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      log.error("undo failed", { step: step.name, error: error.message });
      failures.push({ step: step.name, error });
    }
  }
  return failures;
}
