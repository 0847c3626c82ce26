/**
 * The host manager: the one object the daemon uses to bring the host side of egressd up, keep it
 * right, observe it, and take it down.
 *
 * Everything it does is built from ONE ordered list of host parts ({@link buildParts}, part.ts):
 * ```
 * one exit:      sysctl → interface → routes → rules → firewall
 * several exits: sysctl → [interface → routes] per exit → shared table (routes:active) → rules → firewall
 * up():        checkHost, then each part in order: plan("up"), apply   (addInterface, addRoutes, ...)
 * down():      each part in reverse order: remove()                     (removeFirewall, ...)
 * reconcile(): each part in order: plan("reconcile"), apply, as one transaction
 * ```
 * `up()` applies each part's changes as a {@link Transaction}; a part that fails halfway undoes its own
 * changes, then the parts already finished are removed, newest first (one transaction of removals).
 * Each plan converges rather than blindly adds, so `up()` after a crash (our stale rules, routes and
 * table still present) ends with exactly one copy of everything. Routes come before rules and the
 * firewall comes last, so marked traffic is never routed before the kill switch exists. `down()` removes
 * exactly what we own (found by interface alias, rule priority + protocol, route table + protocol, and
 * our nft table), treats "already gone" as success, keeps going past failures, and reports them together.
 *
 * All operations are serialized: a timer-driven `reconcile()` never runs during `up()` or `down()`.
 * What only reads the host (`observe()`, `drift()`, `status()`) is observe.ts, called from here.
 * The manager does not own the timer (see {@link startReconcileLoop}) and knows nothing about the proxy.
 */
import { createRunner, type Runner } from "../exec/runner.ts";
import { silentLogger, type Logger } from "../log/logger.ts";
import type { Repair } from "./change.ts";
import { ExitChangeRefusedError, HostNotUpError, HostSetupError, TeardownError, type StepFailure } from "./errors.ts";
import { applyExitChange } from "./exit-apply.ts";
import { isEmptyPlan, planExitChange } from "./exit-change.ts";
import type { Resolver } from "./endpoint.ts";
import type { LeakCounter } from "./nftables.ts";
import { tagExit, type Drift, type HostContext, type HostPart } from "./part.ts";
import { hostStatus, observeDrift, observeHost } from "./observe.ts";
import { checkExit, checkHost, detectFamilies } from "./preflight.ts";
import { buildParts, type BuildPartsOptions, type HostParts } from "./parts.ts";
import { validateExits, type ExitLayout } from "./exits.ts";
import { runPass, type ReconcileResult } from "./reconcile.ts";
import type { Family } from "./routing.ts";

export { buildParts, type BuildPartsOptions, type ExitParts, type HostParts } from "./parts.ts";
export type { ExitChangeResult, ExitObservation, ExitStatus, HostObservation, HostStatus, UpResult } from "./report.ts";
import type { ExitChangeResult, HostObservation, HostStatus, UpResult } from "./report.ts";
import type { HostSpec, NormalizedSpec } from "./spec.ts";
import { procSysctl, type SysctlAccess } from "./sysctl.ts";
import { Transaction } from "./transaction.ts";
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

/** See the module comment. */
export class HostManager {
  #n: NormalizedSpec;
  #layout: ExitLayout;
  readonly #ctx: HostContext;
  readonly #runner: Runner;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #onRepair: ((r: Repair) => void) | undefined;
  readonly #historySize: number;
  readonly #parentDeathSignal: boolean;
  #parts: HostParts;
  readonly #partOptions: Pick<BuildPartsOptions, "ctx" | "sysctl" | "interface" | "active">;

  #state: "down" | "up" = "down";
  #families: Family[] = [4, 6];
  #lock: Promise<unknown> = Promise.resolve();
  #recent: Repair[] = [];
  #byComponent: Record<string, number> = {};
  #lastReconcileAt: number | null = null;
  #reconcileRuns = 0;
  #lastReconcileError: string | null = null;
  /** Index of the exit the shared table routes through (several exits); null: none. */
  #active: number | null = 0;

