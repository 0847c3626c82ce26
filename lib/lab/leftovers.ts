/**
 * What egressd left on a host after it stopped, found by egressd's own ownership markers, the ones
 * its teardown and reconcile loop use (lib/host): the interface's alias, the rules at our
 * priorities stamped with our rtnetlink protocol, the routes of our table stamped with it, and our
 * nft table. The demo runs it against the lab's gateway after SIGTERM: a clean stop leaves none.
 *
 * It only reads (`ip -j`, `nft -j`), and it reports things it did not make too (a rule of someone
 * else's at our priorities, a link of that name without our alias): on a lab host those are
 * leftovers all the same, and worth naming.
 */
import type { Runner } from "../exec/runner.ts";
import { observeFirewall, NFT_FAMILY, NFT_TABLE } from "../host/nftables.ts";
import { isOurs, observeLink } from "../host/interface.ts";
import { observeRoutes, observeRules } from "../host/policy.ts";
import { foreignRoutes, foreignRules, type Family } from "../host/routing.ts";

/** Where to look: the config's interface name, `routing.rulePriority` and `routing.table`. */
export interface Ownership {
  readonly interfaceName: string;
  readonly rulePriority: number;
  readonly table: number;
}

/**
 * What of egressd's host state `runner`'s host still has, one phrase per item (`interface wg-lab`,
 * `2 ip -4 rules`, `nft table inet egressd`); empty when nothing. Rejects when a read fails.
 */
export async function egressdLeftovers(runner: Runner, own: Ownership): Promise<string[]> {
  const left: string[] = [];
  const link = await observeLink(runner, own.interfaceName);
  if (link) left.push(isOurs(link) ? `interface ${own.interfaceName}` : `interface ${own.interfaceName} (not marked as egressd's)`);
  for (const family of [4, 6] as Family[]) {
    const rules = await observeRules(runner, family, own.rulePriority);
    const foreign = foreignRules(rules).length;
    if (rules.length - foreign > 0) left.push(`${rules.length - foreign} ip -${family} rules`);
    if (foreign > 0) left.push(`${foreign} foreign ip -${family} rules at egressd's priorities`);
    const routes = await observeRoutes(runner, family, own.table);
    const foreignR = foreignRoutes(routes).length;
    if (routes.length - foreignR > 0) left.push(`${routes.length - foreignR} ip -${family} routes in table ${own.table}`);
  }
  if ((await observeFirewall(runner)).present) left.push(`nft table ${NFT_FAMILY} ${NFT_TABLE}`);
  return left;
}
