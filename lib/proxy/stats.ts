/**
 * Counters the proxy keeps for the metrics endpoint: plain numbers, read at scrape time.
 *
 * Does not render Prometheus text and never holds a client address (labels must stay bounded);
 * lib/metrics turns this into `egressd_proxy_*` families.
 */

import { createUdpStats, type UdpStats } from "./udp-stats.ts";

/** Every way a client connection can end; exactly these are the `result` label values. */
export const CONNECTION_RESULTS = [
  "ok",
  "refused",
  "unreachable",
  "timeout",
  "denied_client",
  "denied_destination",
  "auth_failed",
  "protocol_error",
  "local_resource",
] as const;

/** One of {@link CONNECTION_RESULTS}. */
export type ConnectionResult = (typeof CONNECTION_RESULTS)[number];

/**
 * The `protocol` label of connections and bytes: SOCKS5, HTTP CONNECT, HTTP forward proxying, and
 * `other` for connections that never got as far as a protocol (a client refused at accept, one
 * that closed before its first byte, a SOCKS4 client).
 */
export const PROXY_PROTOCOLS = ["socks5", "http_connect", "http", "other"] as const;

/** One of {@link PROXY_PROTOCOLS}. */
export type ProxyProtocol = (typeof PROXY_PROTOCOLS)[number];

/** The counters of one protocol; they add up to the totals of {@link ProxyStats}. */
export interface ProtocolStats {
  readonly connectionsTotal: Record<ConnectionResult, number>;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
}

/** The counters of `label`'s protocol; a label outside {@link PROXY_PROTOCOLS} counts as `other`. */
export function protocolStats(stats: ProxyStats, label: string | undefined): ProtocolStats {
  return stats.byProtocol[(PROXY_PROTOCOLS as readonly string[]).includes(label ?? "") ? (label as ProxyProtocol) : "other"];
}

/** Counts one connection that ended with `result`, in the totals and under its protocol. */
export function countConnection(stats: ProxyStats, label: string | undefined, result: ConnectionResult): void {
  stats.connectionsTotal[result]++;
  protocolStats(stats, label).connectionsTotal[result]++;
}

function zeroResults(): Record<ConnectionResult, number> {
  const out = {} as Record<ConnectionResult, number>;
  for (const r of CONNECTION_RESULTS) out[r] = 0;
  return out;
}

/** Upper bounds, in seconds, of the connect-duration histogram buckets (Prometheus defaults). */
export const CONNECT_DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * A Prometheus-style histogram as plain data (the shape lib/metrics' `HistogramSnapshot` takes).
 *
 * `counts[i]` is the number of observations `v` with `bounds[i-1] < v <= bounds[i]` (not
 * cumulative); the last entry, `counts[bounds.length]`, counts those above the highest bound.
 */
export interface Histogram {
  /** Upper bounds in seconds, strictly increasing; `+Inf` is implied. */
  readonly bounds: readonly number[];
  /** Per-bucket counts; `bounds.length + 1` entries. */
  readonly counts: number[];
  /** Number of observations. */
  count: number;
  /** Sum of observations, in seconds. */
  sum: number;
}

/** Creates an empty histogram over `bounds` (seconds, ascending). */
export function createHistogram(bounds: readonly number[] = CONNECT_DURATION_BUCKETS): Histogram {
  return { bounds, counts: new Array<number>(bounds.length + 1).fill(0), count: 0, sum: 0 };
}

/** Records one observation, in seconds. */
export function observe(h: Histogram, seconds: number): void {
  h.count++;
  h.sum += seconds;
  let i = 0;
  while (i < h.bounds.length && seconds > h.bounds[i]!) i++;
  h.counts[i]!++;
}

/**
 * The proxy's counters. All counters only grow, except the gauges `connectionsActive` and
 * `pendingAbandonedDials`.
 */
export interface ProxyStats {
  /** Gauge: admitted client connections open now (handshaking, dialing or relaying). */
  connectionsActive: number;
  /** Client connections by how they ended (or, for `ok`, by how they started relaying). */
  readonly connectionsTotal: Record<ConnectionResult, number>;
  /**
   * Connections closed at accept because `maxConnections` were already open, or half of them
   * were in their handshake and none of those had been at it for long.
   */
  connectionsOverLimit: number;
  /**
   * Handshakes closed to make room for a new client, because connections still in their
   * handshake held their whole share of `maxConnections` (also counted as `protocol_error`).
   */
  handshakeEvictions: number;
  /** Times the listeners stopped accepting because the process was about to run out of fds. */
  acceptPauses: number;
  /** Failed RFC 1929 logins (also counted in `connectionsTotal.auth_failed`). */
  authFailures: number;
  /** Handshakes that hit `handshakeTimeoutMs` (also counted as `protocol_error`). */
  handshakeTimeouts: number;
  /** Bytes read from clients and sent on to targets (`direction="upstream"`). */
  bytesClientToTarget: number;
  /** Bytes read from targets and sent back to clients (`direction="downstream"`). */
  bytesTargetToClient: number;
  /** Seconds from the CONNECT request to an established target connection, for successful dials. */
  readonly connectDuration: Histogram;
  /**
   * Gauge: outbound connects that lost a Happy Eyeballs race or timed out and are still pending in
   * the kernel. Each is aborted at once (dial.ts), so this drops back to 0 within a poll; it stays
   * up only when a pending socket's fd could not be learnt, until the kernel gives up.
   */
  pendingAbandonedDials: number;
  /** The addresses being listened on now, `host:port` (IPv6 in brackets). */
  listeners: string[];
  /** Connections and bytes split by protocol; each adds up to the totals above. */
  readonly byProtocol: Readonly<Record<ProxyProtocol, ProtocolStats>>;
  /** SOCKS5 UDP ASSOCIATE: associations, datagrams, drops. */
  readonly udp: UdpStats;
}

/** Creates zeroed stats. */
export function createStats(): ProxyStats {
  const byProtocol = {} as Record<ProxyProtocol, ProtocolStats>;
  for (const p of PROXY_PROTOCOLS) byProtocol[p] = { connectionsTotal: zeroResults(), bytesClientToTarget: 0, bytesTargetToClient: 0 };
  return {
    connectionsActive: 0,
    connectionsTotal: zeroResults(),
    connectionsOverLimit: 0,
    handshakeEvictions: 0,
    acceptPauses: 0,
    authFailures: 0,
    handshakeTimeouts: 0,
    bytesClientToTarget: 0,
    bytesTargetToClient: 0,
    connectDuration: createHistogram(),
    pendingAbandonedDials: 0,
    listeners: [],
    byProtocol,
    udp: createUdpStats(),
  };
}
