/**
 * The nft firewall host part: our table `inet egressd` (nftables.ts renders and reads it), applied
 * atomically, re-applied when it drifts, removed on `down()`.
 *
 * Drift is by fingerprint: the part remembers the script and the fingerprint of what it applied, and
 * re-applies when the table is missing, the desired script changed, or the table's fingerprint differs
 * (a rule deleted, added or edited by hand). A reconcile re-apply saves the table first (`nft list`) so
 * a failed pass can put it back; `up()` replaces whatever stale table an earlier run left.
 *
 * The leak guard's kernel counter restarts with every re-applied table; the part carries the old value
 * forward so {@link FirewallPart.leakCounter} stays monotonic for the life of the part.
 *
 * The table is host-wide: one instance for all exits (one `inet egressd` table covering every exit's interface).
 */
import type { Change } from "./change.ts";
import {
  applyRuleset,
  observeFirewall,
  readLeakCounter,
  removeRuleset,
  renderRuleset,
  saveRuleset,
  type FirewallObservation,
  type LeakCounter,
} from "./nftables.ts";
import { type Drift, type HostContext, type HostPart, type PlanMode } from "./part.ts";
import type { NormalizedSpec } from "./spec.ts";

/** See the module comment. */
export class FirewallPart implements HostPart {
  readonly name = "firewall";
  readonly steps = { add: "applyFirewall", remove: "removeFirewall" } as const;
  readonly #n: NormalizedSpec;
  readonly #exits: readonly NormalizedSpec[];
  readonly #ctx: HostContext;
  #appliedRuleset: string | null = null;
  #appliedFingerprint: string | null = null;
  #leakOffset: LeakCounter = { packets: 0, bytes: 0 };

  /**
   * `spec` is what the table is rendered from; `exits`, every exit whose interface it covers (default:
   * `spec`'s). `carry`: the part this one replaces (a reload that adds or removes an exit), whose
   * leak counter offset it continues, so the counter stays monotonic across the change.
   */
  constructor(spec: NormalizedSpec, ctx: HostContext, opts: { exits?: readonly NormalizedSpec[]; carry?: FirewallPart } = {}) {
    this.#n = spec;
    this.#exits = opts.exits ?? [spec];
    this.#ctx = ctx;
    if (opts.carry) {
      // What the running part applied: a reconcile plan re-applies only if the script differs.
      this.#leakOffset = { ...opts.carry.#leakOffset };
      this.#appliedRuleset = opts.carry.#appliedRuleset;
      this.#appliedFingerprint = opts.carry.#appliedFingerprint;
    }
  }

  /** The rendered nft script (what `nft -f -` is fed). */
  get ruleset(): string {
    return renderRuleset(this.#n, { exits: this.#exits });
  }

  /** Reads our table without changing anything. */
  read(): Promise<FirewallObservation> {
    return observeFirewall(this.#ctx.runner);
  }

  /** The leak guard's counter, monotonic across re-applies; null when the table is absent. */
  async leakCounter(): Promise<LeakCounter | null> {
    const c = await readLeakCounter(this.#ctx.runner);
    if (c === null) return null;
    return { packets: c.packets + this.#leakOffset.packets, bytes: c.bytes + this.#leakOffset.bytes };
  }

  /** `up`: always (re)install. `reconcile`: re-apply when missing, changed or modified. */
  async plan(mode: PlanMode): Promise<Change[]> {
    const force = mode === "up";
    const script = renderRuleset(this.#n, { exits: this.#exits });
    const seen = await observeFirewall(this.#ctx.runner);
    const reason = this.#reason(force, script, seen);
    if (reason === null) return [];
    let saved: string | null = null;
    let carried: LeakCounter = { packets: 0, bytes: 0 };
    return [
      {
        component: "firewall",
        action: "apply-ruleset",
        reason,
        apply: async (run) => {
          saved = force ? null : await saveRuleset(run);
          await applyRuleset(run, script);
          // The kernel counter restarts with the new table; carry the old value so the metric stays monotonic.
          if (!force && seen.leak) carried = seen.leak;
          this.#leakOffset = { packets: this.#leakOffset.packets + carried.packets, bytes: this.#leakOffset.bytes + carried.bytes };
          const after = await observeFirewall(run);
          this.#appliedRuleset = script;
          this.#appliedFingerprint = after.fingerprint;
        },
        undo: async (run) => {
          this.#leakOffset = { packets: this.#leakOffset.packets - carried.packets, bytes: this.#leakOffset.bytes - carried.bytes };
          if (saved === null) await removeRuleset(run);
          else await applyRuleset(run, saved);
          this.#appliedRuleset = null;
          this.#appliedFingerprint = null;
        },
      },
    ];
  }

  /** Deletes our table; already gone is success. */
  async remove(): Promise<void> {
    await removeRuleset(this.#ctx.runner);
    this.#appliedRuleset = null;
    this.#appliedFingerprint = null;
  }

  /** Why a reconcile pass would re-apply the table, if it would. */
  async observe(): Promise<Drift[]> {
    const script = renderRuleset(this.#n, { exits: this.#exits });
    const reason = this.#reason(false, script, await observeFirewall(this.#ctx.runner));
    return reason === null ? [] : [{ component: "firewall", action: "apply-ruleset", reason }];
  }

  #reason(force: boolean, script: string, seen: FirewallObservation): string | null {
    if (force) return seen.present ? "replace the table left by an earlier run" : "install the ruleset";
    if (!seen.present) return "table inet egressd is missing";
    if (this.#appliedRuleset !== script) return "the desired ruleset changed";
    if (seen.fingerprint !== this.#appliedFingerprint) return "table inet egressd was modified";
    return null;
  }
}
