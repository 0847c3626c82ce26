/**
 * One forwarded HTTP request and its response, as the forwarder (http-forward.ts) drives it: the
 * upstream connection opened for it alone, where its request and response bodies stand, and its
 * own log line. Also the record of every destination a kept-alive client connection reached, for
 * that connection's closing line.
 *
 *   client connection (one log line: "proxy connection closed", requests=N, targets=a:80,b:80)
 *     ├─ exchange GET http://a/x ── upstream a ── "proxy http request" method target status bytes
 *     └─ exchange GET http://b/y ── upstream b ── "proxy http request" ...
 *
 * A client connection may carry requests to many hosts, so its one line cannot name them all in
 * `target`: each request gets a line of its own, and the connection's line lists the distinct
 * targets (up to {@link MAX_LISTED_TARGETS}), so that a search for a destination finds both.
 *
 * Does not parse, write to the client, or decide when an exchange ends (the forwarder does).
 */
import type { TargetLeg, TargetSocket } from "./dial.ts";
import type { BodyState } from "./http/body.ts";
import type { RequestHead } from "./http/request.ts";
import type { ClientConn, DialHandle, ProtocolCore } from "./protocol.ts";
import type { ConnectionResult } from "./stats.ts";

/** Distinct targets a connection's log line lists; more are counted (`+3 more`). */
const MAX_LISTED_TARGETS = 16;

/** Distinct targets counted beyond the listed ones, at most: past it the line says `+N or more`. */
const MAX_COUNTED_TARGETS = 256;

/** What an upstream's events go to: the forwarder, which knows the exchange in progress. */
export interface UpstreamOwner {
  upstreamData(up: Upstream, data: Uint8Array): void;
  upstreamDrained(up: Upstream): void;
  /** A FIN (`error` undefined) or a reset. */
  upstreamEnded(up: Upstream, error: Error | undefined): void;
}

/** One upstream connection, for one request: the `leg` of its socket, and its byte counts. */
export class Upstream implements TargetLeg {
  socket: TargetSocket | null = null;
  dial: DialHandle | null = null;
  /** Bytes for the upstream not yet written (before connect, or after a partial write). */
  pending: Uint8Array | null = null;
  /** Bytes written to and read from this upstream, for the request's log line. */
  sent = 0;
  received = 0;
  /** `ip:port` connected to. */
  address: string | undefined;

  constructor(readonly owner: UpstreamOwner) {}

  fromTarget(d: Uint8Array): void {
    this.received += d.length;
    this.owner.upstreamData(this, d);
  }
  targetDrained(): void {
    this.owner.upstreamDrained(this);
  }
  targetEnded(): void {
    this.owner.upstreamEnded(this, undefined);
  }
  targetClosed(error: Error | undefined): void {
    this.owner.upstreamEnded(this, error);
  }
}

/** The exchange in progress: one request and its response. */
export interface Exchange {
  readonly head: RequestHead;
  /** `host:port` as requested, for logs. */
  readonly target: string;
  readonly up: Upstream;
  /** `core.clock()` when the request head was read. */
  readonly startedAt: number;
  request: BodyState;
  /** Response bytes not yet parsed as a head. */
  responseBuf: Uint8Array | null;
  /** Null until the final (non-1xx) response head has been read. */
  response: BodyState | null;
  /** The status of the final response head the client was sent for this request, upstream's or ours. */
  status: number | null;
  /** Some of the response has reached the client: an error can no longer be a status. */
  answered: boolean;
  /** Keep the client connection after this exchange. */
  keep: boolean;
  /** The request's line has been logged. */
  logged: boolean;
}

/** How an exchange ended, for its log line. */
export interface ExchangeEnd {
  /**
   * Why the request was not forwarded: the dial's failure (`timeout`, `denied_destination`...) or
   * `protocol_error`. Default: `ok` once its upstream was connected, none while it was dialing.
   */
  readonly result?: ConnectionResult;
  /** Why it ended early (a failed dial, an upstream reset, the client leaving); none for a complete response. */
  readonly reason?: string | undefined;
}

/**
 * Logs one forwarded request's line, once: `method target address status result up down
 * duration`, where `up`/`down` are the bytes written to and read from its upstream.
 */
export function logExchange(core: ProtocolCore, conn: ClientConn, x: Exchange, end: ExchangeEnd): void {
  if (x.logged) return;
  x.logged = true;
  core.log.info("proxy http request", {
    client: conn.client,
    method: x.head.method,
    target: x.target,
    address: x.up.address,
    user: conn.user,
    status: x.status ?? undefined,
    result: end.result ?? (x.up.address === undefined ? undefined : "ok"),
    reason: end.reason,
    up: x.up.sent,
    down: x.up.received,
    duration: ((core.clock() - x.startedAt) / 1000).toFixed(3),
  });
}

/** The distinct destinations of one client connection's requests, for its closing log line. */
export class TargetsSeen {
  /** Requests that named a destination. */
  requests = 0;
  readonly #listed = new Set<string>();
  readonly #unlisted = new Set<string>();

  /** Records a request to `target` (`host:port`). */
  add(target: string): void {
    this.requests++;
    if (this.#listed.has(target)) return;
    if (this.#listed.size < MAX_LISTED_TARGETS) this.#listed.add(target);
    else if (this.#unlisted.size < MAX_COUNTED_TARGETS) this.#unlisted.add(target); // bounded: only counted
  }

  /**
   * Fields for the connection's line: `requests`, and `targets` when the requests went to more
   * than one destination (the connection's `target` names the first).
   */
  fields(): Record<string, unknown> {
    if (this.#listed.size <= 1) return { requests: this.requests };
    const n = this.#unlisted.size;
    const more = n === 0 ? "" : n < MAX_COUNTED_TARGETS ? `,+${n} more` : `,+${n} or more`;
    return { requests: this.requests, targets: [...this.#listed].join(",") + more };
  }
}
