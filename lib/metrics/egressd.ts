/**
 * egressd's registry, assembled: which collectors exist, in which order, and which sources are
 * cached. The daemon calls {@link createEgressdMetrics} once, hands `registry` to a
 * `MetricsServer`, and calls `configure()` on reload.
 *
 * Order of the exposition: the WireGuard families first (as the exporter served them), then
 * egressd's own, then `process_*`, then `egressd_scrape_collector_success`.
 *
 * Wiring, in the daemon:
 * ```ts
 * const metrics = createEgressdMetrics(
 *   { wireguard, proxy, tunnel, reconcile, leakGuard }, // adapters over lib/host and lib/proxy
 *   { build: { version, runtime: defaultRuntime() }, log,
 *     latestHandshakeDelay: cfg.metrics.latestHandshakeDelay,
 *     friendlyNames: { [cfg.exit.publicKey]: cfg.exit.name } },
 * );
 * const server = new MetricsServer({ registry: metrics.registry, readiness, log });
 * await server.listen(cfg.metrics.listen);   // start
 * metrics.configure({ ... }); await server.listen(next.metrics.listen); // reload: moves only if changed
 * await server.close();                       // stop
 * ```
 */
import { silentLogger, type Logger } from "../log/logger.ts";
import { buildInfoCollector } from "./build_info.ts";
import { cached, type Cached } from "./cache.ts";
import { leakGuardCollector } from "./leak_guard.ts";
import { processCollector, type ProcessOptions } from "./process.ts";
import { proxyCollector } from "./proxy.ts";
import { reconcileCollector } from "./reconcile.ts";
import { Registry } from "./registry.ts";
import type {
  BuildInfo,
  LeakGuardCounters,
  LeakGuardSource,
  ProxySource,
  ReconcileSource,
  TunnelSource,
  WgPeerSample,
  WireguardSource,
} from "./sources.ts";
import { tunnelCollector } from "./tunnel.ts";
import { WireguardCollector, type WireguardRenderOptions } from "./wireguard.ts";

/** The sources to read; a missing one leaves its families out (e.g. `egressd demo` without a proxy). */
export interface EgressdSources {
  wireguard?: WireguardSource;
  proxy?: ProxySource;
  tunnel?: TunnelSource;
  reconcile?: ReconcileSource;
  leakGuard?: LeakGuardSource;
}

/** Name of the per-collector success gauge. */
export const COLLECTOR_SUCCESS_METRIC = "egressd_scrape_collector_success";

/** Options for {@link createEgressdMetrics}. */
export interface EgressdMetricsOptions extends WireguardRenderOptions {
  /** Labels of `egressd_build_info`. */
  build: BuildInfo;
  /** Default {@link silentLogger}. */
  log?: Logger;
  /** How long a `wg` dump or an nft counter reading is reused, in ms. Default 1000 (the ceiling). */
  cacheMaxAgeMs?: number;
  /** Monotonic clock for the caches, in ms. Default `performance.now`. */
  monotonicNow?: () => number;
  /** Wall clock for the handshake delay, in ms. Default `Date.now`. */
  now?: () => number;
  /** Where `process_*` is read from, or false to leave it out. Default: `/proc/self`. */
  process?: ProcessOptions | false;
  /** Per-collector timeout, in ms. Default 5000 (half Prometheus' default scrape timeout). */
  collectTimeoutMs?: number;
}

/** The assembled metrics. */
export interface EgressdMetrics {
  /** Give this to `MetricsServer`. */
  readonly registry: Registry;
  /** Applies reloaded settings (`metrics.latestHandshakeDelay`, the exit's name); effective next scrape. */
  configure(opts: WireguardRenderOptions): void;
  /** Drops the cached `wg` dump and nft counters, e.g. after the interface was re-created. */
  invalidate(): void;
}

/** Builds egressd's registry. See {@link EgressdMetricsOptions} for defaults. */
export function createEgressdMetrics(sources: EgressdSources, opts: EgressdMetricsOptions): EgressdMetrics {
  const log = opts.log ?? silentLogger;
  const registry = new Registry({ log, collectTimeoutMs: opts.collectTimeoutMs, successMetric: COLLECTOR_SUCCESS_METRIC });
  const cacheOpts = { maxAgeMs: opts.cacheMaxAgeMs ?? 1000, now: opts.monotonicNow };
  const caches: Cached<unknown>[] = [];

  let wireguard: WireguardCollector | undefined;
  if (sources.wireguard) {
    const source = sources.wireguard;
    const dump = cached<readonly WgPeerSample[]>(() => source.dump(), cacheOpts);
    caches.push(dump);
    wireguard = registry.register(
      new WireguardCollector(() => dump.get(), {
        latestHandshakeDelay: opts.latestHandshakeDelay,
        friendlyNames: opts.friendlyNames,
        now: opts.now,
      }),
    );
  }
  if (sources.proxy) registry.register(proxyCollector(sources.proxy));
  if (sources.tunnel) registry.register(tunnelCollector(sources.tunnel));
  if (sources.reconcile) registry.register(reconcileCollector(sources.reconcile));
  if (sources.leakGuard) {
    const source = sources.leakGuard;
    const counters = cached<LeakGuardCounters>(() => source.counters(), cacheOpts);
    caches.push(counters);
    registry.register(leakGuardCollector(() => counters.get()));
  }
  registry.register(buildInfoCollector(opts.build));
  if (opts.process !== false) registry.register(processCollector(opts.process ?? {}));

  return {
    registry,
    configure(next) {
      wireguard?.configure(next);
    },
    invalidate() {
      for (const c of caches) c.invalidate();
    },
  };
}
