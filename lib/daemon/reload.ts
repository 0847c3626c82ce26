/**
 * A reload: re-read and validate the config, then apply the difference to the running daemon as one
 * transaction. RELOADING=1 -> read and validate the config -> standby exits (exit-reload.ts) ->
 * proxy.update -> metrics move -> READY=1. A step that fails undoes the earlier ones, so the old
 * config stays in force whole. Live proxied connections are never touched. Other host changes are
 * refused (specs.ts reloadRefusal). The daemon (daemon.ts) serializes reloads and owns the state
 * this reads and sets, through {@link Reloadable}.
 */
import { ConfigError, shownProblems } from "../config/errors.ts";
import type { Config } from "../config/schema.ts";
import type { HostManager } from "../host/manager.ts";
import { Transaction } from "../host/transaction.ts";
import type { Logger } from "../log/logger.ts";
import type { ProxyServer, ProxyServerOptions } from "../proxy/server.ts";
import { reloadExits } from "./exit-reload.ts";
import type { FailoverLoop } from "./failover.ts";
import { explainListenFailure } from "./listen-failure.ts";
import type { DaemonMetrics } from "./metrics.ts";
import type { Notifier } from "./notify.ts";
import type { ReconcilePasses } from "./passes.ts";
import { proxyOptions, reloadRefusal } from "./specs.ts";
import { type DaemonState, type DaemonView, statusLine } from "./views.ts";

/** What a reload did. */
export interface ReloadOutcome {
  ok: boolean;
  /** Why it was refused, when not ok. */
  error?: string;
  /** What changed, when ok: "proxy", "metrics", "host". */
  changed?: string[];
}

/** The daemon's live state a reload reads and, when it succeeds, sets. */
export interface Reloadable {
  readonly state: DaemonState;
  readonly configPath: string;
  /** The config in force; set to the new one when the reload is applied. */
  config: Config;
  /** Reads and validates the config file again; throws `ConfigError`. */
  load(path: string): Config;
  readonly host: HostManager;
  readonly uid: number;
  readonly log: Logger;
  readonly notify: Notifier;
  readonly view: DaemonView;
  readonly proxy: ProxyServer | null;
  proxyOptions: ProxyServerOptions | null;
  readonly metrics: DaemonMetrics | null;
  readonly passes: ReconcilePasses;
  failover: FailoverLoop | null;
  /** Whether the failover loop holds an exit down; the proxy's options carry it. */
  readonly exitDown: (exit: string) => boolean;
  /** A failover loop over `c`'s exits, keeping what `carry` knew of the exits that stayed. */
  newFailover(c: Config, carry: FailoverLoop): FailoverLoop;
  /** The `STATUS=` line last sent; cleared so the next refresh sends it. */
  lastStatusLine: string;
}

/**
 * Re-reads the config and applies the difference. An invalid config, or one that cannot be applied,
 * is refused with the old one left in force; the outcome says which, and why.
 */
export async function applyReload(d: Reloadable): Promise<ReloadOutcome> {
  if (d.state !== "running") return { ok: false, error: `daemon is ${d.state}` };
  d.notify.reloading();
  d.log.info("reloading", { config: d.configPath });
  const old = d.config;
  let next: Config;
  try {
    next = d.load(d.configPath);
  } catch (e) {
    const error = e instanceof ConfigError ? shownProblems(e.problems).map((p) => p.message).join("; ") : e instanceof Error ? e.message : String(e);
    d.log.error("reload refused: the new config is invalid; the old one stays in force", { error });
    d.notify.ready(`reload refused: ${error}`);
    return { ok: false, error };
  }
  // The same rollback lib/host uses: each step stacks its inverse; a failure undoes them newest first.
  const undo = new Transaction({ log: d.log });
  const changed: string[] = [];
  try {
    // Refuse what cannot change in place (see the module comment) before touching anything.
    const refusal = reloadRefusal(old, next);
    if (refusal !== null) throw new Error(refusal);
    // Before the proxy: a listener the new config pins to a new exit needs that exit's address.
    if (await reloadExits(d.host, { old, next }, {
      uid: d.uid, undo, failover: d.failover, log: d.log, reset: (from, why) => d.proxy?.resetFrom(from, why) ?? 0,
    })) changed.push("exits");
    const nextProxy = { ...(await proxyOptions(next)), log: d.log, exitDown: d.exitDown };
    const oldProxy = d.proxyOptions!;
    d.proxy!.update(nextProxy);
    d.proxyOptions = nextProxy;
    undo.defer("reload proxy", async () => {
      d.proxy!.update(oldProxy);
      d.proxyOptions = oldProxy;
    });
    changed.push("proxy");
    if (next.metrics.listen !== old.metrics.listen) {
      await d.metrics!.listen(next.metrics.listen);
      undo.defer("reload metrics", () => d.metrics!.listen(old.metrics.listen));
      changed.push("metrics");
    }
    d.metrics?.configure(next);
  } catch (caught) {
    const e = explainListenFailure(caught, next);
    const error = e instanceof Error ? e.message : String(e);
    await undo.rollback();
    d.log.error("reload failed; the old config stays in force", { error });
    d.notify.ready(`reload failed: ${error}`);
    return { ok: false, error };
  }
  d.config = next;
  // daemon.teardownOnStop and drainTimeout are read at stop, so they apply as they are.
  if (next.daemon.reconcileInterval !== old.daemon.reconcileInterval) {
    d.passes.start(next.daemon.reconcileInterval);
    changed.push("daemon.reconcileInterval");
  }
  if (d.failover && (changed.includes("exits") || JSON.stringify([next.failover, next.exits?.map((e) => e.probe)]) !== JSON.stringify([old.failover, old.exits?.map((e) => e.probe)]))) {
    // New exits or probe settings: a new loop, which keeps what the old one knew of the exits that stayed.
    await d.failover.stop();
    d.failover = d.newFailover(next, d.failover);
    d.failover.start();
    changed.push("failover");
  }
  if (next.daemon.logLevel !== old.daemon.logLevel) {
    d.log.warn("daemon.logLevel changes at the next restart (or use --log-level)", { logLevel: next.daemon.logLevel });
  }
  d.log.info("reloaded", { changed: changed.join(",") });
  d.lastStatusLine = "";
  d.notify.ready(await statusLine(d.view));
  return { ok: true, changed };
}
