/**
 * The UDP ASSOCIATE counters, shared by every association of a proxy and read by the metrics: plain
 * numbers, and the bounded list of drop reasons. Kept apart from the relay so that the proxy's stats
 * (stats.ts) need not import the relay and what it imports.
 */

/** Why a datagram was dropped: the `reason` label of the drop counter. */
export const UDP_DROP_REASONS = ["policy", "fragment", "foreign_source", "over_limit", "malformed", "unresolved", "send_failed"] as const;
/** One of {@link UDP_DROP_REASONS}. */
export type UdpDropReason = (typeof UDP_DROP_REASONS)[number];

/** Counters shared by every association of a proxy; read by the metrics. */
export interface UdpStats {
  associationsActive: number;
  associationsTotal: number;
  /** Client to destination. */
  datagramsUp: number;
  bytesUp: number;
  /** Destination to client. */
  datagramsDown: number;
  bytesDown: number;
  readonly drops: Record<UdpDropReason, number>;
}

/** Fresh zeroed {@link UdpStats}. */
export function createUdpStats(): UdpStats {
  const drops = {} as Record<UdpDropReason, number>;
  for (const r of UDP_DROP_REASONS) drops[r] = 0;
  return { associationsActive: 0, associationsTotal: 0, datagramsUp: 0, bytesUp: 0, datagramsDown: 0, bytesDown: 0, drops };
}
