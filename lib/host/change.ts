/**
 * The unit of host change: one planned difference between desired and observed state, with its inverse,
 * and the record of it once applied. Parts plan {@link Change}s (part.ts); a {@link Transaction}
 * (transaction.ts) applies them and undoes them.
 */
import type { ChildHandle, RunOptions, RunResult, Runner, StartOptions } from "../exec/runner.ts";

/** The parts of the host egressd owns, in the order they are built. */
export type Component = "sysctl" | "interface" | "wireguard" | "endpoint" | "routes" | "rules" | "firewall";

/** One planned difference between desired and observed state, with its inverse. */
export interface Change {
  readonly component: Component;
  /** Short verb phrase, stable for tests and metrics: `add-rule`, `create-interface`, `apply-ruleset`, ... */
  readonly action: string;
  /** Why, in words: what was observed and what was desired. */
  readonly reason: string;
  /** With several exits: the exit whose part planned it (its name); absent for host-wide parts. */
  readonly exit?: string;
  apply(runner: Runner): Promise<void>;
  /** Restores what {@link apply} changed. Absent when the prior state cannot be restored (documented per action). */
  undo?(runner: Runner): Promise<void>;
}

/** A change that was applied by a reconcile pass (or by up() repairing a stale host). */
export interface Repair {
  readonly component: Component;
  readonly action: string;
  readonly reason: string;
  /** With several exits: the exit it repaired (its name), so metrics and logs tell exits apart; absent for host-wide parts. */
  readonly exit?: string;
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
