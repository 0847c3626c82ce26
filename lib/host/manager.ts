/**
 * The host manager: the one object the daemon uses to bring the host side of egressd up, keep it
 * right, observe it, and take it down.
 *
 * ```
 * up():   checkHost → enableSrcValidMark → addInterface → addRoutes → addPolicyRules → applyFirewall
 * down(): removeFirewall → removePolicyRules → removeRoutes → removeInterface → restoreSrcValidMark
 * ```
 * `up()` undoes the finished steps in reverse when one fails. Each step converges rather than blindly
 * adds, so `up()` after a crash (our stale rules, routes and table still present) ends with exactly one
 * copy of everything. Routes come before rules and the firewall comes last, so marked traffic is never
 * routed before the kill switch exists. `down()` removes exactly what we own (found by interface alias,
 * rule priority + protocol, route table + protocol, and our nft table), treats "already gone" as
 * success, keeps going past failures, and reports them together.
 *
 * All operations are serialized: a timer-driven `reconcile()` never runs during `up()` or `down()`.
 * The manager does not own the timer (see {@link startReconcileLoop}) and knows nothing about the proxy.
 */
import { createRunner, type Runner } from "../exec/runner.ts";
import { silentLogger, type Logger } from "../log/logger.ts";
import { runSteps, type Change, type Repair } from "./change.ts";
import { HostNotUpError, TeardownError, type StepFailure } from "./errors.ts";
import type { Resolver } from "./endpoint.ts";
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
import { checkHost, detectFamilies } from "./preflight.ts";
import { Transaction, runPass, type PlannedComponent, type ReconcileResult } from "./reconcile.ts";
import {
  desiredRoutes,
  desiredRules,
  observeRoutes,
  observeRules,
  planRoutes,
  planRules,
  removeRoutes,
  removeRules,
  type Family,
  type ObservedRoute,
  type ObservedRule,
} from "./routing.ts";
import { validateSpec, type HostSpec, type NormalizedSpec } from "./spec.ts";
import { SRC_VALID_MARK, procSysctl, type SysctlAccess } from "./sysctl.ts";
import { WireGuardInterface, observeLink, type ActiveImplementation, type LinkState } from "./wireguard.ts";
import type { WgDump } from "./wgdump.ts";

/** Dependencies and knobs of {@link HostManager}; every one is optional. */
export interface HostManagerOptions {
  /** Default: `createRunner({ log })`. */
  runner?: Runner;
  /** Default {@link silentLogger}. */
  log?: Logger;
  /** Resolves the exit's DNS name. Default: the system resolver. */
  resolve?: Resolver;
  /** Default: /proc/sys. The lab passes `runnerSysctl(runner)` to reach a network namespace. */
  sysctl?: SysctlAccess;
  /** Clock in ms (handshake age, repair timestamps). Default `Date.now`. */
  now?: () => number;
  /** Reads key files. Default `fs.readFile(path, "utf8")`. */
  readSecret?: (path: string) => Promise<string>;
  /** Called for every repair a reconcile pass applies. Default: none. */
  onRepair?: (repair: Repair) => void;
  /** Minimum ms between re-resolutions of a DNS endpoint with a stale handshake. Default 30000. */
  reresolveIntervalMs?: number;
  /** How long wireguard-go may take to come up, ms. Default 5000. */
  userspaceStartTimeoutMs?: number;
  /** Start wireguard-go via `setpriv --pdeathsig TERM`. Default true. */
  parentDeathSignal?: boolean;
  /** How many recent repairs {@link HostManager.recentRepairs} keeps. Default 100. */
  repairHistory?: number;
}

/** What `up()` reports. */
export interface UpResult {
  /** Which WireGuard implementation is in use. */
  readonly implementation: ActiveImplementation;
  /** wireguard-go's pid, or null for the kernel implementation. */
  readonly pid: number | null;
  /** Address families managed. */
  readonly families: readonly Family[];
  /** Every change up() made, in order (on a stale host this includes the cleanup). */
  readonly changes: readonly Repair[];
}

/** A snapshot for `egressd status`, metrics and readiness. Cheap: no commands run. */
export interface HostStatus {
  readonly state: "down" | "up";
  readonly implementation: ActiveImplementation | null;
  readonly pid: number | null;
  readonly families: readonly Family[];
  readonly resolvedEndpoints: readonly string[];
  readonly resolveError: string | null;
  /** Times the exit's DNS name was re-resolved because the handshake was stale. */
  readonly endpointReresolutions: number;
  /** Reconcile passes completed successfully. */
  readonly reconcileRuns: number;
  /** End of the last successful reconcile pass (ms epoch), or null. */
  readonly lastReconcileAt: number | null;
  /** Why the last reconcile pass failed, or null if it succeeded. */
  readonly lastReconcileError: string | null;
  /** Repairs applied since construction, by component. */
  readonly repairsByComponent: Readonly<Record<string, number>>;
}

