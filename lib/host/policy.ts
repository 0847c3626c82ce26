/**
 * Policy routing on the host: reading our rules and routes (`ip -j`), removing them, and the two host
 * parts that keep them as routing.ts describes.
 *
 * - {@link RoutesPart}: the routes of one exit's table (one route per allowed prefix via the tunnel
 *   device, and the kill switch's `unreachable default`), found by table number and `proto 212`.
 * - {@link RulesPart}: the rules per family at our priorities, found by priority and `protocol 212`
 *   (five with one exit; with several, one part holds the failover block of exits.ts).
 * - {@link ActiveRoutesPart}: with several exits, the shared table that follows the active exit.
 *
 * Each part is built from one exit's spec, so a second exit (its own table, its own priorities) is a
 * second pair of instances. Foreign rules and routes at our markers are never touched: `remove()` leaves
 * them and logs them (the host checks refuse to start on them, preflight.ts).
 */
import type { Runner } from "../exec/runner.ts";
import type { Change } from "./change.ts";
import { runHost, runHostCommand } from "./command.ts";
import { driftOf, type Drift, type HostContext, type HostPart } from "./part.ts";
import {
  RT_PROTOCOL,
  desiredActiveRoutes,
  desiredRoutes,
  desiredRules,
  describeRule,
  planRoutes,
  planRules,
  planSwitch,
  rulePriorities,
  type Family,
  type ObservedRoute,
  type ObservedRule,
} from "./routing.ts";
import { parseRoutes, parseRules } from "./routing-parse.ts";
import type { NormalizedSpec } from "./spec.ts";

/** Reads the rules at our priorities (`count` of them from `rulePriority`; default RULE_COUNT, 6) for one family. */
export async function observeRules(runner: Runner, family: Family, rulePriority: number, count?: number): Promise<ObservedRule[]> {
  const r = await runHost(runner, ["ip", "-j", "-N", `-${family}`, "rule", "show"]);
  return r.ok ? parseRules(r.stdout, family, rulePriorities(rulePriority, count)) : [];
}

/** Reads our table for one family; a table that does not exist yet reads as empty. */
export async function observeRoutes(runner: Runner, family: Family, table: number): Promise<ObservedRoute[]> {
  const r = await runHost(runner, ["ip", "-j", `-${family}`, "route", "show", "table", String(table)], { tolerate: ["tableMissing"] });
  return r.ok ? parseRoutes(r.stdout, family) : [];
}

/** Removes our rules (protocol {@link RT_PROTOCOL}) at our priorities. Rules already gone count as removed. */
export async function removeRules(runner: Runner, families: readonly Family[], rulePriority: number, count?: number): Promise<string[]> {
  const leftAlone: string[] = [];
  for (const family of families) {
    for (const o of await observeRules(runner, family, rulePriority, count)) {
      if (o.protocol !== String(RT_PROTOCOL)) {
        leftAlone.push(describeRule(o));
        continue;
      }
      await runHostCommand(runner, ["ip", `-${family}`, "rule", "del", ...o.selector], { tolerate: ["alreadyGone"] });
    }
  }
  return leftAlone;
}

/** Removes our routes (protocol {@link RT_PROTOCOL}) from our table. Returns foreign routes it left alone. */
export async function removeRoutes(runner: Runner, families: readonly Family[], table: number): Promise<string[]> {
  const leftAlone: string[] = [];
  for (const family of families) {
    for (const o of await observeRoutes(runner, family, table)) {
      if (o.protocol !== String(RT_PROTOCOL)) {
        leftAlone.push(o.selector.join(" "));
        continue;
      }
      await runHostCommand(runner, ["ip", `-${family}`, "route", "del", ...o.selector, "table", String(table)], { tolerate: ["alreadyGone"] });
    }
  }
  return leftAlone;
}

/** The routes of one exit's table. See the module comment. */
export class RoutesPart implements HostPart {
  readonly name: string;
  readonly exit?: string;
  readonly steps = { add: "addRoutes", remove: "removeRoutes" } as const;
  readonly #n: NormalizedSpec;
  readonly #ctx: HostContext;

  /** `exit` is this part's spec: its table, its interface, its allowed prefixes. */
  constructor(exit: NormalizedSpec, ctx: HostContext, opts: { name?: string; exit?: string } = {}) {
    this.#n = exit;
    this.#ctx = ctx;
    this.name = opts.name ?? "routes";
    if (opts.exit !== undefined) this.exit = opts.exit;
  }

