/**
 * The proxy's families, from a {@link ProxySource} snapshot. Every `result` and `direction` is
 * exported from the first scrape (at 0), so `rate()` and `increase()` work before the first event.
 */
import type { MetricFamily } from "./exposition.ts";
import { histogramSamples } from "./histogram.ts";
import type { Collector } from "./registry.ts";
import { PROXY_RESULTS, RELAY_DIRECTIONS, type ProxySource, type ProxyStats } from "./sources.ts";

/** Family names of the proxy metrics. */
export const PROXY_METRICS = {
  connectionsActive: "egressd_proxy_connections_active",
  connectionsTotal: "egressd_proxy_connections_total",
  relayedBytes: "egressd_proxy_relayed_bytes_total",
  connectDuration: "egressd_proxy_connect_duration_seconds",
} as const;

/** Renders a proxy snapshot. Pure. */
export function proxyFamilies(stats: ProxyStats): MetricFamily[] {
  const M = PROXY_METRICS;
  return [
    {
      name: M.connectionsActive,
      help: "SOCKS5 connections open now.",
      type: "gauge",
      samples: [{ name: M.connectionsActive, labels: [], value: stats.connectionsActive }],
    },
    {
      name: M.connectionsTotal,
      help: "SOCKS5 connections finished, by result.",
      type: "counter",
      samples: PROXY_RESULTS.map((result) => ({
        name: M.connectionsTotal,
        labels: [["result", result]],
        value: stats.connectionsTotal[result] ?? 0,
      })),
    },
    {
      name: M.relayedBytes,
      help: "Payload bytes relayed; upstream is client to destination, downstream destination to client.",
      type: "counter",
      samples: RELAY_DIRECTIONS.map((direction) => ({
        name: M.relayedBytes,
        labels: [["direction", direction]],
        value: stats.relayedBytes[direction] ?? 0,
      })),
    },
    {
      name: M.connectDuration,
      help: "Time from a CONNECT request to its outbound connection being established.",
      type: "histogram",
      samples: histogramSamples(M.connectDuration, [], stats.connectDuration),
    },
  ];
}

/** The `proxy` collector. */
export function proxyCollector(source: ProxySource): Collector {
  return { name: "proxy", collect: async () => proxyFamilies(await source.stats()) };
}
