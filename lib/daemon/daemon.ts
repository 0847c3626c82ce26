/**
 * The daemon: the only module that knows the host manager, the proxy and the metrics together.
 *
 * ```
 * start():  host up (tunnel, routes, rules, nft) -> proxy listeners -> metrics -> control socket
 *           -> reconcile loop + watchdog -> READY=1
 * reload(): RELOADING=1 -> read and validate the config -> proxy.update -> metrics move -> READY=1,
 *           one at a time, each a transaction that leaves the old config whole if it fails (reload.ts).
 * stop():   STOPPING=1 -> stop accepting, drain -> metrics, control off -> host down (teardownOnStop)
 * ```
 * It does not parse argv or install signal handlers (lib/cli/run.ts does), so tests drive it directly.
 * This file is the lifecycle only: what the daemon shows (readiness, `STATUS=`, `egressd status`) is
 * views.ts, the metric sources and the metrics listener are metrics.ts, the one cache of the
 * fork-costly host reads is host-reads.ts, the reconcile loop and its record of passes is passes.ts,
 * and applying a reload is reload.ts.
 */
import { loadConfig } from "../config/load.ts";
import { FAILOVER_DEFAULTS, type Config } from "../config/schema.ts";
import { HostManager, type HostManagerOptions } from "../host/manager.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import { ListenError } from "../proxy/errors.ts";
import { ProxyServer, type ProxyServerOptions } from "../proxy/server.ts";
import { ControlServer } from "./control.ts";
import { HostReads } from "./host-reads.ts";
import { explainListenFailure } from "./listen-failure.ts";
import { DaemonMetrics, repairObject } from "./metrics.ts";
import { createNotifier, type Notifier } from "./notify.ts";
import { ReconcilePasses } from "./passes.ts";
import { applyReload, type Reloadable, type ReloadOutcome } from "./reload.ts";
import { exitSources, hostSpec, proxyOptions, sourceAddressList } from "./specs.ts";
import { FailoverLoop } from "./failover.ts";
import type { DaemonStatus } from "./status.ts";
import { collectStatus, type DaemonState, type DaemonView, readiness, statusLine } from "./views.ts";
import { startWatchdog, type Watchdog } from "./watchdog.ts";

/** Options for {@link Daemon}. Every dependency is optional. */
export interface DaemonOptions {
  /** egressd's version, for status and `egressd_build_info`. */
  version: string;
  /** Runtime label for `egressd_build_info`. Default `bun <version>`. */
  runtime?: string;
  /** Default {@link silentLogger}. */
  log?: Logger;
  /** Default: `createNotifier()` over `$NOTIFY_SOCKET`. */
  notifier?: Notifier;
  /** Environment for `$WATCHDOG_USEC` and `$CREDENTIALS_DIRECTORY`. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** The uid whose traffic is marked. Default `process.getuid()`. */
  uid?: number;
  /** Passed to every HostManager (runner, sysctl access, ...). Default: the real host. */
  host?: Omit<HostManagerOptions, "log" | "onRepair">;
  /** Loads the config file again on reload. Default {@link loadConfig}. */
  load?: (path: string) => Config;
  /** How long to keep retrying a proxy address that is not on the host yet, at start, ms. Default 30000. */
  bindRetryMs?: number;
}

/** See the module comment. */
export class Daemon {
  readonly #configPath: string;
  readonly #opts: DaemonOptions;
  readonly #log: Logger;
  readonly #notify: Notifier;
  readonly #uid: number;
  readonly #startedAt = Date.now();
  #config: Config;
  readonly #host: HostManager;
  #proxy: ProxyServer | null = null;
  #proxyOptions: ProxyServerOptions | null = null;
  #metrics: DaemonMetrics | null = null;
  #control: ControlServer | null = null;
  readonly #passes: ReconcilePasses;
  /** Several exits: health probing and the choice of the active exit. */
  #failover: FailoverLoop | null = null;
  #watchdog: Watchdog | null = null;
  readonly #reads: HostReads;
  readonly #view: DaemonView;
  readonly #reloadable: Reloadable;
  #state: DaemonState = "new";
  #repairs: Record<string, number> = {};
  #lastStatusLine = "";
  #stopped: Promise<void>;
  #resolveStopped!: () => void;
  #busy: Promise<unknown> = Promise.resolve();
  /** Set by stop() while start() runs: start() stops bringing things up at its next step. */
  #stopRequested = false;
  /** Settles when start() has returned or thrown. */
  #startSettled: Promise<void> = Promise.resolve();

