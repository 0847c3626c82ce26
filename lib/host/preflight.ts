/**
 * Checks made before `up()` changes anything, so a host that cannot work fails with an error naming
 * the cause instead of a half-built tunnel:
 *
 * - the tools are installed (`ip`, `wg`, `nft`; `wireguard-go` and `setpriv` when userspace is forced) —
 *   {@link MissingToolError} names the Debian package;
 * - the process has CAP_NET_ADMIN (probed with `nft list tables`, which needs it) —
 *   {@link MissingCapabilityError};
 * - the interface name is not used by a device that is not ours — {@link InterfaceConflictError};
 * - our rule priorities hold no rules we did not add — {@link RulePriorityConflictError};
 * - our routing table holds no routes we did not add — {@link RouteTableConflictError}.
 *
 * Stale state that *is* ours (left by a crash) is not an error: `up()` converges it.
 * It also reports whether the host has IPv6 at all (`ip -6 rule` fails with EAFNOSUPPORT when disabled).
 */
import type { Runner } from "../exec/runner.ts";
import { runHost } from "./command.ts";
import { InterfaceConflictError, RouteTableConflictError, RulePriorityConflictError } from "./errors.ts";
import { isOurs, observeLink } from "./interface.ts";
import { observeRoutes, observeRules } from "./policy.ts";
import { describeRoute, describeRule, foreignRoutes, foreignRules, rulePriorities, type Family } from "./routing.ts";
import type { NormalizedSpec } from "./spec.ts";

/** What the checks learned about the host. */
export interface HostFacts {
  /** Address families to manage: `[4, 6]`, or `[4]` on a host with IPv6 disabled. */
  readonly families: readonly Family[];
}

/** Options for {@link checkHost}. */
export interface CheckHostOptions {
  /** Also require `setpriv` for wireguard-go's parent-death signal. Default true. */
  parentDeathSignal?: boolean;
  /** How many priorities from `rulePriority` are ours. Default RULE_COUNT (6, one exit). */
  ruleCount?: number;
}

/** `[4, 6]`, or `[4]` when the kernel has IPv6 disabled (`ip -6 rule` fails with EAFNOSUPPORT). */
export async function detectFamilies(runner: Runner): Promise<readonly Family[]> {
  const r = await runHost(runner, ["ip", "-j", "-6", "rule", "show"], { tolerate: ["noIpv6"] });
  return r.ok ? [4, 6] : [4];
}

/** Runs every check; throws the first problem found. See the module comment. */
export async function checkHost(runner: Runner, n: NormalizedSpec, opts: CheckHostOptions = {}): Promise<HostFacts> {
  const tools = ["ip", "wg", "nft"];
  if (n.spec.interface.implementation === "userspace") {
    tools.push("wireguard-go");
    if (opts.parentDeathSignal ?? true) tools.push("setpriv");
  }
  for (const tool of tools) await runner.run([tool, tool === "ip" ? "-V" : "--version"]);

  // Needs CAP_NET_ADMIN: EPERM comes back as MissingCapabilityError.
  await runHost(runner, ["nft", "list", "tables"]);

  const families = await detectFamilies(runner);

  const link = await observeLink(runner, n.ifname);
  if (link !== null && !isOurs(link)) throw new InterfaceConflictError(n.ifname, link.kind, link.alias);

  const r = n.spec.routing;
  const badRules = [];
  const badRoutes = [];
  for (const family of families) {
    badRules.push(...foreignRules(await observeRules(runner, family, r.rulePriority, opts.ruleCount)));
    badRoutes.push(...foreignRoutes(await observeRoutes(runner, family, r.table)));
  }
  if (badRules.length > 0) throw new RulePriorityConflictError(rulePriorities(r.rulePriority, opts.ruleCount), badRules.map(describeRule));
  if (badRoutes.length > 0) {
    throw new RouteTableConflictError(r.table, badRoutes.map((o) => `${describeRoute(o)}${o.protocol ? ` proto ${o.protocol}` : ""} (IPv${o.family})`));
  }
  return { families };
}

/**
 * The checks of one exit of several (exits.ts): its interface name is not used by a device that is not
 * ours, and its own route table holds no routes we did not add.
 */
export async function checkExit(runner: Runner, n: NormalizedSpec, families: readonly Family[]): Promise<void> {
  const link = await observeLink(runner, n.ifname);
  if (link !== null && !isOurs(link)) throw new InterfaceConflictError(n.ifname, link.kind, link.alias);
  const table = n.spec.routing.table;
  const bad = [];
  for (const family of families) bad.push(...foreignRoutes(await observeRoutes(runner, family, table)));
  if (bad.length > 0) throw new RouteTableConflictError(table, bad.map((o) => `${describeRoute(o)}${o.protocol ? ` proto ${o.protocol}` : ""} (IPv${o.family})`));
}