/** Everything the manager can read about the host, in machine form. */
export interface HostObservation {
  readonly link: LinkState | null;
  readonly wireguard: WgDump | null;
  readonly rules: readonly ObservedRule[];
  readonly routes: readonly ObservedRoute[];
  readonly firewall: FirewallObservation;
  readonly srcValidMark: string | null;
}

/** See the module comment. */
export class HostManager {
  readonly #n: NormalizedSpec;
  readonly #runner: Runner;
  readonly #log: Logger;
  readonly #sysctl: SysctlAccess;
  readonly #now: () => number;
  readonly #onRepair: ((r: Repair) => void) | undefined;
  readonly #historySize: number;
  readonly #parentDeathSignal: boolean;
  readonly #wg: WireGuardInterface;

  #state: "down" | "up" = "down";
  #families: Family[] = [4, 6];
  #lock: Promise<unknown> = Promise.resolve();
  #appliedRuleset: string | null = null;
  #appliedFingerprint: string | null = null;
  #leakOffset: LeakCounter = { packets: 0, bytes: 0 };
  #srcValidMarkBefore: string | null = null;
  #recent: Repair[] = [];
  #byComponent: Record<string, number> = {};
  #lastReconcileAt: number | null = null;
  #reconcileRuns = 0;
  #lastReconcileError: string | null = null;

