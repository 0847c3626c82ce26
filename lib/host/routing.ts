/**
 * Policy routing for the daemon's traffic, IPv4 and IPv6.
 *
 * Per family, six rules at priorities `rulePriority + 0..5`, each stamped `protocol` {@link RT_PROTOCOL}
 * (the ownership marker):
 * ```
 * P+0  fwmark <wireguardFwmark> lookup main                 WireGuard's own UDP never enters the tunnel table,
 *                                                           even when wireguard-go runs as the marked uid (trap 4)
 * P+1  fwmark <fwmark> lookup main suppress_prefixlength 0  connected and more specific routes still win, so a
 *                                                           marked process can answer a LAN client (trap 1)
 * P+2  fwmark <fwmark> lookup <table>                       marked packets take the tunnel's routes
 * P+3  uidrange <uid>-<uid> lookup main suppress_prefixlength 0
 * P+4  uidrange <uid>-<uid> lookup <table>                  the same two, at connect() time
 * P+5  from <tunnel address> lookup <table>                 the kernel's own packets for a closed socket
 *                                                           (TIME_WAIT ACK, RST): no uid, no mark, tunnel source
 * ```
 * The fwmark rules are the design's (nftables marks the daemon's packets; replies from the tunnel carry the
 * restored mark, which reverse-path checks need). The uidrange rules apply the same decision when a socket
 * of the daemon's uid picks its route, before any packet exists: the source address comes from the
 * tunnel (trap 2 at its root) and, with the tunnel gone, `connect()` fails at once with "No route to host"
 * instead of its SYN being dropped by the reroute and the caller waiting out its timeout.
 *
 * The table (ours by number, every route tagged `proto` {@link RT_PROTOCOL}) holds one route per allowed
 * prefix via the tunnel device, for each family the tunnel has an address in, plus — with the kill switch —
 * an `unreachable default` with the worst metric. When the tunnel device disappears, its routes go with it
 * and the daemon's traffic hits the unreachable route instead of falling through to main (trap 3).
 *
 * With several exits (failover) the layout is the one exits.ts describes: seven priorities, a table per
 * exit, source rules that tie each exit's tunnel address to its table, and the shared table holding the
 * active exit's routes ({@link desiredRules} with `exits`, {@link desiredActiveRoutes}, {@link planSwitch}).
 *
 * This module is the pure half: desired rules and routes, their argv (parsing `ip -j` output is
 * routing-parse.ts), and the diff. Reading the host and the parts that apply the diff live in policy.ts. It does not touch
 * nftables or the interface itself.
 */
import type { Runner } from "../exec/runner.ts";
import { formatCidr } from "../net/ip.ts";
import type { Change } from "./change.ts";
import { runHostCommand } from "./command.ts";
import { formatMark, type NormalizedSpec, RULE_COUNT } from "./spec.ts";

/**
 * The rtnetlink protocol number egressd stamps on its rules and routes (`proto 212` in `ip` output).
 * Unassigned in /etc/iproute2/rt_protos; it is the ownership marker teardown and conflict checks use.
 */
export const RT_PROTOCOL = 212;
/** Metric of the tunnel routes. */
export const TUNNEL_METRIC = 100;
/** Metric of the kill switch's `unreachable default`: the worst possible, so any tunnel route wins. */
export const KILL_SWITCH_METRIC = 4294967295;

/** An address family, as `ip -4` / `ip -6`. */
export type Family = 4 | 6;

/** The priorities egressd owns for a given `rulePriority` (`count` of them; default {@link RULE_COUNT}). */
export function rulePriorities(rulePriority: number, count: number = RULE_COUNT): number[] {
  return Array.from({ length: count }, (_, i) => rulePriority + i);
}

/** A policy rule egressd wants: it selects by fwmark or by uid, never both; failover rules add a source. */
export interface RuleSpec {
  readonly family: Family;
  readonly priority: number;
  /** `from <address>` (a host address, canonical), or null for `from all`. */
  readonly from?: string | null;
  readonly fwmark: number | null;
  /** `uidrange <uid>-<uid>`, or null. */
  readonly uid: number | null;
  /** Table number (254 is main). */
  readonly table: number;
  /** `suppress_prefixlength`, or null. */
  readonly suppressPrefixlength: number | null;
}

/** A policy rule as read from `ip -j -N rule show`, at one of our priorities. */
export interface ObservedRule {
  readonly family: Family;
  readonly priority: number;
  /** `from` as a canonical host address (`10.100.0.2`) or prefix (`10.100.0.0/24`); null for `from all`. */
  readonly src: string | null;
  readonly fwmark: number | null;
  readonly fwmask: number | null;
  /** `uidrange` bounds, or null. */
  readonly uidStart: number | null;
  readonly uidEnd: number | null;
  readonly table: string | null;
  readonly suppressPrefixlength: number | null;
  /** Numeric protocol as a string (`"212"`), or null when unset. */
  readonly protocol: string | null;
  /** True when the rule has selectors or actions this module never creates (to/iif/oif/...). */
  readonly hasOtherSelectors: boolean;
  /** Words for `ip rule del` that select exactly this rule. */
  readonly selector: readonly string[];
}

