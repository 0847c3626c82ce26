/**
 * The proxy's SOCKS5 UDP ASSOCIATE families, from the `udp` part of a proxy snapshot. Every
 * `direction` and `reason` is exported from the first scrape (at 0), so `rate()` works at once.
 *
 * The gauge is `_associations_active`, like `egressd_proxy_connections_active`: a gauge named
 * `egressd_proxy_udp_associations` beside the counter `..._associations_total` would be one
 * family name twice to an OpenMetrics parser.
 */
import { labeledFamily, scalarFamily, type MetricFamily } from "./exposition.ts";
import { RELAY_DIRECTIONS, UDP_DROP_REASONS, type UdpProxyStats } from "./sources.ts";

/** Family names of the UDP metrics. */
export const PROXY_UDP_METRICS = {
  associationsActive: "egressd_proxy_udp_associations_active",
  associationsTotal: "egressd_proxy_udp_associations_total",
  datagrams: "egressd_proxy_udp_datagrams_total",
  bytes: "egressd_proxy_udp_bytes_total",
  dropped: "egressd_proxy_udp_dropped_total",
} as const;

const ZERO: UdpProxyStats = { associationsActive: 0, associationsTotal: 0, datagrams: {}, bytes: {}, dropped: {} };

/** Renders the UDP counters (all zeros when `udp` is absent). Pure. */
export function udpFamilies(udp: UdpProxyStats | undefined): MetricFamily[] {
  const M = PROXY_UDP_METRICS;
  const u = udp ?? ZERO;
  return [
    scalarFamily(M.associationsActive, "SOCKS5 UDP associations open now.", "gauge", u.associationsActive),
    scalarFamily(M.associationsTotal, "SOCKS5 UDP associations opened.", "counter", u.associationsTotal),
    labeledFamily(M.datagrams, "UDP datagrams relayed; upstream is client to destination, downstream destination to client.", "counter", "direction", RELAY_DIRECTIONS.map((d) => [d, u.datagrams[d] ?? 0])),
    labeledFamily(M.bytes, "UDP payload bytes relayed (without the SOCKS5 header), by direction.", "counter", "direction", RELAY_DIRECTIONS.map((d) => [d, u.bytes[d] ?? 0])),
    labeledFamily(M.dropped, "UDP datagrams dropped, by reason.", "counter", "reason", UDP_DROP_REASONS.map((r) => [r, u.dropped[r] ?? 0])),
  ];
}
