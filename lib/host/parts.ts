/**
 * The one ordered list of host parts the manager is built from ({@link buildParts}): the host-wide
 * parts (sysctl, the shared table with several exits, the rules, the firewall) and one interface
 * and route-table part per exit, each an instance built from that exit's spec (exits.ts).
 */
import { FAILOVER_RULE_COUNT } from "./exits.ts";
import { FirewallPart } from "./firewall.ts";
import { InterfacePart, type InterfaceOptions } from "./interface.ts";
import type { HostContext, HostPart } from "./part.ts";
import { ActiveRoutesPart, RoutesPart, RulesPart } from "./policy.ts";
import type { NormalizedSpec } from "./spec.ts";
import { SysctlPart, type SysctlAccess } from "./sysctl.ts";

/** The parts of one exit: its interface and its route table. */
export interface ExitParts {
  /** The exit's name (`exit.name`). */
  readonly name: string;
  /** The exit's own spec: its interface name, addresses and table. */
  readonly spec: NormalizedSpec;
  readonly interface: InterfacePart;
  readonly routes: RoutesPart;
}

/** The host-wide parts and the per-exit ones, and the one ordered list built from them. */
export interface HostParts {
  readonly sysctl: SysctlPart;
  readonly exits: readonly ExitParts[];
  /** With several exits: the shared table that follows the active exit; null with one. */
  readonly active: ActiveRoutesPart | null;
  readonly rules: RulesPart;
  readonly firewall: FirewallPart;
  /** Build order: sysctl, each exit's interface and routes, the shared table, the rules, the firewall. Down is the reverse. */
  readonly ordered: readonly HostPart[];
}

/** What {@link buildParts} needs besides the exits. */
export interface BuildPartsOptions {
  /** Shared by every part: runner, log, clock, families. */
  ctx: HostContext;
  /** Sysctl access for the host-wide sysctl part. */
  sysctl: SysctlAccess;
  /** Knobs every exit's interface part gets. Default: none. */
  interface?: InterfaceOptions;
  /** With several exits: the shared spec (exits.ts; the shared table, rules). Required then. */
  shared?: NormalizedSpec;
  /** With several exits: the exit whose routes the shared table holds now, or null. Default: the first. */
  active?: () => NormalizedSpec | null;
  /**
   * A reload that adds or removes exits (exit-change.ts): the running parts of the exits that stay, by
   * index, reused as they are (their wireguard-go, endpoint state); and the running firewall part,
   * whose leak counter the new one continues. Default: none (all new).
   */
  reuse?: { readonly exits: ReadonlyMap<number, ExitParts>; readonly firewall: FirewallPart };
}

/**
 * Builds the one ordered list of parts. Each exit's parts are instances built from that exit's spec
 * (exits.ts), named after the exit when there are several (`interface:hetzner`, `routes:hetzner`);
 * the sysctl, shared-table, rules and firewall parts are host-wide (one rule block, one nft table).
 */
export function buildParts(exits: readonly NormalizedSpec[], opts: BuildPartsOptions): HostParts {
  if (exits.length === 0) throw new TypeError("buildParts: at least one exit is needed");
  const { ctx } = opts;
  const several = exits.length > 1;
  if (several && !opts.shared) throw new TypeError("buildParts: several exits need the shared spec (validateExits)");
  const label = (part: string, n: NormalizedSpec) => (several ? `${part}:${n.spec.exit.name}` : part);
  const perExit = exits.map(
    (n, i): ExitParts => opts.reuse?.exits.get(i) ?? ({
      name: n.spec.exit.name,
      spec: n,
      interface: new InterfacePart(n, ctx, { ...opts.interface, name: label("interface", n), ...(several ? { exit: n.spec.exit.name } : {}) }),
      routes: new RoutesPart(n, ctx, { name: label("routes", n), ...(several ? { exit: n.spec.exit.name } : {}) }),
    }),
  );
  const shared = opts.shared ?? exits[0]!;
  const sysctl = new SysctlPart(opts.sysctl);
  const active = several ? new ActiveRoutesPart(shared, ctx, { active: opts.active ?? (() => exits[0]!) }) : null;
  const rules = several ? new RulesPart(shared, ctx, { exits, ruleCount: FAILOVER_RULE_COUNT }) : new RulesPart(shared, ctx);
  const firewall = new FirewallPart(shared, ctx, { exits, ...(opts.reuse ? { carry: opts.reuse.firewall } : {}) });
  const ordered: HostPart[] = several
    ? [sysctl, ...perExit.flatMap((e) => [e.interface, e.routes]), active!, rules, firewall]
    : [sysctl, perExit[0]!.interface, perExit[0]!.routes, rules, firewall];
  return { sysctl, exits: perExit, active, rules, firewall, ordered };
}
