/**
 * Reading the host the manager built, without changing it: the full machine-form observation, the
 * drift a reconcile pass would repair, and the cheap status snapshot (report.ts has their shapes).
 * The manager (manager.ts) calls these under its lock with its current parts; everything that
 * changes the host stays there.
 */
import type { Runner } from "../exec/runner.ts";
import type { ExitLayout } from "./exits.ts";
import type { Drift } from "./part.ts";
import type { HostParts } from "./parts.ts";
import { observeRoutes, observeRules } from "./policy.ts";
import type { ExitObservation, ExitStatus, HostObservation, HostStatus } from "./report.ts";
import type { Family, ObservedRoute, ObservedRule } from "./routing.ts";

/** What {@link observeHost} reads with besides the parts. */
export interface ObserveOptions {
  readonly runner: Runner;
  /** The exits as validated; its `shared` spec names the rule priority and the shared table. */
  readonly layout: ExitLayout;
  readonly families: readonly Family[];
}

/** Reads the whole host state (rules, routes, each exit's link and WireGuard, nft, sysctl). */
export async function observeHost(parts: HostParts, { runner, layout, families }: ObserveOptions): Promise<HostObservation> {
  const r = layout.shared.spec.routing;
  const rules: ObservedRule[] = [];
  const routes: ObservedRoute[] = [];
  for (const f of families) {
    rules.push(...(await observeRules(runner, f, r.rulePriority, layout.ruleCount)));
    routes.push(...(await observeRoutes(runner, f, r.table)));
  }
  const exits: ExitObservation[] = [];
  for (const e of parts.exits) {
    const link = await e.interface.link();
    const table = e.spec.spec.routing.table;
    const own: ObservedRoute[] = [];
    if (layout.failover) for (const f of families) own.push(...(await observeRoutes(runner, f, table)));
    exits.push({ name: e.name, interface: e.spec.ifname, table, link, wireguard: link ? await e.interface.dump() : null, routes: layout.failover ? own : routes });
  }
  return {
    link: exits[0]!.link,
    wireguard: exits[0]!.wireguard,
    rules,
    routes,
    exits,
    firewall: await parts.firewall.read(),
    srcValidMark: await parts.sysctl.read(),
  };
}

/** What a reconcile pass would repair now, part by part, each tagged with its exit. */
export async function observeDrift(parts: HostParts): Promise<Drift[]> {
  const out: Drift[] = [];
  for (const part of parts.ordered) {
    const drift = await part.observe();
    out.push(...(part.exit === undefined ? drift : drift.map((d) => ({ ...d, exit: part.exit }))));
  }
  return out;
}

/** The manager's own state that {@link hostStatus} reports beside what the parts know. */
export interface StatusFacts {
  readonly state: HostStatus["state"];
  readonly families: readonly Family[];
  /** Several exits: the active one is reported as chosen; with one, it is that exit. */
  readonly failover: boolean;
  /** The exit the shared table routes through, or null. */
  readonly active: string | null;
  readonly reconcileRuns: number;
  readonly lastReconcileAt: number | null;
  readonly lastReconcileError: string | null;
  readonly repairsByComponent: Readonly<Record<string, number>>;
}

/** The status snapshot: state, implementation, pid, endpoint resolution and repair counts. Runs no command. */
export function hostStatus(parts: HostParts, facts: StatusFacts): HostStatus {
  const exits = parts.exits.map((e): ExitStatus => {
    const wg = e.interface.status();
    return {
      name: e.name,
      interface: e.spec.ifname,
      table: e.spec.spec.routing.table,
      addresses: e.spec.addresses.map((a) => a.local),
      implementation: wg.implementation,
      pid: wg.pid,
      resolvedEndpoints: wg.resolvedEndpoints,
      resolveError: wg.resolveError,
      endpointReresolutions: wg.endpointReresolutions,
    };
  });
  const first = exits[0]!;
  return {
    state: facts.state,
    implementation: first.implementation,
    pid: first.pid,
    families: [...facts.families],
    resolvedEndpoints: first.resolvedEndpoints,
    resolveError: first.resolveError,
    endpointReresolutions: exits.reduce((a, e) => a + e.endpointReresolutions, 0),
    exits,
    active: facts.failover ? facts.active : first.name,
    reconcileRuns: facts.reconcileRuns,
    lastReconcileAt: facts.lastReconcileAt,
    lastReconcileError: facts.lastReconcileError,
    repairsByComponent: { ...facts.repairsByComponent },
  };
}
