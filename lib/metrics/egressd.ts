/**
 * egressd's registry, assembled: which collectors exist, and in which order. The daemon calls
 * {@link createEgressdMetrics} once, hands `registry` to a `MetricsServer`, and calls `configure()`
 * on reload.
 *
 * It caches nothing: the sources that fork (`wg`, `nft`) are cached by their owner, because the
 * same `wg show dump` also answers readiness and `STATUS=`, and the owner knows when the host changed
 * (lib/daemon/host-reads.ts keeps that one cache and drops it after a reconcile repair).
 *
 * Order of the exposition: the WireGuard families first (as the exporter served them), then
 * egressd's own, then `process_*`, then `egressd_scrape_collector_success`.
 *
 * The daemon's wiring (the sources over lib/host and lib/proxy, the listener) is
 * lib/daemon/metrics.ts.
 */
import { silentLogger, type Logger } from "../log/logger.ts";
import { buildInfoCollector } from "./build_info.ts";
import { leakGuardCollector } from "./leak_guard.ts";
import { processCollector, type ProcessOptions } from "./process.ts";
import { proxyCollector } from "./proxy.ts";
import { readinessCollector, type ReadinessSource } from "./readiness.ts";
import { reconcileCollector } from "./reconcile.ts";
import { Registry } from "./registry.ts";
import type { BuildInfo, LeakGuardSource, ProxySource, ReconcileSource, TunnelSource, WireguardSource } from "./sources.ts";
import { tunnelCollector } from "./tunnel.ts";
import { exitsCollector, type ExitsSource } from "./exits.ts";
import { WireguardCollector, type WireguardRenderOptions } from "./wireguard.ts";

/** The sources to read; a missing one leaves its families out (e.g. `egressd demo` without a proxy). */
export interface EgressdSources {
  wireguard?: WireguardSource;
  proxy?: ProxySource;
  tunnel?: TunnelSource;
  reconcile?: ReconcileSource;
  leakGuard?: LeakGuardSource;
  readiness?: ReadinessSource;
  /** Several exits only: the failover loop's state. */
  exits?: ExitsSource;
}

/** Name of the per-collector success gauge. */
export const COLLECTOR_SUCCESS_METRIC = "egressd_scrape_collector_success";

/** Options for {@link createEgressdMetrics}. */
export interface EgressdMetricsOptions extends WireguardRenderOptions {
  /** Labels of `egressd_build_info`. */
  build: BuildInfo;
  /** Default {@link silentLogger}. */
  log?: Logger;
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
}

/** Builds egressd's registry. See {@link EgressdMetricsOptions} for defaults. */
export function createEgressdMetrics(sources: EgressdSources, opts: EgressdMetricsOptions): EgressdMetrics {
  const log = opts.log ?? silentLogger;
  const registry = new Registry({ log, collectTimeoutMs: opts.collectTimeoutMs, successMetric: COLLECTOR_SUCCESS_METRIC });
  let wireguard: WireguardCollector | undefined;
  if (sources.wireguard) {
    const source = sources.wireguard;
    wireguard = registry.register(
      new WireguardCollector(() => source.dump(), {
        latestHandshakeDelay: opts.latestHandshakeDelay,
        friendlyNames: opts.friendlyNames,
        now: opts.now,
      }),
    );
  }
  if (sources.proxy) registry.register(proxyCollector(sources.proxy));
  if (sources.tunnel) registry.register(tunnelCollector(sources.tunnel));
  if (sources.readiness) registry.register(readinessCollector(sources.readiness));
  if (sources.reconcile) registry.register(reconcileCollector(sources.reconcile));
  if (sources.exits) registry.register(exitsCollector(sources.exits));
  if (sources.leakGuard) {
    const source = sources.leakGuard;
    registry.register(leakGuardCollector(() => source.counters()));
  }
  registry.register(buildInfoCollector(opts.build));
  if (opts.process !== false) registry.register(processCollector(opts.process ?? {}));

  return {
    registry,
    configure(next) {
      wireguard?.configure(next);
    },
  };
}
