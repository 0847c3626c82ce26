/**
 * A reload that adds or removes standby exits: the daemon's side of lib/host/exit-change.ts.
 *
 * ```
 * exits differ?  no  -> nothing (other host changes are refused by specs.ts reloadRefusal)
 *                yes -> stop the failover loop (no switch while the host changes; restarted on undo)
 *                       host.changeExits(new spec): applied in place, or refused naming what and why
 *                       stack the inverse change, so a later reload step that fails puts the old exits back
 * ```
 * The new failover loop (the daemon builds it after the other steps) probes the new list and keeps the
 * health it had of the exits that stayed.
 */
import type { Config } from "../config/schema.ts";
import type { HostManager } from "../host/manager.ts";
import type { Transaction } from "../host/transaction.ts";
import type { FailoverLoop } from "./failover.ts";
import type { Logger } from "../log/logger.ts";
import { exitSources, hostSpec, sourceAddressList } from "./specs.ts";

/** True when `a` and `b` differ in their exits' host state (names, keys, endpoints, addresses, interfaces, order). */
export function exitsDiffer(a: Config, b: Config): boolean {
  return JSON.stringify(hostSpec(a, 0).exits ?? null) !== JSON.stringify(hostSpec(b, 0).exits ?? null);
}

/** What {@link reloadExits} needs besides the configs. */
export interface ReloadExitsOptions {
  /** The daemon's uid (the host spec's). */
  readonly uid: number;
  /** The reload's transaction: the inverse of each step is stacked on it. */
  readonly undo: Transaction;
  /** The running failover loop, stopped while the host changes. */
  readonly failover: Pick<FailoverLoop, "start" | "stop"> | null;
  /**
   * Resets the proxied connections from these tunnel addresses (`ProxyServer.resetFrom`): those through
   * an exit that went have lost their interface, and their clients should reconnect at once.
   */
  readonly reset?: (addresses: readonly string[], reason: string) => number;
  readonly log?: Logger;
}

/**
 * Applies the change of exits from `old` to `next` to the running host, or throws: an
 * `ExitChangeRefusedError` (what is refused and why) or an `ExitChangeError` (a step failed and was
 * rolled back). Either way the running exits are as they were. Returns true when the exits changed.
 */
export async function reloadExits(host: Pick<HostManager, "changeExits">, configs: { old: Config; next: Config }, opts: ReloadExitsOptions): Promise<boolean> {
  const { old, next } = configs;
  if (!exitsDiffer(old, next)) return false;
  const loop = opts.failover;
  if (loop) {
    await loop.stop();
    opts.undo.defer("reload failover (restart)", async () => loop.start());
  }
  const result = await host.changeExits(hostSpec(next, opts.uid));
  opts.undo.defer("reload exits", async () => {
    await host.changeExits(hostSpec(old, opts.uid));
  });
  const sources = exitSources(old);
  for (const name of result.removed) {
    const n = opts.reset?.(sourceAddressList(sources.get(name)), `exit ${name} was removed by a reload`) ?? 0;
    if (n > 0) opts.log?.warn("reset connections through a removed exit", { exit: name, connections: n });
  }
  return true;
}