  /** Validates the spec (throws `SpecError` / `UnsafeUidError`); changes nothing yet. */
  constructor(spec: HostSpec, opts: HostManagerOptions = {}) {
    this.#layout = validateExits(spec);
    this.#n = this.#layout.shared;
    this.#log = opts.log ?? silentLogger;
    this.#runner = opts.runner ?? createRunner({ log: this.#log });
    this.#now = opts.now ?? Date.now;
    this.#onRepair = opts.onRepair;
    this.#historySize = opts.repairHistory ?? 100;
    this.#parentDeathSignal = opts.parentDeathSignal ?? true;
    this.#ctx = { runner: this.#runner, log: this.#log, now: this.#now, families: () => this.#families };
    this.#partOptions = {
      ctx: this.#ctx,
      active: () => (this.#active === null ? null : this.#layout.exits[this.#active]!),
      sysctl: opts.sysctl ?? procSysctl(),
      interface: {
        resolve: opts.resolve,
        readSecret: opts.readSecret,
        reresolveIntervalMs: opts.reresolveIntervalMs,
        startTimeoutMs: opts.userspaceStartTimeoutMs,
        parentDeathSignal: this.#parentDeathSignal,
      },
    };
    this.#parts = buildParts(this.#layout.exits, { ...this.#partOptions, shared: this.#n });
  }

