/**
 * The proxy's families, from a {@link ProxySource} snapshot. Every `result` and `direction` is
 * exported from the first scrape (at 0), so `rate()` and `increase()` work before the first event.
 */
import { labeledFamily, scalarFamily, type MetricFamily } from "./exposition.ts";
import { histogramSamples } from "./histogram.ts";
import { udpFamilies } from "./proxy_udp.ts";
import type { Collector } from "./registry.ts";
import { PROXY_PROTOCOLS, PROXY_RESULTS, RELAY_DIRECTIONS, type ProxySource, type ProxyStats } from "./sources.ts";

/** Family names of the proxy metrics. */
export const PROXY_METRICS = {
  connectionsActive: "egressd_proxy_connections_active",
  connectionsTotal: "egressd_proxy_connections_total",
  relayedBytes: "egressd_proxy_relayed_bytes_total",
  connectDuration: "egressd_proxy_connect_duration_seconds",
  acceptPaused: "egressd_proxy_accept_paused_total",
  handshakeEvictions: "egressd_proxy_handshake_evictions_total",
} as const;

/**
 * `name{protocol=..., <label>=...}` for every protocol and label value, from `byProtocol`; or
 * `name{<label>=...}` from the totals when the snapshot has no split.
 */
function splitFamily(
  name: string,
  help: string,
  label: string,
  values: readonly string[],
  total: (v: string) => number,
  perProtocol: ((p: (typeof PROXY_PROTOCOLS)[number], v: string) => number) | null,
): MetricFamily {
  if (!perProtocol) return labeledFamily(name, help, "counter", label, values.map((v) => [v, total(v)]));
  const samples = PROXY_PROTOCOLS.flatMap((p) => values.map((v) => ({ name, labels: [["protocol", p], [label, v]] as [string, string][], value: perProtocol(p, v) })));
  return { name, help, type: "counter", samples };
}

/** Renders a proxy snapshot. Pure. */
export function proxyFamilies(stats: ProxyStats): MetricFamily[] {
  const M = PROXY_METRICS;
  const by = stats.byProtocol;
  return [
    scalarFamily(M.connectionsActive, "Proxy connections (SOCKS5 and HTTP) open now.", "gauge", stats.connectionsActive),
    splitFamily(
      M.connectionsTotal,
      "Proxy connections finished, by protocol and result; each HTTP request forwarded on a kept-alive connection counts once.",
      "result",
      PROXY_RESULTS,
      (r) => stats.connectionsTotal[r as keyof typeof stats.connectionsTotal] ?? 0,
      by ? (p, r) => by[p]?.connectionsTotal[r as keyof typeof stats.connectionsTotal] ?? 0 : null,
    ),
    splitFamily(
      M.relayedBytes,
      "Payload bytes relayed; upstream is client to destination, downstream destination to client.",
      "direction",
      RELAY_DIRECTIONS,
      (d) => stats.relayedBytes[d as keyof typeof stats.relayedBytes] ?? 0,
      by ? (p, d) => by[p]?.relayedBytes[d as keyof typeof stats.relayedBytes] ?? 0 : null,
    ),
    {
      name: M.connectDuration,
      help: "Time from a CONNECT request (or a forwarded HTTP request) to its outbound connection being established.",
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
    ...udpFamilies(stats.udp),
  ];
}

/** The `proxy` collector. */
export function proxyCollector(source: ProxySource): Collector {
  return { name: "proxy", collect: async () => proxyFamilies(await source.stats()) };
}