  /** Validates the spec (throws `SpecError` / `UnsafeUidError`); changes nothing yet. */
  constructor(spec: HostSpec, opts: HostManagerOptions = {}) {
    this.#n = validateSpec(spec);
    this.#log = opts.log ?? silentLogger;
    this.#runner = opts.runner ?? createRunner({ log: this.#log });
    this.#sysctl = opts.sysctl ?? procSysctl();
    this.#now = opts.now ?? Date.now;
    this.#onRepair = opts.onRepair;
    this.#historySize = opts.repairHistory ?? 100;
    this.#parentDeathSignal = opts.parentDeathSignal ?? true;
    this.#wg = new WireGuardInterface(this.#n, {
      runner: this.#runner,
      log: this.#log,
      resolve: opts.resolve,
      now: this.#now,
      readSecret: opts.readSecret,
      reresolveIntervalMs: opts.reresolveIntervalMs,
      startTimeoutMs: opts.userspaceStartTimeoutMs,
      parentDeathSignal: this.#parentDeathSignal,
    });
  }

  /** The rendered nft script for this spec (what `applyFirewall` feeds to `nft -f -`). */
  get ruleset(): string {
    return renderRuleset(this.#n);
  }

  /**
   * Brings the host up, converging any stale state of ours. When already up, runs a reconcile pass
   * instead. Throws `HostSetupError` (cause: the real error, e.g. `MissingToolError`,
   * `MissingCapabilityError`, `InterfaceConflictError`) after rolling back.
   */
  up(): Promise<UpResult> {
    return this.#exclusive(async () => {
      if (this.#state === "up") {
        const r = await this.#reconcileLocked();
        return this.#upResult(r.repairs);
      }
      const changes: Repair[] = [];
      // Each step applies its component's changes as one transaction: a step that fails halfway undoes
      // its own changes, then runSteps undoes the finished steps.
      const apply = (plan: () => Promise<Change[]>) => async () => {
        const tx = new Transaction(this.#runner, this.#log, this.#now);
        changes.push(...(await tx.applyAll(await plan())));
      };
      await runSteps(
        [
          { name: "checkHost", do: () => this.#checkHost() },
          { name: "enableSrcValidMark", do: apply(() => this.#planSysctl()), undo: () => this.#restoreSrcValidMark() },
          { name: "addInterface", do: apply(() => this.#wg.plan({ fresh: true })), undo: () => this.#wg.remove() },
          { name: "addRoutes", do: apply(() => this.#planRoutes()), undo: () => this.#removeRoutes() },
          { name: "addPolicyRules", do: apply(() => this.#planRules()), undo: () => this.#removeRules() },
          { name: "applyFirewall", do: apply(() => this.#planFirewall({ force: true })), undo: () => this.#removeFirewall() },
        ],
        this.#log,
      );
      this.#state = "up";
      const result = this.#upResult(changes);
      this.#log.info("host is up", { ifname: this.#n.ifname, implementation: result.implementation, pid: result.pid ?? undefined });
      return result;
    });
  }

  /**
   * Removes everything egressd owns, in reverse build order. Safe to call twice, or on a host where
   * up() never ran in this process (cleanup after a crash). Throws `TeardownError` listing what failed,
   * after trying every step.
   */
  down(): Promise<void> {
    return this.#exclusive(async () => {
      const failures: StepFailure[] = [];
      const steps: [string, () => Promise<unknown>][] = [
        ["removeFirewall", () => this.#removeFirewall()],
        ["removePolicyRules", () => this.#removeRules()],
        ["removeRoutes", () => this.#removeRoutes()],
        ["removeInterface", () => this.#wg.remove()],
        ["restoreSrcValidMark", () => this.#restoreSrcValidMark()],
      ];
      if (this.#state === "down") this.#families = [...(await detectFamilies(this.#runner))];
      for (const [step, run] of steps) {
        try {
          await run();
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          this.#log.error("teardown step failed", { step, error: error.message });
          failures.push({ step, error });
        }
      }
      this.#state = "down";
      if (failures.length > 0) throw new TeardownError(failures);
      this.#log.info("host is down", { ifname: this.#n.ifname });
    });
  }

  /**
   * One reconcile pass: observe, diff, apply the difference, record each repair. Throws
   * `HostNotUpError` before `up()`, `ReconcileError` (after rolling back) when a repair fails.
   */
  reconcile(): Promise<ReconcileResult> {
    return this.#exclusive(() => this.#reconcileLocked());
  }

  /** Reads the whole host state without changing anything. */
  observe(): Promise<HostObservation> {
    return this.#exclusive(async () => {
      const r = this.#n.spec.routing;
      const rules: ObservedRule[] = [];
      const routes: ObservedRoute[] = [];
      for (const f of this.#families) {
        rules.push(...(await observeRules(this.#runner, f, r.rulePriority)));
        routes.push(...(await observeRoutes(this.#runner, f, r.table)));
      }
      const link = await observeLink(this.#runner, this.#n.ifname);
      return {
        link,
        wireguard: link ? await this.#wg.dump() : null,
        rules,
        routes,
        firewall: await observeFirewall(this.#runner),
        srcValidMark: await this.#sysctl.read(SRC_VALID_MARK).catch(() => null),
      };
    });
  }

  /** `wg show <if> dump`, parsed; null when the interface does not exist. For metrics. */
  wireguardDump(): Promise<WgDump | null> {
    return this.#wg.dump();
  }

  /**
   * The leak guard's counter, monotonic for the life of this manager (re-applying the table resets the
   * kernel counter; the manager carries the old value forward). Null when the table is absent.
   */
  async leakCounter(): Promise<LeakCounter | null> {
    const c = await readLeakCounter(this.#runner);
    if (c === null) return null;
    return { packets: c.packets + this.#leakOffset.packets, bytes: c.bytes + this.#leakOffset.bytes };
  }

  /** State, implementation, pid, endpoint resolution and repair counts. Runs no command. */
  status(): HostStatus {
    const wg = this.#wg.status();
    return {
      state: this.#state,
      implementation: wg.implementation,
      pid: wg.pid,
      families: [...this.#families],
      resolvedEndpoints: wg.resolvedEndpoints,
      resolveError: wg.resolveError,
      endpointReresolutions: wg.endpointReresolutions,
      reconcileRuns: this.#reconcileRuns,
      lastReconcileAt: this.#lastReconcileAt,
      lastReconcileError: this.#lastReconcileError,
      repairsByComponent: { ...this.#byComponent },
    };
  }

  /** The most recent repairs, oldest first. */
  get recentRepairs(): readonly Repair[] {
    return [...this.#recent];
  }

  // ---- internals ----

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#lock.then(fn);
    this.#lock = p.catch(() => undefined);
    return p;
  }

  async #reconcileLocked(): Promise<ReconcileResult> {
    if (this.#state !== "up") throw new HostNotUpError();
    const components: PlannedComponent[] = [
      { component: "sysctl", plan: () => this.#planSysctl() },
      { component: "interface", plan: () => this.#wg.plan({ fresh: false }) },
      { component: "routes", plan: () => this.#planRoutes() },
      { component: "rules", plan: () => this.#planRules() },
      { component: "firewall", plan: () => this.#planFirewall({ force: false }) },
    ];
    try {
      const result = await runPass(components, this.#runner, { log: this.#log, now: this.#now, onRepair: (r) => this.#record(r) });
      this.#lastReconcileAt = this.#now();
      this.#lastReconcileError = null;
      this.#reconcileRuns++;
      return result;
    } catch (err) {
      this.#lastReconcileError = err instanceof Error ? err.message : String(err);
      throw err;
    }
  }

  #record(r: Repair): void {
    this.#recent.push(r);
    if (this.#recent.length > this.#historySize) this.#recent.shift();
    this.#byComponent[r.component] = (this.#byComponent[r.component] ?? 0) + 1;
    this.#onRepair?.(r);
  }

  #upResult(changes: readonly Repair[]): UpResult {
    const wg = this.#wg.status();
    return { implementation: wg.implementation ?? "kernel", pid: wg.pid, families: [...this.#families], changes };
  }

  async #checkHost(): Promise<void> {
    const facts = await checkHost(this.#runner, this.#n, { parentDeathSignal: this.#parentDeathSignal });
    this.#families = [...facts.families];
  }

  async #planSysctl(): Promise<Change[]> {
    const before = await this.#sysctl.read(SRC_VALID_MARK);
    if (before === "1") return [];
    return [
      {
        component: "sysctl",
        action: "enable-src-valid-mark",
        reason: `${SRC_VALID_MARK} is ${before}, want 1`,
        apply: async () => {
          await this.#sysctl.write(SRC_VALID_MARK, "1");
          this.#srcValidMarkBefore ??= before;
        },
        undo: () => this.#sysctl.write(SRC_VALID_MARK, before),
      },
    ];
  }

  /** Puts src_valid_mark back if we changed it and it still holds our value. */
  async #restoreSrcValidMark(): Promise<void> {
    const before = this.#srcValidMarkBefore;
    if (before === null) return;
    if ((await this.#sysctl.read(SRC_VALID_MARK)) === "1") await this.#sysctl.write(SRC_VALID_MARK, before);
    this.#srcValidMarkBefore = null;
  }

  async #planRoutes(): Promise<Change[]> {
    const table = this.#n.spec.routing.table;
    const out: Change[] = [];
    for (const f of this.#families) out.push(...planRoutes(desiredRoutes(this.#n, f), await observeRoutes(this.#runner, f, table), table));
    return out;
  }

  async #removeRoutes(): Promise<void> {
    const left = await removeRoutes(this.#runner, this.#families, this.#n.spec.routing.table);
    if (left.length > 0) this.#log.warn("left routes egressd did not add", { table: this.#n.spec.routing.table, routes: left.join("; ") });
  }

  async #planRules(): Promise<Change[]> {
    const prio = this.#n.spec.routing.rulePriority;
    const out: Change[] = [];
    for (const f of this.#families) out.push(...planRules(desiredRules(this.#n, [f]), await observeRules(this.#runner, f, prio)));
    return out;
  }

  async #removeRules(): Promise<void> {
    const left = await removeRules(this.#runner, this.#families, this.#n.spec.routing.rulePriority);
    if (left.length > 0) this.#log.warn("left rules egressd did not add", { rules: left.join("; ") });
  }

  async #planFirewall(opts: { force: boolean }): Promise<Change[]> {
    const script = renderRuleset(this.#n);
    const seen = await observeFirewall(this.#runner);
    let reason: string | null = null;
    if (opts.force) reason = seen.present ? "replace the table left by an earlier run" : "install the ruleset";
    else if (!seen.present) reason = "table inet egressd is missing";
    else if (this.#appliedRuleset !== script) reason = "the desired ruleset changed";
    else if (seen.fingerprint !== this.#appliedFingerprint) reason = "table inet egressd was modified";
    if (reason === null) return [];
    let saved: string | null = null;
    let carried: LeakCounter = { packets: 0, bytes: 0 };
    return [
      {
        component: "firewall",
        action: "apply-ruleset",
        reason,
        apply: async (run) => {
          saved = opts.force ? null : await saveRuleset(run);
          await applyRuleset(run, script);
          // The kernel counter restarts with the new table; carry the old value so the metric stays monotonic.
          if (!opts.force && seen.leak) carried = seen.leak;
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

  async #removeFirewall(): Promise<void> {
    await removeRuleset(this.#runner);
    this.#appliedRuleset = null;
    this.#appliedFingerprint = null;
  }
}
