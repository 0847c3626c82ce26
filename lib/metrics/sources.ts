/**
 * What lib/metrics reads at scrape time, as narrow interfaces the daemon satisfies.
 *
 * lib/metrics imports neither lib/proxy nor lib/host: the daemon adapts their state to these
 * shapes. Every method may answer synchronously or with a promise, and is read on every scrape:
 * a source that forks a process (a `wg` dump, an `nft` counter listing) must be cached by whoever
 * provides it (lib/daemon/host-reads.ts, with cache.ts), the others should be in-memory reads.
 */
import type { HistogramSnapshot } from "./histogram.ts";

/** A value now or later. */
export type MaybePromise<T> = T | Promise<T>;

/** One peer line of `wg show <if> dump`, parsed. */
export interface WgPeerSample {
  /** Interface name, e.g. `wg-egress`. */
  readonly interface: string;
  /** The peer's public key, base64. */
  readonly publicKey: string;
  /** `host:port` as `wg` shows it, or null for `(none)`. Not exported (the exporter's default). */
  readonly endpoint: string | null;
  /** Allowed IPs as `wg` lists them, CIDR strings in `wg`'s order; empty for `(none)`. */
  readonly allowedIps: readonly string[];
  /** Unix time of the latest handshake in seconds; 0 if never. */
  readonly latestHandshake: number;
  /** `transfer-rx`: bytes received from the peer. */
  readonly rxBytes: number;
  /** `transfer-tx`: bytes sent to the peer. */
  readonly txBytes: number;
}

/** The WireGuard peers. Typically a cached `wg show <if> dump` through the exec runner. */
export interface WireguardSource {
  /** All peers of the managed interface(s). Rejects if `wg` fails (the interface is gone, ...). */
  dump(): MaybePromise<readonly WgPeerSample[]>;
}

