/**
 * The proxy's families, from a {@link ProxySource} snapshot. Every `result` and `direction` is
 * exported from the first scrape (at 0), so `rate()` and `increase()` work before the first event.
 */
import { labeledFamily, scalarFamily, type MetricFamily } from "./exposition.ts";
import { histogramSamples } from "./histogram.ts";
import type { Collector } from "./registry.ts";
import { PROXY_RESULTS, RELAY_DIRECTIONS, type ProxySource, type ProxyStats } from "./sources.ts";

/** Family names of the proxy metrics. */
export const PROXY_METRICS = {
  connectionsActive: "egressd_proxy_connections_active",
  connectionsTotal: "egressd_proxy_connections_total",
  relayedBytes: "egressd_proxy_relayed_bytes_total",
  connectDuration: "egressd_proxy_connect_duration_seconds",
  acceptPaused: "egressd_proxy_accept_paused_total",
  handshakeEvictions: "egressd_proxy_handshake_evictions_total",
} as const;

/** Renders a proxy snapshot. Pure. */
export function proxyFamilies(stats: ProxyStats): MetricFamily[] {
  const M = PROXY_METRICS;
  return [
    scalarFamily(M.connectionsActive, "SOCKS5 connections open now.", "gauge", stats.connectionsActive),
    labeledFamily(
      M.connectionsTotal,
      "SOCKS5 connections finished, by result.",
      "counter",
      "result",
      PROXY_RESULTS.map((r) => [r, stats.connectionsTotal[r] ?? 0]),
    ),
    labeledFamily(
      M.relayedBytes,
      "Payload bytes relayed; upstream is client to destination, downstream destination to client.",
      "counter",
      "direction",
      RELAY_DIRECTIONS.map((d) => [d, stats.relayedBytes[d] ?? 0]),
    ),
    {
      name: M.connectDuration,
      help: "Time from a CONNECT request to its outbound connection being established.",
      type: "histogram",
      samples: histogramSamples(M.connectDuration, [], stats.connectDuration),
    },
    scalarFamily(M.acceptPaused, "Times the proxy stopped accepting because it was about to run out of file descriptors.", "counter", stats.acceptPauses ?? 0),
    scalarFamily(
      M.handshakeEvictions,
      "Connections still in their handshake closed to make room for a new client (handshakes may hold half of maxConnections).",
      "counter",
      stats.handshakeEvictions ?? 0,
    ),
  ];
}

/** The `proxy` collector. */
export function proxyCollector(source: ProxySource): Collector {
  return { name: "proxy", collect: async () => proxyFamilies(await source.stats()) };
}
