/**
 * The daemon: the only module that knows the host manager, the proxy and the metrics together.
 *
 * ```
 * start():  host up (tunnel, routes, rules, nft) -> proxy listeners -> metrics -> control socket
 *           -> reconcile loop + watchdog -> READY=1
 * reload(): RELOADING=1 -> read and validate the config -> proxy.update -> metrics move -> READY=1.
 *           A step that fails undoes the earlier ones, so the old config stays in force whole. Live
 *           proxied connections are never touched. Host changes (tunnel, exit, routing) are refused:
 *           they need a restart. Applying them in place would take the rules, routes and nft table
 *           down and bring new ones up, and in between the proxy's packets would leave by the WAN
 *           (seen in the lab); lib/host would first need to move to a new spec without that gap.
 * stop():   STOPPING=1 -> stop accepting, drain -> metrics, control off -> host down (teardownOnStop)
 * ```
 * It does not parse argv or install signal handlers (lib/cli/run.ts does), so tests drive it directly.
 */
import { ConfigError } from "../config/errors.ts";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { HostManager, type HostManagerOptions } from "../host/manager.ts";
import { validateSpec } from "../host/spec.ts";
import { startReconcileLoop, type ReconcileLoop, type ReconcileResult } from "../host/reconcile.ts";
import type { WgDump } from "../host/wgdump.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import { createEgressdMetrics, type EgressdMetrics } from "../metrics/egressd.ts";
import { MetricsServer } from "../metrics/server.ts";
import type { Readiness, ReconcileObject, WgPeerSample } from "../metrics/sources.ts";
import { ListenError } from "../proxy/errors.ts";
import { ProxyServer, type ProxyServerOptions } from "../proxy/server.ts";
import { ControlServer } from "./control.ts";
import { explainListenFailure } from "./listen-failure.ts";
import { createNotifier, type Notifier } from "./notify.ts";
import { hostChanges, hostSpec, missingRouting, proxyOptions } from "./specs.ts";
import { type DaemonStatus, formatAge, HANDSHAKE_WARN_S } from "./status.ts";
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

/** What a reload did. */
export interface ReloadOutcome {
  ok: boolean;
  /** Why it was refused, when not ok. */
  error?: string;
  /** What changed, when ok: "proxy", "metrics", "host". */
  changed?: string[];
}

/** Maps lib/host's components onto the `object` label of `egressd_reconcile_repairs_total`. */
const REPAIR_OBJECT: Record<string, ReconcileObject> = {
  interface: "interface",
  wireguard: "interface",
  endpoint: "interface",
  routes: "route",
  rules: "rule",
  firewall: "nft",
  sysctl: "sysctl",
};

/** How long a `wg show dump` is reused by readiness and status, ms. */
const DUMP_MAX_AGE_MS = 1000;

/**
 * Control commands that exist only with `EGRESSD_TEST_HOOKS=1` in the environment, for the tests
 * that prove the watchdog stops when the event loop is stuck: `block-event-loop {ms}` spins the
 * loop synchronously, as a runaway computation would.
 */