/** A route egressd wants in its table. */
export interface RouteSpec {
  readonly family: Family;
  readonly type: string;
  /** Canonical prefix, e.g. `0.0.0.0/0`. */
  readonly dst: string;
  /** Device for unicast routes; null for unreachable. */
  readonly dev: string | null;
  readonly metric: number;
}

/** A route as read from `ip -j route show table N`. */
export interface ObservedRoute extends RouteSpec {
  /** Protocol as printed (`"212"`, `"static"`, `"boot"`), or null. */
  readonly protocol: string | null;
  /** Words for `ip route del` that select exactly this route (without `table`). */
  readonly selector: readonly string[];
}

/**
 * The rules for one normalized spec, in priority order, per family. With two or more `exits` (each with
 * its own table, exits.ts), the failover layout: the source rules of every exit between the
 * suppress_prefixlength rules and the lookups of the shared table.
 */
export function desiredRules(n: NormalizedSpec, families: readonly Family[], exits: readonly NormalizedSpec[] = []): RuleSpec[] {
  const r = n.spec.routing;
  const p = r.rulePriority;
  const uid = n.spec.uid;
  if (exits.length >= 2) {
    return families.flatMap((family): RuleSpec[] => {
      const sources = exits.flatMap((e) => e.addresses.filter((a) => a.family === family).map((a) => ({ from: a.local, table: e.spec.routing.table })));
      return [
        { family, priority: p, fwmark: r.wireguardFwmark, uid: null, table: 254, suppressPrefixlength: null },
        { family, priority: p + 1, fwmark: r.fwmark, uid: null, table: 254, suppressPrefixlength: 0 },
        { family, priority: p + 2, fwmark: null, uid, table: 254, suppressPrefixlength: 0 },
        // Any packet from exit i's address, not only the uid's: the kernel's own replies for a socket
        // that is gone (a TIME_WAIT ACK, a RST) carry neither the uid nor the mark, and must not
        // fall through to main and leave by the home connection.
        ...sources.map((s): RuleSpec => ({ family, priority: p + 3, from: s.from, fwmark: null, uid: null, table: s.table, suppressPrefixlength: null })),
        ...sources.map((s): RuleSpec => ({ family, priority: p + 4, from: s.from, fwmark: r.fwmark, uid: null, table: s.table, suppressPrefixlength: null })),
        { family, priority: p + 5, fwmark: r.fwmark, uid: null, table: r.table, suppressPrefixlength: null },
        { family, priority: p + 6, fwmark: null, uid, table: r.table, suppressPrefixlength: null },
      ];
    });
  }
  return families.flatMap((family): RuleSpec[] => [
    { family, priority: p, fwmark: r.wireguardFwmark, uid: null, table: 254, suppressPrefixlength: null },
    { family, priority: p + 1, fwmark: r.fwmark, uid: null, table: 254, suppressPrefixlength: 0 },
    { family, priority: p + 2, fwmark: r.fwmark, uid: null, table: r.table, suppressPrefixlength: null },
    { family, priority: p + 3, fwmark: null, uid, table: 254, suppressPrefixlength: 0 },
    { family, priority: p + 4, fwmark: null, uid, table: r.table, suppressPrefixlength: null },
    // The kernel's own packets for a socket that is gone (a TIME_WAIT ACK, a RST) carry neither the
    // uid nor the mark; with the tunnel's address as their source they must not fall through to main
    // and leave by the home connection, where the home router would masquerade them.
    ...n.addresses
      .filter((a) => a.family === family)
      .map((a): RuleSpec => ({ family, priority: p + 5, from: a.local, fwmark: null, uid: null, table: r.table, suppressPrefixlength: null })),
  ]);
}

/** The routes of our table for one family. */
export function desiredRoutes(n: NormalizedSpec, family: Family): RouteSpec[] {
  const out: RouteSpec[] = [];
  if (n.families.includes(family)) {
    for (const c of n.allowedIps) {
      if (c.family === family) out.push({ family, type: "unicast", dst: formatCidr(c), dev: n.ifname, metric: TUNNEL_METRIC });
    }
  }
  if (n.spec.routing.killSwitch) {
    out.push({ family, type: "unreachable", dst: family === 4 ? "0.0.0.0/0" : "::/0", dev: null, metric: KILL_SWITCH_METRIC });
  }
  return out;
}

/**
 * The shared table's routes for one family with several exits: the active exit's routes (as in its own
 * table) plus the unreachable default; with no active exit, only the unreachable default.
 */