/** How a proxied connection ended; the `result` label of `egressd_proxy_connections_total`. */
export const PROXY_RESULTS = [
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

/** One of {@link PROXY_RESULTS}. */
export type ProxyResult = (typeof PROXY_RESULTS)[number];

/**
 * Directions of relayed bytes; the `direction` label of `egressd_proxy_relayed_bytes_total`.
 * `upstream` is client to destination (what pods send), `downstream` destination to client.
 */
export const RELAY_DIRECTIONS = ["upstream", "downstream"] as const;

/** One of {@link RELAY_DIRECTIONS}. */
export type RelayDirection = (typeof RELAY_DIRECTIONS)[number];

/**
 * What a proxied connection spoke; the `protocol` label of the connection and byte counters.
 * `other`: a connection that never got as far as a protocol (refused at accept, closed before its
 * first byte, a SOCKS4 client).
 */
export const PROXY_PROTOCOLS = ["socks5", "http_connect", "http", "other"] as const;

/** One of {@link PROXY_PROTOCOLS}. */
export type ProxyProtocol = (typeof PROXY_PROTOCOLS)[number];

/** The counters of one protocol. */
export interface ProxyProtocolStats {
  readonly connectionsTotal: Readonly<Partial<Record<ProxyResult, number>>>;
  readonly relayedBytes: Readonly<Partial<Record<RelayDirection, number>>>;
}

/**
 * Why a relayed UDP datagram was dropped; the `reason` label of `egressd_proxy_udp_dropped_total`.
 * The proxy keeps the same list (lib/proxy/udp-relay.ts); a test pins that they agree.
 */
export const UDP_DROP_REASONS = ["policy", "fragment", "foreign_source", "over_limit", "malformed", "unresolved", "send_failed"] as const;

/** One of {@link UDP_DROP_REASONS}. */
export type UdpDropReason = (typeof UDP_DROP_REASONS)[number];

/** SOCKS5 UDP ASSOCIATE counters. Directions as for TCP: upstream is client to destination. */
export interface UdpProxyStats {
  /** Associations open now. */
  readonly associationsActive: number;
  readonly associationsTotal: number;
  readonly datagrams: Readonly<Partial<Record<RelayDirection, number>>>;
  /** Payload bytes (without the SOCKS5 UDP header). */
  readonly bytes: Readonly<Partial<Record<RelayDirection, number>>>;
  readonly dropped: Readonly<Partial<Record<UdpDropReason, number>>>;
}

/** The proxy's counters as of now. All counts are since the daemon started. */
export interface ProxyStats {
  /** Connections open right now (accepted and not yet closed). */
  readonly connectionsActive: number;
  /** Finished connections by result; a missing result counts as 0. */
  readonly connectionsTotal: Readonly<Partial<Record<ProxyResult, number>>>;
  /** Payload bytes relayed, by direction; a missing direction counts as 0. */
  readonly relayedBytes: Readonly<Partial<Record<RelayDirection, number>>>;
  /** Time from the CONNECT request to the outbound connection being established, in seconds. */
  readonly connectDuration: HistogramSnapshot;
  /**
   * The same connections and bytes split by protocol; when given, the families carry a
   * `protocol` label (a missing protocol counts as 0) and the totals above are not used.
   */
  readonly byProtocol?: Readonly<Partial<Record<ProxyProtocol, ProxyProtocolStats>>>;
  /** Times the listeners stopped accepting because fds were about to run out; absent counts as 0. */
  readonly acceptPauses?: number;
  /** Handshakes closed to make room for a new client; absent counts as 0. */
  readonly handshakeEvictions?: number;
  /** UDP ASSOCIATE; absent counts as all zeros. */
  readonly udp?: UdpProxyStats;
}

/** The proxy (SOCKS5 and HTTP). */
export interface ProxySource {
  /** Current counters; an in-memory read. */
  stats(): MaybePromise<ProxyStats>;
}

/** The WireGuard implementation in use. */
export type TunnelImplementation = "kernel" | "userspace";

/** The tunnel's state as of now. */
export interface TunnelState {
  /** True when the interface exists, is configured and has a peer (the daemon's definition of "up"). */
  readonly up: boolean;
  /** Which implementation runs the interface; absent before the first successful setup. */
  readonly implementation?: TunnelImplementation;
  /** How often the exit endpoint's DNS name has been re-resolved since start. */
  readonly endpointReresolutions: number;
}

/** The tunnel as lib/host manages it. */
export interface TunnelSource {
  /** An in-memory read of the last known state. */
  state(): MaybePromise<TunnelState>;
}

/** The host objects reconcile checks and repairs; the `object` label of `egressd_reconcile_repairs_total`. */
export const RECONCILE_OBJECTS = ["interface", "rule", "route", "nft", "sysctl"] as const;

/** One of {@link RECONCILE_OBJECTS}. */
export type ReconcileObject = (typeof RECONCILE_OBJECTS)[number];

/** Reconcile counters since start. */
export interface ReconcileStats {
  /** Completed reconcile passes. */
  readonly runs: number;
  /** Repairs made, by object; a missing object counts as 0. */
  readonly repairs: Readonly<Partial<Record<ReconcileObject, number>>>;
}

/** The reconcile loop. */
export interface ReconcileSource {
  /** An in-memory read. */
  stats(): MaybePromise<ReconcileStats>;
}

/** The leak guard's nft counter: marked packets dropped on their way out of a non-tunnel interface. */
export interface LeakGuardCounters {
  readonly packets: number;
  readonly bytes: number;
}

/** The leak guard's counter, read from our own nft table. */
export interface LeakGuardSource {
  /** May fork `nft`; the provider caches it (the daemon for one second). */
  counters(): MaybePromise<LeakGuardCounters>;
}

/** The answer of a readiness check. */
export interface Readiness {
  readonly ok: boolean;
  /** Why not, in one line, when `ok` is false (e.g. `no handshake for 190 s`). */
  readonly reason?: string;
}

/** Whether the daemon is ready: a recent handshake, the rules in place, the listeners bound. */
export interface ReadinessSource {
  ready(): MaybePromise<Readiness>;
}

/** Labels of `egressd_build_info`. */
export interface BuildInfo {
  /** egressd's version, e.g. `0.1.0`. */
  readonly version: string;
  /** The runtime, e.g. `bun 1.4.5`; see {@link defaultRuntime}. */
  readonly runtime: string;
}

/** `bun <version>` for the running Bun, the same string `egressd version` should print. */
export function defaultRuntime(): string {
  return `bun ${Bun.version}`;
}