  /** The rendered nft script for this spec (what `applyFirewall` feeds to `nft -f -`). */
  get ruleset(): string {
    return this.#parts.firewall.ruleset;
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
      const built = new Transaction({ log: this.#log });
      const steps: [string, () => Promise<void>, HostPart | null][] = [
        ["checkHost", () => this.#checkHost(), null],
        ...this.#parts.ordered.map((part): [string, () => Promise<void>, HostPart] => [
          part.steps.add,
          async () => {
            // A part that fails halfway undoes its own changes; the finished parts are removed below.
            const tx = new Transaction({ runner: this.#runner, log: this.#log, now: this.#now });
            changes.push(...(await tx.applyAll(tagExit(part, await part.plan("up")))));
          },
          part,
        ]),
      ];
      for (const [step, run, part] of steps) {
        try {
          await run();
        } catch (err) {
          const cause = err instanceof Error ? err : new Error(String(err));
          this.#log.error("host step failed; rolling back", { step, error: cause.message });
          throw new HostSetupError(step, cause, await built.rollback());
        }
        if (part) built.defer(part.steps.add, () => part.remove());
      }
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
      if (this.#state === "down") this.#families = [...(await detectFamilies(this.#runner))];
      for (const part of [...this.#parts.ordered].reverse()) {
        try {
          await part.remove();
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          this.#log.error("teardown step failed", { step: part.steps.remove, error: error.message });
          failures.push({ step: part.steps.remove, error });
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
    return this.#exclusive(() => observeHost(this.#parts, { runner: this.#runner, layout: this.#layout, families: this.#families }));
  }

  /** The exits, in priority order, as validated (exits.ts): name, interface, addresses, table. */
  get exits(): readonly NormalizedSpec[] {
    return this.#layout.exits;
  }

  /** True with several exits (failover): {@link setActive} switches the shared table. */
  get failover(): boolean {
    return this.#layout.failover;
  }

  /** The exit the shared table routes through now; null when none is. */
  get active(): string | null {
    return this.#active === null ? null : this.#layout.exits[this.#active]!.spec.exit.name;
  }

  /**
   * Points the shared table at exit `name`, or at none (`null`: only the unreachable default stays, so
   * new connections fail instead of leaving by the home connection). Each moved route is one
   * `ip route replace`, atomic; the kill switch's route is never removed. The changes are recorded like
   * repairs (component `routes`, action `switch-route`...). On failure the switch is rolled back and
   * the previous exit stays active. Before `up()` it only records the choice. With one exit, only that
   * exit or null is accepted and the table is not touched (its routes are the exit's own; health is the
   * kill switch's job).
   */
  setActive(name: string | null): Promise<readonly Repair[]> {
    return this.#exclusive(async () => {
      const index = name === null ? null : this.#layout.exits.findIndex((e) => e.spec.exit.name === name);
      if (index === -1) throw new TypeError(`setActive: no exit named "${name}"`);
      if (!this.#layout.failover || index === this.#active) return [];
      const before = this.#active;
      this.#active = index;
      if (this.#state !== "up") return [];
      const tx = new Transaction({ runner: this.#runner, log: this.#log, now: this.#now });
      try {
        const repairs = await tx.applyAll(await this.#parts.active!.plan());
        for (const r of repairs) this.#record(r);
        return repairs;
      } catch (err) {
        this.#active = before;
        const failures = await tx.rollback();
        for (const f of failures) this.#log.error("undo failed after a failed exit switch", { step: f.step, error: f.error.message });
        throw err;
      }
    });
  }

  /**
   * Moves the running host to `spec`, whose exits may differ from the running ones only by exits that
   * are not active, added at the end, removed from the end, or replaced at their index
   * (exit-change.ts); everything else must be equal. The new exits' interfaces, tables, source rules
   * and nft coverage come up, the removed ones' go (exit-apply.ts); the active exit's state and the
   * shared table are not touched. Throws `SpecError` for an invalid spec, {@link ExitChangeRefusedError}
   * naming what is refused and why, and `ExitChangeError` after rolling a failed step back; in each case
   * the running exits stay as they were. Before `up()` it only adopts the spec.
   */
  changeExits(spec: HostSpec): Promise<ExitChangeResult> {
    return this.#exclusive(async () => {
      const layout = validateExits(spec);
      const decision = planExitChange(this.#layout, layout, { active: this.active });
      if (!decision.ok) throw new ExitChangeRefusedError(decision.reason);
      const { plan } = decision;
      const result = { added: plan.add.map((e) => e.name), removed: plan.remove.map((e) => e.name), changes: [] as Repair[] };
      if (isEmptyPlan(plan)) return result;
      const keep = new Map(plan.kept.map((i) => [i, this.#parts.exits[i]!]));
      const next = buildParts(layout.exits, { ...this.#partOptions, shared: layout.shared, reuse: { exits: keep, firewall: this.#parts.firewall } });
      if (this.#state === "up") {
        result.changes = await applyExitChange(this.#parts, next, { plan, runner: this.#runner, log: this.#log, now: this.#now, families: this.#families });
      }
      this.#layout = layout;
      this.#n = layout.shared;
      this.#parts = next;
      this.#log.info("exits changed", { added: result.added.join(",") || "none", removed: result.removed.join(",") || "none", exits: layout.exits.map((e) => e.spec.exit.name).join(",") });
      return result;
    });
  }

  /** What a reconcile pass would repair now, part by part, changing nothing. Empty on a healthy host. */
  drift(): Promise<Drift[]> {
    return this.#exclusive(() => observeDrift(this.#parts));
  }

  /**
   * `wg show <if> dump` of one exit's interface (default: the first exit's), parsed; null when the
   * interface does not exist. For metrics.
   */
  wireguardDump(exit?: string): Promise<WgDump | null> {
    const e = exit === undefined ? this.#parts.exits[0] : this.#parts.exits.find((x) => x.name === exit);
    return e ? e.interface.dump() : Promise.resolve(null);
  }

  /**
   * The leak guard's counter, monotonic for the life of this manager (re-applying the table resets the
   * kernel counter; the firewall part carries the old value forward). Null when the table is absent.
   */
  leakCounter(): Promise<LeakCounter | null> {
    return this.#parts.firewall.leakCounter();
  }

  /** State, implementation, pid, endpoint resolution and repair counts. Runs no command. */
  status(): HostStatus {
    return hostStatus(this.#parts, {
      state: this.#state,
      families: this.#families,
      failover: this.#layout.failover,
      active: this.#layout.failover ? this.active : null,
      reconcileRuns: this.#reconcileRuns,
      lastReconcileAt: this.#lastReconcileAt,
      lastReconcileError: this.#lastReconcileError,
      repairsByComponent: this.#byComponent,
    });
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
    try {
      const result = await runPass(this.#parts.ordered, this.#runner, { log: this.#log, now: this.#now, onRepair: (r) => this.#record(r) });
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
    const wg = this.#parts.exits[0]!.interface.status();
    return { implementation: wg.implementation ?? "kernel", pid: wg.pid, families: [...this.#families], changes };
  }

  async #checkHost(): Promise<void> {
    const facts = await checkHost(this.#runner, this.#n, { parentDeathSignal: this.#parentDeathSignal, ruleCount: this.#layout.ruleCount });
    this.#families = [...facts.families];
    // Each exit's own interface name and (with several) own table must be free of anything not ours.
    if (this.#layout.failover) for (const e of this.#layout.exits) await checkExit(this.#runner, e, this.#families);
  }
}