export function desiredActiveRoutes(shared: NormalizedSpec, active: NormalizedSpec | null, family: Family): RouteSpec[] {
  const tunnel = active ? desiredRoutes(active, family).filter((r) => r.type === "unicast") : [];
  return [...tunnel, ...desiredRoutes(shared, family).filter((r) => r.type !== "unicast")];
}

/** `ip rule add` argv for a desired rule. */
export function ruleAddArgv(rule: RuleSpec): string[] {
  return ["ip", `-${rule.family}`, "rule", "add", ...ruleWords(rule), "protocol", String(RT_PROTOCOL)];
}

/** `ip rule del` argv for a desired rule. */
export function ruleDelArgv(rule: RuleSpec): string[] {
  return ["ip", `-${rule.family}`, "rule", "del", ...ruleWords(rule), "protocol", String(RT_PROTOCOL)];
}

function ruleWords(rule: RuleSpec): string[] {
  const words = ["priority", String(rule.priority)];
  if (rule.from) words.push("from", rule.from);
  if (rule.fwmark !== null) words.push("fwmark", formatMark(rule.fwmark));
  if (rule.uid !== null) words.push("uidrange", `${rule.uid}-${rule.uid}`);
  words.push("lookup", rule.table === 254 ? "main" : String(rule.table));
  if (rule.suppressPrefixlength !== null) words.push("suppress_prefixlength", String(rule.suppressPrefixlength));
  return words;
}

/** `ip route add` argv for a desired route in `table`. */
export function routeAddArgv(route: RouteSpec, table: number): string[] {
  return ["ip", `-${route.family}`, "route", "add", ...routeWords(route), "table", String(table), "proto", String(RT_PROTOCOL)];
}

/** `ip route del` argv for a desired route in `table`. */
export function routeDelArgv(route: RouteSpec, table: number): string[] {
  return ["ip", `-${route.family}`, "route", "del", ...routeWords(route), "table", String(table)];
}

function routeWords(route: RouteSpec): string[] {
  const words: string[] = [];
  if (route.type !== "unicast") words.push(route.type);
  words.push(isDefault(route.dst) ? "default" : route.dst);
  if (route.dev !== null) words.push("dev", route.dev);
  words.push("metric", String(route.metric));
  return words;
}

/** Renders a route for messages, like `ip route` prints it. */
export function describeRoute(route: RouteSpec): string {
  return routeWords(route).join(" ");
}

function isDefault(dst: string): boolean {
  return dst === "0.0.0.0/0" || dst === "::/0";
}

// ---- observation (machine form): routing-parse.ts ----

// ---- diff ----

/** True when an observed rule is exactly the desired one (ours, no extra selectors). */
export function ruleMatches(o: ObservedRule, d: RuleSpec): boolean {
  return (
    o.family === d.family &&
    o.priority === d.priority &&
    o.src === (d.from ?? null) &&
    o.fwmark === d.fwmark &&
    (o.fwmask === null || o.fwmask === 0xffffffff) &&
    o.uidStart === d.uid &&
    o.uidEnd === d.uid &&
    o.table === String(d.table) &&
    o.suppressPrefixlength === d.suppressPrefixlength &&
    o.protocol === String(RT_PROTOCOL) &&
    !o.hasOtherSelectors
  );
}

/** True when an observed route is exactly the desired one. */
export function routeMatches(o: ObservedRoute, d: RouteSpec): boolean {
  return o.family === d.family && o.type === d.type && o.dst === d.dst && o.dev === d.dev && o.metric === d.metric && o.protocol === String(RT_PROTOCOL);
}

/** Rules at our priorities that egressd did not add (wrong protocol). */
export function foreignRules(observed: readonly ObservedRule[]): ObservedRule[] {
  return observed.filter((o) => o.protocol !== String(RT_PROTOCOL));
}

/** Routes in our table that egressd did not add (wrong protocol). */
export function foreignRoutes(observed: readonly ObservedRoute[]): ObservedRoute[] {
  return observed.filter((o) => o.protocol !== String(RT_PROTOCOL));
}

/** Describes an observed rule for messages. */
export function describeRule(o: ObservedRule): string {
  return `-${o.family} ${o.selector.join(" ")}`;
}

/**
 * Plans the rule changes for one family: add the missing rules first (so marked traffic is never without
 * a rule), then delete anything else at our priorities (stale marks, duplicates, rules re-added by hand).
 */
