/**
 * Applying an {@link ExitChangePlan} (exit-change.ts) to a running host, as one {@link Transaction}:
 * the parts of the exits that go are torn down, those of the exits that come are brought up (each a
 * new instance of the same interface and routes parts), and the host-wide rules and nft table are
 * converged on the new list. The active exit's interface, its table and the shared table are never
 * part of a plan, so they are not touched, and the kill switch has no gap:
 * ```
 * 1. the interfaces of the exits that go                   their addresses and routes go with them;
 *                                                          their tables keep the unreachable default
 * 2. the interface, then the table, of each exit that comes (checked first: a foreign interface or
 *                                                          route in its table refuses the change)
 * 3. the rules: add the new exits' source rules, delete     diff by rule (routing.ts planRules); the
 *    those of the exits that went                          other rules are not re-created
 * 4. the nft table, re-rendered for the new interfaces      one `nft -f` (delete + add the table in one
 *                                                          kernel transaction: never absent)
 * 5. the tables of exits removed from the end of the list  after their source rules are gone
 * ```
 * A step that fails rolls back every earlier one, newest first (an exit that went is brought back by
 * its own running parts, which still hold its state), and the running parts are left as they were.
 */
import type { Logger } from "../log/logger.ts";
import type { Runner } from "../exec/runner.ts";
import type { Repair } from "./change.ts";
import { ExitChangeError } from "./errors.ts";
import type { ExitChangePlan } from "./exit-change.ts";
import { tagExit, type HostPart } from "./part.ts";
import type { HostParts } from "./parts.ts";
import { checkExit } from "./preflight.ts";
import type { Family } from "./routing.ts";
import { Transaction } from "./transaction.ts";

/** What {@link applyExitChange} runs with. */
export interface ExitApplyOptions {
  readonly runner: Runner;
  readonly log: Logger;
  readonly now: () => number;
  readonly families: readonly Family[];
}

/**
 * Moves the host from the parts `from` (running) to `to` (built for the new exits, reusing `from`'s
 * parts of the exits kept) by `plan`. Returns every change made; throws {@link ExitChangeError}
 * after rolling back.
 */
export async function applyExitChange(from: HostParts, to: HostParts, opts: { plan: ExitChangePlan } & ExitApplyOptions): Promise<Repair[]> {
  const { plan, runner, log, now } = opts;
  const tx = new Transaction({ runner, log, now });
  const changes: Repair[] = [];
  const sub = () => new Transaction({ runner, log, now });
  let step = "checkExit";
  try {
    for (const a of plan.add) {
      step = `checkExit:${a.name}`;
      // A replaced exit's interface and table are ours already; checkExit accepts them.
      await checkExit(runner, a.spec, opts.families);
    }
    for (const r of plan.remove) {
      const parts = from.exits[r.index]!;
      step = `${parts.interface.steps.remove}:${r.name}`;
      await parts.interface.remove();
      tx.defer(`restore exit ${r.name}`, async () => {
        // The exit's own running parts bring it back: same key, same wireguard-go supervision.
        const t = sub();
        for (const part of [parts.interface, parts.routes]) await t.applyAll(tagExit(part, await part.plan("up")));
      });
      log.info("exit removed: its interface is down", { exit: r.name, interface: parts.spec.ifname });
    }
    for (const a of plan.add) {
      const parts = to.exits[a.index]!;
      // A table shared with an exit that went (replaced at the same index) is put back by its restore.
      const replaces = plan.remove.some((r) => r.index === a.index);
      for (const part of [parts.interface, parts.routes] as HostPart[]) {
        step = `${part.steps.add}:${a.name}`;
        changes.push(...(await sub().applyAll(tagExit(part, await part.plan("up")))));
        if (part === parts.interface || !replaces) tx.defer(part.steps.add, () => part.remove());
      }
      log.info("exit added", { exit: a.name, interface: parts.spec.ifname, table: parts.spec.spec.routing.table });
    }
    for (const part of [to.rules, to.firewall]) {
      step = part.steps.add;
      for (const change of await part.plan("reconcile")) changes.push(await tx.apply(change));
    }
    for (const r of plan.remove) {
      if (to.exits[r.index] !== undefined) continue; // replaced: the new exit owns the table now
      const parts = from.exits[r.index]!;
      step = `${parts.routes.steps.remove}:${r.name}`;
      await parts.routes.remove();
    }
  } catch (err) {
    const cause = err instanceof Error ? err : new Error(String(err));
    log.error("changing the exits failed; rolling back", { step, error: cause.message });
    throw new ExitChangeError(step, cause, await tx.rollback());
  }
  return changes;
}