  /** Deletes what does not belong in the table, then adds what is missing, per family. */
  async plan(): Promise<Change[]> {
    const table = this.#n.spec.routing.table;
    const out: Change[] = [];
    for (const f of this.#ctx.families()) out.push(...planRoutes(desiredRoutes(this.#n, f), await observeRoutes(this.#ctx.runner, f, table), table));
    return out;
  }

  /** Removes our routes from the table, leaving (and logging) foreign ones. */
  async remove(): Promise<void> {
    const table = this.#n.spec.routing.table;
    const left = await removeRoutes(this.#ctx.runner, this.#ctx.families(), table);
    if (left.length > 0) this.#ctx.log.warn("left routes egressd did not add", { table, routes: left.join("; ") });
  }

  /** Routes missing or unexpected. */
  async observe(): Promise<Drift[]> {
    return driftOf(await this.plan());
  }
}

/** Options of {@link RulesPart}. */
export interface RulesPartOptions {
  /** Part name. Default `rules`. */
  name?: string;
  /** With several exits: every exit's spec, for the failover layout (routing.ts). Default: one exit. */
  exits?: readonly NormalizedSpec[];
  /** How many priorities from `rulePriority` are ours. Default RULE_COUNT (6, one exit). */
  ruleCount?: number;
}

/**
 * The policy rules: one exit's, or, with several exits, the one set they share (their source rules
 * sit in one priority block, so one part owns the block). See the module comment.
 */
export class RulesPart implements HostPart {
  readonly name: string;
  readonly steps = { add: "addPolicyRules", remove: "removePolicyRules" } as const;
  readonly #n: NormalizedSpec;
  readonly #ctx: HostContext;
  readonly #exits: readonly NormalizedSpec[];
  readonly #count: number | undefined;

  /** `spec` gives the priorities, marks, shared table and uid. */
  constructor(spec: NormalizedSpec, ctx: HostContext, opts: RulesPartOptions = {}) {
    this.#n = spec;
    this.#ctx = ctx;
    this.name = opts.name ?? "rules";
    this.#exits = opts.exits ?? [];
    this.#count = opts.ruleCount;
  }

  /** Adds missing rules first, then deletes anything else at our priorities, per family. */
  async plan(): Promise<Change[]> {
    const prio = this.#n.spec.routing.rulePriority;
    const out: Change[] = [];
    for (const f of this.#ctx.families()) {
      out.push(...planRules(desiredRules(this.#n, [f], this.#exits), await observeRules(this.#ctx.runner, f, prio, this.#count)));
    }
    return out;
  }

  /** Removes our rules at our priorities, leaving (and logging) foreign ones. */
  async remove(): Promise<void> {
    const left = await removeRules(this.#ctx.runner, this.#ctx.families(), this.#n.spec.routing.rulePriority, this.#count);
    if (left.length > 0) this.#ctx.log.warn("left rules egressd did not add", { rules: left.join("; ") });
  }

  /** Rules missing or unexpected. */
  async observe(): Promise<Drift[]> {
    return driftOf(await this.plan());
  }
}

/**
 * The shared table with several exits: the active exit's routes plus the unreachable default
 * ({@link desiredActiveRoutes}). Which exit is active is read at each plan from `active()`; a switch is
 * planned as `ip route replace` per prefix ({@link planSwitch}), so the table never lacks its kill switch.
 */
export class ActiveRoutesPart implements HostPart {
  readonly name: string;
  readonly steps = { add: "addRoutes", remove: "removeRoutes" } as const;
  readonly #shared: NormalizedSpec;
  readonly #ctx: HostContext;
  readonly #active: () => NormalizedSpec | null;

  /** `shared` gives the table and the kill switch; `active` the exit whose routes it holds (null: none). */
  constructor(shared: NormalizedSpec, ctx: HostContext, opts: { active: () => NormalizedSpec | null; name?: string }) {
    this.#shared = shared;
    this.#ctx = ctx;
    this.#active = opts.active;
    this.name = opts.name ?? "routes:active";
  }

  /** Converges the shared table on the active exit, replacing rather than deleting routes that move. */
  async plan(): Promise<Change[]> {
    const table = this.#shared.spec.routing.table;
    const active = this.#active();
    const out: Change[] = [];
    for (const f of this.#ctx.families()) {
      out.push(...planSwitch(desiredActiveRoutes(this.#shared, active, f), await observeRoutes(this.#ctx.runner, f, table), table));
    }
    return out;
  }

  /** Removes our routes from the shared table. */
  async remove(): Promise<void> {
    const table = this.#shared.spec.routing.table;
    const left = await removeRoutes(this.#ctx.runner, this.#ctx.families(), table);
    if (left.length > 0) this.#ctx.log.warn("left routes egressd did not add", { table, routes: left.join("; ") });
  }

  /** Routes missing, unexpected, or via an exit that is not the active one. */
  async observe(): Promise<Drift[]> {
    return driftOf(await this.plan());
  }
}