export function planRules(desired: readonly RuleSpec[], observed: readonly ObservedRule[]): Change[] {
  const remaining = [...observed];
  const missing: RuleSpec[] = [];
  for (const d of desired) {
    const i = remaining.findIndex((o) => ruleMatches(o, d));
    if (i >= 0) remaining.splice(i, 1);
    else missing.push(d);
  }
  const adds = missing.map((d): Change => ({
    component: "rules",
    action: "add-rule",
    reason: `rule ${ruleWords(d).join(" ")} (IPv${d.family}) is missing`,
    apply: (run) => runExplained(run, ruleAddArgv(d)),
    undo: (run) => deleteTolerant(run, ruleDelArgv(d)),
  }));
  const deletes = remaining.map((o): Change => ({
    component: "rules",
    action: "delete-rule",
    reason: `unexpected rule at our priority: ${describeRule(o)}`,
    apply: (run) => deleteTolerant(run, ["ip", `-${o.family}`, "rule", "del", ...o.selector]),
    undo: (run) => runExplained(run, ["ip", `-${o.family}`, "rule", "add", ...o.selector]),
  }));
  return [...adds, ...deletes];
}

/**
 * Plans the route changes for one family: delete routes in our table that are not desired first (a stale
 * route with the same prefix and metric would make the add fail), then add the missing ones.
 */
export function planRoutes(desired: readonly RouteSpec[], observed: readonly ObservedRoute[], table: number): Change[] {
  const remaining = [...observed];
  const missing: RouteSpec[] = [];
  for (const d of desired) {
    const i = remaining.findIndex((o) => routeMatches(o, d));
    if (i >= 0) remaining.splice(i, 1);
    else missing.push(d);
  }
  const deletes = remaining.map((o): Change => {
    const del = ["ip", `-${o.family}`, "route", "del", ...o.selector, "table", String(table)];
    const add = ["ip", `-${o.family}`, "route", "add", ...o.selector, "table", String(table), ...(o.protocol ? ["proto", o.protocol] : [])];
    return {
      component: "routes",
      action: "delete-route",
      reason: `unexpected route in table ${table}: ${o.selector.join(" ")}${o.protocol ? ` proto ${o.protocol}` : ""}`,
      apply: (run) => deleteTolerant(run, del),
      undo: (run) => runExplained(run, add),
    };
  });
  const adds = missing.map((d): Change => ({
    component: "routes",
    action: "add-route",
    reason: `route ${describeRoute(d)} (IPv${d.family}) is missing from table ${table}`,
    apply: (run) => runExplained(run, routeAddArgv(d, table)),
    undo: (run) => deleteTolerant(run, routeDelArgv(d, table)),
  }));
  return [...deletes, ...adds];
}

/**
 * Plans the shared table's routes with several exits. Like {@link planRoutes}, except that a desired
 * tunnel route whose prefix and metric are already routed by us via another device is switched with
 * one `ip route replace` (atomic: the prefix is never unrouted, and the unreachable default stays
 * throughout), and adds and replaces come before deletes, so the table never loses its kill switch.
 */
export function planSwitch(desired: readonly RouteSpec[], observed: readonly ObservedRoute[], table: number): Change[] {
  const remaining = [...observed];
  const out: Change[] = [];
  for (const d of desired) {
    const exact = remaining.findIndex((o) => routeMatches(o, d));
    if (exact >= 0) {
      remaining.splice(exact, 1);
      continue;
    }
    const via = remaining.findIndex(
      (o) => o.protocol === String(RT_PROTOCOL) && o.family === d.family && o.type === "unicast" && d.type === "unicast" && o.dst === d.dst && o.metric === d.metric,
    );
    if (via >= 0) {
      const old = remaining.splice(via, 1)[0]!;
      const replace = (r: RouteSpec) => ["ip", `-${r.family}`, "route", "replace", ...routeWords(r), "table", String(table), "proto", String(RT_PROTOCOL)];
      out.push({
        component: "routes",
        action: "switch-route",
        reason: `route ${describeRoute(d)} (IPv${d.family}) in table ${table} goes via ${old.dev ?? "nothing"}`,
        apply: (run) => runExplained(run, replace(d)),
        undo: (run) => runExplained(run, replace(old)),
      });
      continue;
    }
    out.push({
      component: "routes",
      action: "add-route",
      reason: `route ${describeRoute(d)} (IPv${d.family}) is missing from table ${table}`,
      apply: (run) => runExplained(run, routeAddArgv(d, table)),
      undo: (run) => deleteTolerant(run, routeDelArgv(d, table)),
    });
  }
  // Deletes last: an unexpected route goes only after every wanted one (the kill switch among them) is in.
  return [...out, ...planRoutes([], remaining, table)];
}

function runExplained(runner: Runner, argv: string[]): Promise<void> {
  return runHostCommand(runner, argv);
}

/** Runs a delete; "already gone" (ENOENT for rules, ESRCH for routes) is success. */
function deleteTolerant(runner: Runner, argv: string[]): Promise<void> {
  return runHostCommand(runner, argv, { tolerate: ["alreadyGone"] });
}
