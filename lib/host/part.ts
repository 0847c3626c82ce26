/**
 * The shape every host part has, so that the manager builds `up()`, `down()` and `reconcile()` from one
 * ordered list, and a second exit is a second instance of the same parts.
 *
 * ```
 * plan(mode)  read the host (machine form) and list the Changes that make it match this part's spec
 * apply       Transaction.apply(change) for each planned change (transaction.ts): recorded, undoable
 * remove()    take away everything this part owns, found by its ownership marker; already gone is success
 * observe()   the drift plan("reconcile") would repair, as plain data, changing nothing
 * ```
 * A part gets its spec when it is constructed (an instance parameter), never from a global: the
 * interface, routes and rules parts of one exit are built from that exit's {@link NormalizedSpec}; the
 * sysctl and firewall parts are host-wide. Parts never call each other's `plan()`; the order of the list
 * is what makes one part's result visible to the next (routes after the interface they point at).
 */
import type { Runner } from "../exec/runner.ts";
import type { Logger } from "../log/logger.ts";
import type { Change, Component } from "./change.ts";
import type { Family } from "./routing.ts";

/** Why `plan()` is called: `up` replaces stale state of ours left by an earlier run; `reconcile` repairs it. */
export type PlanMode = "up" | "reconcile";

/** One difference between the host and a part's spec. */
export interface Drift {
  readonly component: Component;
  /** What a repair would do, e.g. `add-rule`. */
  readonly action: string;
  /** With several exits: the exit it concerns. */
  readonly exit?: string;
  /** What was observed and what is wanted. */
  readonly reason: string;
}

/** See the module comment. */
export interface HostPart {
  /** Stable name, e.g. `interface` or (with several exits) `interface:hetzner`. */
  readonly name: string;
  /** With several exits: the exit this part belongs to; absent for host-wide parts. */
  readonly exit?: string;
  /** The `up()` step that builds it (`addInterface`) and the `down()` step that removes it (`removeInterface`). */
  readonly steps: { readonly add: string; readonly remove: string };
  /** Reads the host and plans the changes that converge this part. Applies nothing. */
  plan(mode: PlanMode): Promise<Change[]>;
  /** Removes what this part owns. Safe on a host where it never ran; already gone is success. */
  remove(): Promise<void>;
  /** The drift a reconcile pass would repair now. Reads only: no change, no re-resolution. */
  observe(): Promise<Drift[]>;
}

/** What every part shares: the runner, the log, the clock, and the families the host manages. */
export interface HostContext {
  readonly runner: Runner;
  readonly log: Logger;
  readonly now: () => number;
  /** `[4, 6]`, or `[4]` on a host without IPv6; learned by the host checks, read at each plan. */
  families(): readonly Family[];
}

/** Tags the changes a part planned with its exit (see {@link HostPart.exit}). Pure. */
export function tagExit(part: { readonly exit?: string }, changes: readonly Change[]): Change[] {
  return part.exit === undefined ? [...changes] : changes.map((c) => ({ ...c, exit: part.exit }));
}

/** Describes planned changes as drift. Pure. */
export function driftOf(changes: readonly Change[]): Drift[] {
  return changes.map((c) => ({ component: c.component, action: c.action, ...(c.exit !== undefined ? { exit: c.exit } : {}), reason: c.reason }));
}