  /** Validates nothing by itself: `config` is an already validated config from `configPath`. */
  constructor(configPath: string, config: Config, opts: DaemonOptions) {
    this.#configPath = configPath;
    this.#config = config;
    this.#opts = opts;
    this.#log = opts.log ?? silentLogger;
    this.#notify = opts.notifier ?? createNotifier({ env: opts.env, onError: (e) => this.#log.warn("sd_notify failed", { error: e }) });
    this.#uid = opts.uid ?? process.getuid?.() ?? 0;
    this.#host = this.#newHost(config);
    this.#reads = new HostReads(this.#host);
    this.#passes = new ReconcilePasses({ host: this.#host, reads: this.#reads, log: this.#log, onPassEnd: () => void this.#refreshStatusLine() });
    this.#view = this.#newView();
    this.#reloadable = this.#newReloadable();
    this.#stopped = new Promise((resolve) => (this.#resolveStopped = resolve));
  }

  /** Resolves when the daemon has stopped (after {@link stop}, a control `stop`, or a failed start). */
  get stopped(): Promise<void> {
    return this.#stopped;
  }

  /** The config in force. */
  get config(): Config {
    return this.#config;
  }

  /** The live state the read-only views (views.ts, metrics.ts) see. */
  #newView(): DaemonView {
    const self = this;
    return {
      get state() { return self.#state; },
      get config() { return self.#config; },
      version: this.#opts.version,
      uid: this.#uid,
      startedAt: this.#startedAt,
      host: this.#host,
      reads: this.#reads,
      get proxy() { return self.#proxy; },
      get lastPass() { return self.#passes.lastPass; },
      get passRunning() { return self.#passes.passRunning; },
      lastReadiness: null,
      get repairs() { return self.#repairs; },
      get metricsUrl() { return self.#metrics?.url ?? null; },
      get failover() { return self.#failover; },
    };
  }

  /** The live state a reload (reload.ts) reads and sets. */
  #newReloadable(): Reloadable {
    const self = this;
    return {
      get state() { return self.#state; },
      configPath: this.#configPath,
      get config() { return self.#config; },
      set config(c) { self.#config = c; },
      load: (p) => (this.#opts.load ?? ((p: string) => loadConfig(p, { env: this.#opts.env, warn: (m) => this.#log.warn(m) })))(p),
      host: this.#host,
      uid: this.#uid,
      log: this.#log,
      notify: this.#notify,
      view: this.#view,
      get proxy() { return self.#proxy; },
      get proxyOptions() { return self.#proxyOptions; },
      set proxyOptions(o) { self.#proxyOptions = o; },
      get metrics() { return self.#metrics; },
      passes: this.#passes,
      get failover() { return self.#failover; },
      set failover(f) { self.#failover = f; },
      exitDown: this.#exitDown,
      newFailover: (c, carry) => this.#newFailover(c, carry),
      get lastStatusLine() { return self.#lastStatusLine; },
      set lastStatusLine(l) { self.#lastStatusLine = l; },
    };
  }

  #newHost(config: Config): HostManager {
    return new HostManager(hostSpec(config, this.#uid), {
      ...this.#opts.host,
      log: this.#log,
      onRepair: (r) => {
        const object = repairObject(r.component);
        this.#repairs[object] = (this.#repairs[object] ?? 0) + 1;
        this.#log.warn("repaired drift", { component: r.component, action: r.action, reason: r.reason, ...(r.exit !== undefined ? { exit: r.exit } : {}) });
      },
    });
  }

  /**
   * Brings everything up and sends READY=1. On failure, undoes what it did (the host manager rolls
   * its own steps back) and rethrows; the caller exits non-zero.
   */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`Daemon.start() called when ${this.#state}`);
    this.#state = "starting";
    const settled = Promise.withResolvers<void>();
    this.#startSettled = settled.promise;
    try {
      await this.#bringUp();
    } finally {
      settled.resolve();
    }
  }

  /**
   * start()'s steps. After each one that waits, a stop requested meanwhile (SIGTERM during start-up)
   * ends it early: nothing more is bound and READY=1 is not sent; stop() tears down what was done.
   */
  async #bringUp(): Promise<void> {
    const c = this.#config;
    // The control socket comes first: it is how a second egressd notices the first and stops before
    // touching host state that belongs to the running one.
    this.#control = new ControlServer(c.control.socket, {
      status: () => this.status(),
      reload: () => this.reload(),
      reconcile: () => this.reconcileNow(),
      stop: () => {
        setTimeout(() => void this.stop(), 0);
        return { stopping: true };
      },
    }, { log: this.#log });
    await this.#control.start().catch((e: unknown) => this.#failedStart(e));
    if (this.#stopRequested) return;
    this.#notify.status("bringing up the tunnel");
    try {
      const up = await this.#host.up();
      this.#log.info("tunnel configured", { interface: c.interface.name, implementation: up.implementation, changes: up.changes.length });
      if (this.#stopRequested) return;
      this.#failover = this.#host.failover ? this.#newFailover(c) : null;
      this.#proxyOptions = { ...(await proxyOptions(c)), log: this.#log, exitDown: this.#exitDown };
      this.#proxy = new ProxyServer(this.#proxyOptions);
      await this.#startProxy(this.#proxy, this.#opts.bindRetryMs ?? 30_000);
      if (this.#stopRequested) return;
      this.#metrics = new DaemonMetrics(this.#view, { version: this.#opts.version, runtime: this.#opts.runtime, log: this.#log });
      await this.#metrics.listen(c.metrics.listen);
      this.#failover?.start();
    } catch (caught) {
      // A busy or missing listen address is named by its config field, and its holder if known.
      const e = explainListenFailure(caught, c);
      this.#log.error("start failed; undoing", { error: e });
      await this.#teardown({ drainMs: 0, host: true });
      this.#failedStart(e);
    }
    const line = await statusLine(this.#view);
    // From here on nothing waits, so a stop cannot slip in between this check and READY=1.
    if (this.#stopRequested) return;
    this.#passes.start(c.daemon.reconcileInterval);
    this.#watchdog = startWatchdog({
      env: this.#opts.env,
      ping: () => this.#notify.watchdog(),
      healthy: () => this.#health(),
      onUnhealthy: (reason) => this.#log.error("unhealthy; withholding the watchdog ping", { reason }),
    });
    this.#state = "running";
    this.#notify.ready(line);
    this.#log.info("ready", { listen: this.#proxy!.listening.join(","), metrics: this.#metrics?.url ?? "off" });
  }

  /** Whether the failover loop holds an exit down: connections pinned to it then fail at once. */
  readonly #exitDown = (exit: string): boolean => this.#failover?.isDown(exit) ?? false;

  /** The failover loop over the config's exits; an exit that goes down has its connections reset. */
  #newFailover(c: Config, carry?: FailoverLoop): FailoverLoop {
    const settings = c.failover ?? FAILOVER_DEFAULTS;
    const sources = exitSources(c);
    return new FailoverLoop({
      exits: c.exits!.map((e) => ({
        name: e.name,
        publicKey: e.publicKey,
        addresses: sourceAddressList(sources.get(e.name)),
        target: e.probe ?? settings.probe.target,
      })),
      settings,
      host: this.#host,
      dump: (exit) => this.#reads.dump(exit),
      log: this.#log,
      ...(carry ? { carry } : {}),
      onExitDown: (exit) => {
        const n = this.#proxy?.resetFrom(sourceAddressList(sources.get(exit)), `exit ${exit} went down`) ?? 0;
        this.#log.warn("reset connections through a dead exit", { exit, connections: n });
      },
    });
  }

  /** start() gave up: the daemon is stopped, and `e` goes to start()'s caller. */
  #failedStart(e: unknown): never {
    this.#state = "stopped";
    this.#resolveStopped();
    throw e;
  }

  /** Binds the proxy, retrying an address that is not on the host yet (EADDRNOTAVAIL) for a while. */
  async #startProxy(proxy: ProxyServer, retryMs: number): Promise<void> {
    const deadline = Date.now() + retryMs;
    for (;;) {
      try {
        proxy.start();
        return;
      } catch (e) {
        if (!(e instanceof ListenError && e.code === "EADDRNOTAVAIL") || Date.now() >= deadline || this.#stopRequested) throw e;
        this.#log.warn("proxy address not on this host yet; retrying", { address: e.address });
        await Bun.sleep(1000);
      }
    }
  }

  /** Runs a reconcile pass now (control `reconcile`). */
  async reconcileNow(): Promise<DaemonStatus["reconcile"]["last"]> {
    await this.#passes.pass();
    return this.#passes.lastPass;
  }

  /** Null when healthy, else why: the reconcile loop must keep finishing passes. */
  #health(): string | null {
    if (this.#state !== "running") return null;
    return this.#passes.stalled(this.#config.daemon.reconcileInterval);
  }

  /** Readiness, as `/readyz` answers it. */
  ready() {
    return readiness(this.#view);
  }

  /** Sends STATUS= when the line changed. */
  async #refreshStatusLine(): Promise<void> {
    if (this.#state !== "running") return;
    const line = await statusLine(this.#view);
    if (line === this.#lastStatusLine) return;
    this.#lastStatusLine = line;
    this.#notify.status(line);
  }

  /** Everything `egressd status` shows. Runs `wg`, `ip` and `nft` reads. */
  status(): Promise<DaemonStatus> {
    return collectStatus(this.#view);
  }

  /**
   * Re-reads the config and applies the difference (SIGHUP, control `reload`). An invalid config,
   * or one that cannot be applied, is refused with the old one left in force.
   */
  reload(): Promise<ReloadOutcome> {
    const run = this.#busy.then(() => applyReload(this.#reloadable));
    this.#busy = run.catch(() => undefined);
    return run;
  }

  /**
   * Stops accepting, drains live connections for up to `daemon.drainTimeout`, and (with
   * `daemon.teardownOnStop`) removes every host change. Safe to call more than once.
   */
  async stop(): Promise<void> {
    if (this.#state === "stopping" || this.#state === "stopped" || this.#stopRequested) return this.#stopped;
    if (this.#state === "starting") {
      // Let start() finish its current step (a half-done host.up() is worse than a finished one),
      // then tear down whatever it got to. It sends no READY=1 after this STOPPING=1.
      this.#stopRequested = true;
      this.#notify.stopping();
      this.#log.info("stop requested during start-up; stopping after the current step");
      await this.#startSettled;
      // start() may have failed and undone itself meanwhile (TypeScript still sees "starting" here).
      if ((this.#state as string) === "stopped") return this.#stopped;
    } else {
      this.#notify.stopping();
    }
    this.#state = "stopping";
    this.#log.info("stopping", { drainMs: this.#config.daemon.drainTimeout });
    await this.#busy;
    await this.#teardown({ drainMs: this.#config.daemon.drainTimeout, host: this.#config.daemon.teardownOnStop });
    this.#state = "stopped";
    this.#log.info("stopped");
    this.#resolveStopped();
  }

  async #teardown(opts: { drainMs: number; host: boolean }): Promise<void> {
    this.#watchdog?.stop();
    this.#passes.stop();
    await this.#failover?.stop();
    const quiet = (what: string) => (e: unknown) => this.#log.error(`stopping ${what} failed`, { error: e });
    await this.#proxy?.stop({ drainMs: opts.drainMs }).catch(quiet("the proxy"));
    await this.#metrics?.close().catch(quiet("metrics"));
    await this.#control?.stop().catch(quiet("the control socket"));
    if (opts.host) await this.#host.down().catch(quiet("the host state"));
  }
}