function testHooks(log: Logger): Record<string, (req: Record<string, unknown>) => unknown> {
  return {
    "block-event-loop": (req) => {
      const ms = Math.min(Number(req.ms ?? 0), 120_000);
      log.warn("test hook: blocking the event loop", { ms });
      setTimeout(() => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          // spin: nothing else on the loop runs meanwhile
        }
      }, 0);
      return { blockingMs: ms };
    },
  };
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
  #metrics: EgressdMetrics | null = null;
  #metricsServer: MetricsServer | null = null;
  #control: ControlServer | null = null;
  #loop: ReconcileLoop | null = null;
  #watchdog: Watchdog | null = null;
  #state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  #lastPassAt = Date.now();
  #lastPass: { at: number; durationMs: number; ok: boolean; error: string | null; repairs: { object: string; detail: string }[] } | null = null;
  #repairs: Record<string, number> = {};
  #dump: { at: number; value: Promise<WgDump | null> } | null = null;
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

  #newHost(config: Config): HostManager {
    return new HostManager(hostSpec(config, this.#uid), {
      ...this.#opts.host,
      log: this.#log,
      onRepair: (r) => {
        const object = REPAIR_OBJECT[r.component] ?? "interface";
        this.#repairs[object] = (this.#repairs[object] ?? 0) + 1;
        this.#log.warn("repaired drift", { component: r.component, action: r.action, reason: r.reason });
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
      ...(this.#opts.env ?? process.env).EGRESSD_TEST_HOOKS === "1" ? testHooks(this.#log) : {},
    }, { log: this.#log });
    try {
      await this.#control.start();
    } catch (e) {
      this.#state = "stopped";
      this.#resolveStopped();
      throw e;
    }
    if (this.#stopRequested) return;
    this.#notify.status("bringing up the tunnel");
    try {
      const up = await this.#host.up();
      this.#log.info("tunnel configured", { interface: c.interface.name, implementation: up.implementation, changes: up.changes.length });
      if (this.#stopRequested) return;
      this.#proxyOptions = { ...(await proxyOptions(c)), log: this.#log };
      this.#proxy = new ProxyServer(this.#proxyOptions);
      await this.#startProxy(this.#proxy, this.#opts.bindRetryMs ?? 30_000);
      if (this.#stopRequested) return;
      this.#metrics = createEgressdMetrics(this.#metricSources(), {
        build: { version: this.#opts.version, runtime: this.#opts.runtime ?? `bun ${Bun.version}` },
        log: this.#log,
        latestHandshakeDelay: c.metrics.latestHandshakeDelay,
        friendlyNames: { [c.exit.publicKey]: c.exit.name },
      });
      if (c.metrics.listen) {
        this.#metricsServer = new MetricsServer({ registry: this.#metrics.registry, readiness: { ready: () => this.ready() }, log: this.#log });
        await this.#metricsServer.listen(c.metrics.listen);
      }
    } catch (caught) {
      // A busy or missing listen address is named by its config field, and its holder if known.
      const e = explainListenFailure(caught, c);
      this.#log.error("start failed; undoing", { error: e });
      await this.#teardown({ drainMs: 0, host: true });
      this.#state = "stopped";
      this.#resolveStopped();
      throw e;
    }
    const line = await this.#statusLine();
    // From here on nothing waits, so a stop cannot slip in between this check and READY=1.
    if (this.#stopRequested) return;
    this.#loop = this.#startLoop(c.daemon.reconcileInterval);
    this.#watchdog = startWatchdog({
      env: this.#opts.env,
      ping: () => this.#notify.watchdog(),
      healthy: () => this.#health(),
      onUnhealthy: (reason) => this.#log.error("unhealthy; withholding the watchdog ping", { reason }),
    });
    this.#state = "running";
    this.#notify.ready(line);
    this.#log.info("ready", { listen: this.#proxy!.listening.join(","), metrics: this.#metricsServer?.url ?? "off" });
  }

  /** Starts the reconcile timer; a failed pass is logged by #pass and retried at the next tick. */
  #startLoop(intervalMs: number): ReconcileLoop {
    return startReconcileLoop({ reconcile: () => this.#pass() }, { intervalMs, log: this.#log, onError: () => {} });
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

  /** One reconcile pass, timed and recorded for status, watchdog and metrics. */
  async #pass(): Promise<ReconcileResult> {
    const started = Date.now();
    try {
      const r = await this.#host.reconcile();
      this.#lastPass = {
        at: Date.now(),
        durationMs: r.durationMs,
        ok: true,
        error: null,
        repairs: r.repairs.map((x) => ({ object: x.component, detail: `${x.action} (${x.reason})` })),
      };
      if (r.repairs.length) this.#dump = null;
      return r;
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      this.#lastPass = { at: Date.now(), durationMs: Date.now() - started, ok: false, error, repairs: [] };
      this.#log.error("reconcile failed", { error });
      throw e;
    } finally {
      this.#lastPassAt = Date.now();
      void this.#refreshStatusLine();
    }
  }

  /** Runs a reconcile pass now (control `reconcile`). */
  async reconcileNow(): Promise<DaemonStatus["reconcile"]["last"]> {
    await this.#pass();
    return this.#lastPass;
  }

  /** Null when healthy, else why: the reconcile loop must keep finishing passes. */
  #health(): string | null {
    if (this.#state !== "running") return null;
    const limit = Math.max(60_000, 5 * this.#config.daemon.reconcileInterval);
    const since = Date.now() - this.#lastPassAt;
    return since > limit ? `no reconcile pass has finished for ${Math.round(since / 1000)} s` : null;
  }

  /** `wg show dump`, reused for up to a second. */
  #wgDump(): Promise<WgDump | null> {
    const now = Date.now();
    if (!this.#dump || now - this.#dump.at > DUMP_MAX_AGE_MS) {
      const value = this.#host.wireguardDump().catch(() => null);
      this.#dump = { at: now, value };
    }
    return this.#dump.value;
  }

  #metricSources() {
    return {
      wireguard: {
        dump: async (): Promise<WgPeerSample[]> => {
          const d = await this.#host.wireguardDump();
          if (!d) return [];
          return d.peers.map((p) => ({
            interface: this.#config.interface.name,
            publicKey: p.publicKey,
            endpoint: p.endpoint,
            allowedIps: p.allowedIps,
            latestHandshake: p.latestHandshake,
            rxBytes: p.rxBytes,
            txBytes: p.txBytes,
          }));
        },
      },
      proxy: {
        stats: () => {
          const s = this.#proxy!.stats;
          return {
            connectionsActive: s.connectionsActive,
            connectionsTotal: s.connectionsTotal,
            relayedBytes: { upstream: s.bytesClientToTarget, downstream: s.bytesTargetToClient },
            connectDuration: { bounds: s.connectDuration.bounds, counts: s.connectDuration.counts, sum: s.connectDuration.sum },
          };
        },
      },
      tunnel: {
        state: async () => {
          const d = await this.#wgDump();
          const h = this.#host.status();
          return {
            up: Boolean(d && this.#exitPeer(d)),
            implementation: h.implementation ?? undefined,
            endpointReresolutions: h.endpointReresolutions,
          };
        },
      },
      reconcile: {
        stats: () => ({ runs: this.#host.status().reconcileRuns, repairs: { ...this.#repairs } }),
      },
      leakGuard: {
        counters: async () => (await this.#host.leakCounter()) ?? { packets: 0, bytes: 0 },
      },
    };
  }

  /**
   * Readiness: a recent handshake, the last reconcile pass clean, every listener bound.
   *
   * A clean pass is one that succeeded and found nothing to repair. After a pass that repaired drift
   * (a deleted interface, a missing rule), readiness stays 503 until the next pass finds the host as
   * it should be, so an outage is visible for at least one reconcile interval. Without that, a
   * deleted interface is re-created and handshakes again within milliseconds of the pass that notices
   * it, the only not-ready window is the gap before that pass (partly hidden by the 1 s dump cache),
   * and a probe polling every 50 ms missed the outage in 5 of 12 trials in the lab.
   */
  async ready(): Promise<Readiness> {
    if (this.#state !== "running") return { ok: false, reason: `daemon is ${this.#state}` };
    const d = await this.#wgDump();
    if (!d) return { ok: false, reason: `interface ${this.#config.interface.name} is missing` };
    const peer = this.#exitPeer(d);
    if (!peer) return { ok: false, reason: "the exit peer is not configured" };
    const age = peer.latestHandshake > 0 ? Date.now() / 1000 - peer.latestHandshake : Infinity;
    if (age > HANDSHAKE_WARN_S) {
      return { ok: false, reason: peer.latestHandshake ? `latest handshake ${Math.round(age)} s ago` : "no handshake with the exit yet" };
    }
    if (this.#lastPass && !this.#lastPass.ok) return { ok: false, reason: `last reconcile failed: ${this.#lastPass.error}` };
    const repairs = this.#lastPass?.repairs ?? [];
    if (repairs.length > 0) {
      const first = `${repairs[0]!.object}: ${repairs[0]!.detail}`;
      const more = repairs.length > 1 ? ` and ${repairs.length - 1} more` : "";
      return { ok: false, reason: `the last reconcile pass repaired drift (${first}${more}); waiting for a clean pass` };
    }
    const want = this.#config.proxy.listen.length;
    const have = this.#proxy?.listening.length ?? 0;
    if (have < want) return { ok: false, reason: `${have} of ${want} proxy listeners bound` };
    return { ok: true };
  }

  /** The configured exit among the interface's peers (not simply the first: a stranger may lead). */
  #exitPeer(d: WgDump): WgDump["peers"][number] | undefined {
    return d.peers.find((p) => p.publicKey === this.#config.exit.publicKey);
  }

  async #statusLine(): Promise<string> {
    const d = await this.#wgDump();
    const peer = d ? this.#exitPeer(d) : undefined;
    // Whole minutes only: a line that changed every second would resend STATUS= on every pass.
    const age = peer?.latestHandshake ? Math.max(0, Math.floor(Date.now() / 1000 - peer.latestHandshake)) : 0;
    const hs = !d ? "tunnel interface missing"
      : !peer?.latestHandshake ? "no handshake yet"
      : age < 60 ? "handshake under a minute ago"
      : `handshake ${formatAge(age - (age % 60))} ago`;
    const active = this.#proxy?.stats.connectionsActive ?? 0;
    return `${hs}; ${active} active connection${active === 1 ? "" : "s"}`;
  }

  /** Sends STATUS= when the line changed. */
  async #refreshStatusLine(): Promise<void> {
    if (this.#state !== "running") return;
    const line = await this.#statusLine();
    if (line === this.#lastStatusLine) return;
    this.#lastStatusLine = line;
    this.#notify.status(line);
  }

  /** Everything `egressd status` shows. Runs `wg`, `ip` and `nft` reads. */
  async status(): Promise<DaemonStatus> {
    const c = this.#config;
    const h = this.#host.status();
    const obs = await this.#host.observe().catch(() => null);
    const dump = obs?.wireguard ?? null;
    const s = this.#proxy?.stats;
    const leak = await this.#host.leakCounter().catch(() => null);
    // Each rule and route, not just "some": one missing rule or the kill switch's route is a hole.
    const missing = obs ? missingRouting(validateSpec(hostSpec(c, this.#uid)), h.families, obs) : null;
    const refusals: Record<string, number> = {};
    for (const [k, v] of Object.entries(s?.connectionsTotal ?? {})) if (k !== "ok") refusals[k] = v;
    return {
      version: this.#opts.version,
      pid: process.pid,
      startedAt: this.#startedAt,
      now: Date.now(),
      tunnel: {
        interface: c.interface.name,
        implementation: h.implementation,
        up: Boolean(obs?.link && obs.link.up),
        publicKey: dump?.interface.publicKey ?? null,
        listenPort: dump?.interface.listenPort ?? null,
        addresses: c.interface.addresses,
      },
      peers: (dump?.peers ?? []).map((p) => ({
        name: p.publicKey === c.exit.publicKey ? c.exit.name : "(unknown)",
        isExit: p.publicKey === c.exit.publicKey,
        publicKey: p.publicKey,
        endpoint: p.endpoint,
        allowedIps: [...p.allowedIps],
        latestHandshake: p.latestHandshake,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        persistentKeepalive: p.persistentKeepalive ?? 0,
      })),
      proxy: {
        listeners: [...(this.#proxy?.listening ?? [])],
        active: s?.connectionsActive ?? 0,
        total: Object.values(s?.connectionsTotal ?? {}).reduce((a, b) => a + b, 0),
        bytesUp: s?.bytesClientToTarget ?? 0,
        bytesDown: s?.bytesTargetToClient ?? 0,
        refusals,
      },
      routing: {
        fwmark: c.routing.fwmark,
        table: c.routing.table,
        rulesInPlace: missing !== null && missing.length === 0 && this.#lastPass?.ok !== false,
        missing: missing ?? [],
        firewallInPlace: Boolean(obs?.firewall.present),
      },
      killSwitch: { enabled: c.routing.killSwitch, droppedPackets: leak?.packets ?? 0, droppedBytes: leak?.bytes ?? 0 },
      reconcile: { runs: h.reconcileRuns, repairs: Object.values(this.#repairs).reduce((a, b) => a + b, 0), last: this.#lastPass },
      metrics: { listen: this.#metricsServer?.url ?? null },
    };
  }

  /**
   * Re-reads the config and applies the difference (SIGHUP, control `reload`). An invalid config,
   * or one that cannot be applied, is refused with the old one left in force.
   */
  reload(): Promise<ReloadOutcome> {
    const run = this.#busy.then(() => this.#reload());
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #reload(): Promise<ReloadOutcome> {
    if (this.#state !== "running") return { ok: false, error: `daemon is ${this.#state}` };
    this.#notify.reloading();
    this.#log.info("reloading", { config: this.#configPath });
    const old = this.#config;
    let next: Config;
    try {
      next = (this.#opts.load ?? ((p: string) => loadConfig(p, { env: this.#opts.env, warn: (m) => this.#log.warn(m) })))(this.#configPath);
    } catch (e) {
      const error = e instanceof ConfigError ? e.problems.map((p) => p.message).join("; ") : e instanceof Error ? e.message : String(e);
      this.#log.error("reload refused: the new config is invalid; the old one stays in force", { error });
      this.#notify.ready(`reload refused: ${error}`);
      return { ok: false, error };
    }
    const undo: (() => Promise<void>)[] = [];
    const changed: string[] = [];
    try {
      // Refuse what cannot change in place before touching anything.
      if (next.control.socket !== old.control.socket) throw new Error("control.socket cannot change on reload; restart egressd");
      // Host changes too (see the module comment). A restart is safe: no proxy runs while the host
      // state is down.
      const hostFields = hostChanges(old, next);
      if (hostFields.length > 0) {
        throw new Error(`${hostFields.join(", ")} cannot change on reload without taking the tunnel's rules and kill switch down; restart egressd to apply ${hostFields.length === 1 ? "it" : "them"}`);
      }
      const nextProxy = { ...(await proxyOptions(next)), log: this.#log };
      const oldProxy = this.#proxyOptions!;
      this.#proxy!.update(nextProxy);
      this.#proxyOptions = nextProxy;
      undo.push(async () => {
        this.#proxy!.update(oldProxy);
        this.#proxyOptions = oldProxy;
      });
      changed.push("proxy");
      if (next.metrics.listen !== old.metrics.listen) {
        await this.#moveMetrics(next.metrics.listen);
        undo.push(() => this.#moveMetrics(old.metrics.listen));
        changed.push("metrics");
      }
      this.#metrics?.configure({ latestHandshakeDelay: next.metrics.latestHandshakeDelay, friendlyNames: { [next.exit.publicKey]: next.exit.name } });
    } catch (caught) {
      const e = explainListenFailure(caught, next);
      const error = e instanceof Error ? e.message : String(e);
      for (const step of undo.reverse()) {
        await step().catch((u) => this.#log.error("undoing a reload step failed", { error: u }));
      }
      this.#log.error("reload failed; the old config stays in force", { error });
      this.#notify.ready(`reload failed: ${error}`);
      return { ok: false, error };
    }
    this.#config = next;
    // daemon.teardownOnStop and drainTimeout are read at stop, so they apply as they are.
    if (next.daemon.reconcileInterval !== old.daemon.reconcileInterval) {
      this.#loop?.stop();
      this.#loop = this.#startLoop(next.daemon.reconcileInterval);
      changed.push("daemon.reconcileInterval");
    }
    if (next.daemon.logLevel !== old.daemon.logLevel) {
      this.#log.warn("daemon.logLevel changes at the next restart (or use --log-level)", { logLevel: next.daemon.logLevel });
    }
    this.#log.info("reloaded", { changed: changed.join(",") });
    this.#lastStatusLine = "";
    this.#notify.ready(await this.#statusLine());
    return { ok: true, changed };
  }

  async #moveMetrics(listen: string | null): Promise<void> {
    if (listen === null) {
      await this.#metricsServer?.close();
      this.#metricsServer = null;
      return;
    }
    if (!this.#metricsServer) {
      this.#metricsServer = new MetricsServer({ registry: this.#metrics!.registry, readiness: { ready: () => this.ready() }, log: this.#log });
    }
    await this.#metricsServer.listen(listen);
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
    this.#loop?.stop();
    const quiet = (what: string) => (e: unknown) => this.#log.error(`stopping ${what} failed`, { error: e });
    await this.#proxy?.stop({ drainMs: opts.drainMs }).catch(quiet("the proxy"));
    await this.#metricsServer?.close().catch(quiet("metrics"));
    await this.#control?.stop().catch(quiet("the control socket"));
    if (opts.host) await this.#host.down().catch(quiet("the host state"));
  }
}
