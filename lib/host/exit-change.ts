/**
 * Which change to the list of exits a running host can take without a gap in the kill switch, as a
 * pure decision: the old layout and the new one (exits.ts) in, a plan or a refusal with its reason out.
 *
 * Exit i's table is `routing.table + 1 + i` and its interface name defaults to `interface.name-i`, so
 * an exit's index is part of its host state. A change is applied in place only when every exit that
 * stays keeps its index:
 * ```
 * [A, B]    -> [A, B, C]   add C at the end                         applied
 * [A, B, C] -> [A, B]      remove C from the end (C not active)      applied
 * [A, B]    -> [A, C]      replace standby B by C at index 1         applied (B's parts go, C's come)
 * [A, B]    -> [A, C, B]   insert: B would move to index 2           refused (its table and interface change)
 * [A, B, C] -> [A, C]      remove B from the middle: C would move    refused
 * [A, B]    -> [B, A]      reorder                                   refused
 * active A changes key, endpoint, addresses, ... or goes             refused
 * ```
 * The active exit's interface, table, source rules and the shared table are never touched by a plan:
 * only exits that are not active are removed or added. Fewer than two exits is the config's refusal
 * (the `exits` form needs two); a move between the `exit` and `exits` forms is refused here as well.
 */
import type { ExitLayout } from "./exits.ts";
import type { NormalizedSpec } from "./spec.ts";

/** One exit the plan removes or adds, at its index in the old (removed) or new (added) list. */
export interface PlannedExit {
  readonly index: number;
  readonly name: string;
  readonly spec: NormalizedSpec;
}

/** What to do to go from the old exits to the new ones. */
export interface ExitChangePlan {
  /** Indices kept as they are (same spec, same index, same table and interface). */
  readonly kept: readonly number[];
  /** Old exits whose parts are torn down, by old index. */
  readonly remove: readonly PlannedExit[];
  /** New exits whose parts are brought up, by new index. */
  readonly add: readonly PlannedExit[];
}

/** The outcome of {@link planExitChange}. */
export type ExitChangeDecision = { readonly ok: true; readonly plan: ExitChangePlan } | { readonly ok: false; readonly reason: string };

/** True when a plan changes nothing. Pure. */
export function isEmptyPlan(plan: ExitChangePlan): boolean {
  return plan.remove.length === 0 && plan.add.length === 0;
}

/**
 * Decides how to go from `from` to `to` with `active` (the name of the exit the shared table routes
 * through now, or null) left alone. See the module comment for the cases.
 */
export function planExitChange(from: ExitLayout, to: ExitLayout, opts: { active: string | null }): ExitChangeDecision {
  if (!from.failover || !to.failover) {
    return refuse(`exits: moving between the "exit" form and the "exits" form changes the rule block and every table; restart egressd to apply it`);
  }
  const shared = sharedDifference(from.shared, to.shared);
  if (shared !== null) return refuse(`${shared} cannot change on reload without taking the tunnel's rules and kill switch down; restart egressd`);
  const oldNames = from.exits.map(nameOf);
  const newNames = to.exits.map(nameOf);
  // An exit that stays but at another index would change table (and, by default, interface name).
  for (const [i, name] of oldNames.entries()) {
    const j = newNames.indexOf(name);
    if (j === -1 || j === i) continue;
    const why = opts.active === name ? `; it is the active exit` : "";
    return refuse(
      `exits: exit "${name}" would move from exits[${i}] to exits[${j}], renumbering its table (${tableOf(from.exits[i]!)} -> ${tableOf(to.exits[j]!)})` +
        `${ifnameChange(from.exits[i]!, to.exits[j]!)}${why}; add exits at the end and remove them from the end, or restart egressd`,
    );
  }
  const kept: number[] = [];
  const remove: PlannedExit[] = [];
  const add: PlannedExit[] = [];
  const longest = Math.max(from.exits.length, to.exits.length);
  for (let i = 0; i < longest; i++) {
    const a = from.exits[i];
    const b = to.exits[i];
    if (a && b && sameExit(a, b)) {
      kept.push(i);
      continue;
    }
    if (a) {
      if (nameOf(a) === opts.active) {
        const fields = b && nameOf(b) === nameOf(a) ? exitDifference(a, b) : [];
        return refuse(
          fields.length > 0
            ? `exits: changing the active exit "${nameOf(a)}" (exits[${i}]: ${fields.join(", ")}) is refused: its interface, table and rules carry the live traffic and the kill switch; let it fail over first, or restart egressd`
            : `exits: removing the active exit "${nameOf(a)}" (exits[${i}]) is refused: it carries the live traffic; let it fail over first, or restart egressd`,
        );
      }
      remove.push({ index: i, name: nameOf(a), spec: a });
    }
    if (b) add.push({ index: i, name: nameOf(b), spec: b });
  }
  return { ok: true, plan: { kept, remove, add } };
}

function refuse(reason: string): ExitChangeDecision {
  return { ok: false, reason };
}

function nameOf(n: NormalizedSpec): string {
  return n.spec.exit.name;
}

function tableOf(n: NormalizedSpec): number {
  return n.spec.routing.table;
}

function ifnameChange(a: NormalizedSpec, b: NormalizedSpec): string {
  return a.ifname === b.ifname ? "" : ` and its interface (${a.ifname} -> ${b.ifname})`;
}

/** Same host state: the exit's whole spec (peer, interface, addresses, table) is equal. */
function sameExit(a: NormalizedSpec, b: NormalizedSpec): boolean {
  return JSON.stringify(a.spec) === JSON.stringify(b.spec);
}

/** The fields of one exit that differ, as config paths relative to the exit. */
function exitDifference(a: NormalizedSpec, b: NormalizedSpec): string[] {
  const out: string[] = [];
  const ea: Record<string, unknown> = { ...a.spec.exit };
  const eb: Record<string, unknown> = { ...b.spec.exit };
  for (const key of new Set([...Object.keys(ea), ...Object.keys(eb)])) {
    if (JSON.stringify(ea[key]) !== JSON.stringify(eb[key])) out.push(key);
  }
  if (JSON.stringify(a.spec.interface.addresses) !== JSON.stringify(b.spec.interface.addresses)) out.push("addresses");
  if (a.ifname !== b.ifname) out.push("interface");
  return out;
}

/** The first host-wide setting that differs (routing, uid, the shared interface settings), or null. */
function sharedDifference(a: NormalizedSpec, b: NormalizedSpec): string | null {
  const ra: Record<string, unknown> = { ...a.spec.routing };
  const rb: Record<string, unknown> = { ...b.spec.routing };
  for (const key of new Set([...Object.keys(ra), ...Object.keys(rb)])) {
    if (JSON.stringify(ra[key]) !== JSON.stringify(rb[key])) return key === "allowDestinations" ? "proxy.allowDestinations" : `routing.${key}`;
  }
  if (a.spec.uid !== b.spec.uid) return "uid";
  const { name: _na, addresses: _aa, ...ia } = a.spec.interface;
  const { name: _nb, addresses: _ab, ...ib } = b.spec.interface;
  const ka: Record<string, unknown> = ia;
  const kb: Record<string, unknown> = ib;
  for (const key of new Set([...Object.keys(ka), ...Object.keys(kb)])) {
    if (JSON.stringify(ka[key]) !== JSON.stringify(kb[key])) return `interface.${key}`;
  }
  return null;
}
