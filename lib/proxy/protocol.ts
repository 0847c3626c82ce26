/**
 * The contract between the listener, the protocol modules and the connection core: the
 * per-connection record {@link ClientConn} and the {@link ProtocolHandler} interface.
 *
 * A connection goes listener (server.ts: accept, admission, deadlines) → protocol handler (the
 * first bytes decide which; socks5-session.ts today) → core (core.ts: policy, resolve, dial,
 * relay, the log line). A protocol module imports this file (and pure helpers such as the wire
 * format), never core.ts and never another protocol module: it reaches the core through
 * {@link ProtocolCore}. Nothing here does I/O.
 */
import type { Socket } from "bun";
import type { Logger } from "../log/logger.ts";
import { formatHostPort, formatIp, type IpAddr } from "../net/ip.ts";
import type { CredentialChecker } from "./auth.ts";
import type { DialRace, SourceAddresses, TargetSocket } from "./dial.ts";
import type { FailureKind } from "./errors.ts";
import type { RelayOwner } from "./relay.ts";
import type { ConnectionResult, ProxyStats } from "./stats.ts";
import type { UdpSettings } from "./udp-options.ts";

/** Where a client wants to go: an IP literal or a DNS name (not yet validated), as SOCKS5 and HTTP give it. */
export type Target =
  | { readonly type: "ip"; readonly ip: IpAddr }
  | { readonly type: "domain"; readonly name: string };

/** The stages of a {@link ClientConn}, in order. Numbers: compared on every read. */
export const Stage = {
  /** The protocol handler owns the bytes (greeting, auth, request). */
  handshake: 0,
  /** The core resolves and dials; bytes the client sends are held for the target. */
  connecting: 1,
  /** The relay owns both sockets. */
  relaying: 2,
  closed: 3,
} as const;

/** One of {@link Stage}. */
export type StageValue = (typeof Stage)[keyof typeof Stage];

/** A client socket; its `data` is the connection record (undefined until accepted). */
export type ClientSocket = Socket<ClientConn | undefined>;

/**
 * One protocol the proxy speaks (SOCKS5, with UDP ASSOCIATE; HTTP CONNECT / forward proxying
 * next). One handler object serves every connection of a server, as Bun's socket
 * handlers do: per-connection state lives in the {@link ClientConn} (`step`, `buf`, `protocolData`),
 * so speaking a protocol costs no allocation of its own.
 *
 * The listener gives a connection to the handler whose {@link claims} accepts its first byte (the
 * first handler if none does, so that its parser names the error). From then until the handler
 * calls the core's `connect()` (or `fail()`), every byte the client sends goes to {@link data}.
 */
export interface ProtocolHandler {
  /** Bounded label for logs and metrics: `socks5`, `http`. */
  readonly name: string;
  /** True when a connection whose first byte is `firstByte` speaks this protocol (SOCKS5: 0x05). */
  claims(firstByte: number): boolean;
  /**
   * Bytes from the client during the handshake; the first call carries the first bytes read. The
   * handler parses what it can, keeps the rest in `conn.buf`, writes its own handshake replies,
   * and ends by calling the core: `connect(conn, target, port, rest)` or `fail(conn, kind, why)`.
   */
  data(conn: ClientConn, bytes: Uint8Array): void;
  /**
   * The target is connected and the relay is about to start: write the success reply. `local` is
   * the outbound socket's own address, unmapped (null if the OS did not report one).
   */
  connected(conn: ClientConn, local: IpAddr | null, localPort: number): void;
  /**
   * Connecting failed (policy, DNS, dial): write this protocol's reply for `kind`, if it has one.
   * `reason` is the core's text for the log (`destination denied: private (10.0.0.5)`), for a
   * protocol whose reply can carry one.
   */
  failed(conn: ClientConn, kind: FailureKind, reason: string): void;
  /**
   * The connection has closed: release what `conn.protocolData` holds (a UDP association). What
   * it returns is added to the connection's log line. Optional.
   */
  closed?(conn: ClientConn): Record<string, unknown> | undefined;
}

/**
 * Whoever owns a connection's client socket after the handshake: the relay (relay.ts) for a
 * tunnel, or a protocol's own forwarder (HTTP forward proxying) adopted with
 * {@link ProtocolCore.adopt}. The listener hands it every client event; it reports the end with
 * `conn.relayClosed(leg, error)` once both its sockets are closed.
 */
export interface ClientLeg {
  /** Bytes read from the client and passed on, for the log line. */
  readonly bytesClientToTarget: number;
  /** Bytes passed back to the client, for the log line. */
  readonly bytesTargetToClient: number;
  /** Set when the idle timeout applies: then `lastActivity` is kept up to date. */
  readonly clock: (() => number) | null;
  readonly lastActivity: number;
  fromClient(data: Uint8Array): void;
  clientDrained(): void;
  clientEnded(): void;
  clientClosed(error: Error | undefined): void;
  /** Resets every socket now (idle timeout, shutdown deadline). */
  abort(): void;
}

/** What {@link ProtocolCore.dial} reports, exactly once (never after `cancel()`). */
export interface DialCallbacks {
  /**
   * Connected to `address`: the socket is the caller's, with keepalive and TCP_NODELAY set; it must
   * set `socket.data.leg` to receive its events.
   */
  onConnected(socket: TargetSocket, address: IpAddr): void;
  /** Refused by the policy, unresolvable, or the dial failed. `reason` is for the log. */
  onFailed(kind: FailureKind, reason: string): void;
}

/** A dial in progress. */
export interface DialHandle {
  /** Abandons the dial; no callback follows. */
  cancel(): void;
}

/**
 * What a protocol handler may ask of the core (core.ts implements it). The core's API is the same
 * for every protocol: an HTTP CONNECT handler calls `connect()` exactly as SOCKS5 does.
 */
export interface ProtocolCore {
  /** The credentials in force (they change on reload), or null when no authentication is required. */
  readonly auth: CredentialChecker | null;
  readonly stats: ProxyStats;
  readonly log: Logger;
  /** Monotonic milliseconds: the clock of log-line durations and idle bookkeeping. */
  readonly clock: () => number;
  /**
   * proxy.idleTimeout in ms as in force now (0: never). A {@link ClientLeg} of the protocol's own
   * reads it when it starts, as a relay does, and keeps `clock`/`lastActivity` when it is on.
   */
  readonly idleTimeoutMs: number;
  /**
   * Connects `conn` to `host:port` under the destination policy (resolving a name per the DNS
   * mode, checking every address), then relays; the outcome comes back through the handler's
   * `connected()` or `failed(kind)`. `early` is what the client sent after its request (may be
   * empty): it reaches the target first. Ends the handshake deadline.
   */
  connect(conn: ClientConn, host: Target, port: number, early: Uint8Array): void;
  /**
   * Opens one outbound connection for `conn` under the same policy, resolution and dial as
   * {@link connect}, and hands the socket to the caller instead of relaying: for a protocol that
   * makes several outbound connections in one client connection (HTTP forward proxying). Each
   * dial's outcome is counted like a connection's. The connection must have been adopted.
   */
  dial(conn: ClientConn, host: Target, port: number, callbacks: DialCallbacks): DialHandle;
  /**
   * Ends the handshake of `conn` and gives its client socket to `leg`: from now on the listener
   * passes every client event to it (see {@link ClientLeg}).
   */
  adopt(conn: ClientConn, leg: ClientLeg): void;
  /**
   * Switches an adopted connection to the plain relay with `target` (after an HTTP upgrade).
   * `toTarget` and `toClient` are bytes already read but not yet passed on; they go first.
   */
  relay(conn: ClientConn, target: TargetSocket, options: { toTarget: Uint8Array; toClient: Uint8Array }): void;
  /**
   * Ends a connection before the relay, without a reply (a handler writes its own first). The
   * metrics result follows from `kind`; the first reason given is logged.
   */
  fail(conn: ClientConn, kind: FailureKind, reason: string): void;
  /** The destination policy for one address (unmapped first): null when allowed, else why not. */
  checkDestination(addr: IpAddr): string | null;
  /**
   * Why `conn` may not go out now for its pin (pin.ts: the pins disagree, or its exit is down), or
   * null. `connect()` and `dial()` check it themselves; UDP ASSOCIATE asks.
   */
  checkPin(conn: ClientConn): { kind: FailureKind; reason: string } | null;
  /** Resolves a name by the configured DNS mode (through the tunnel by default in the daemon). */
  resolve(name: string): Promise<IpAddr[]>;
  /** The UDP ASSOCIATE settings in force. */
  readonly udp: UdpSettings;
  /**
   * The request is served without a relay (UDP ASSOCIATE): the handshake deadline ends, the
   * connection counts as `ok`, and it stays open (bytes from the client are discarded) until
   * the client closes it or the handler calls `fail()`.
   */
  hold(conn: ClientConn): void;
}

/** Builds a protocol's handler for one server; `ProxyServerOptions.protocols` takes a list. */
export type ProtocolFactory = (core: ProtocolCore) => ProtocolHandler;

/**
 * Client-supplied text made safe for a log line: control and non-ASCII characters are escaped
 * (`\u001b`), so a crafted domain name cannot inject terminal escapes or fake fields.
 */
export function printable(text: string): string {
  return /^[\x21-\x7e]*$/.test(text) ? text : JSON.stringify(text).slice(1, -1).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** `host:port` of a requested target, for logs (a name made {@link printable}). */
export function formatTarget(host: Target, port: number): string {
  return host.type === "domain" ? `${printable(host.name)}:${port}` : formatHostPort({ host: formatIp(host.ip), port });
}

/** Told when a connection is over; implemented by the core. */
export interface ConnOwner {
  /** Called once per connection, when it has closed. */
  finish(conn: ClientConn, error: Error | undefined): void;
}

/** Options for {@link ClientConn}. */
export interface ClientConnOptions {
  readonly socket: ClientSocket;
  /** `ip:port` of the client, unmapped, for logs. */
  readonly client: string;
  /** `clock()` at accept. */
  readonly startedAt: number;
  /** `clock()` by which the handshake must be complete. */
  readonly deadline: number;
  readonly owner: ConnOwner;
}

/** One client connection, from accept to close: the `data` of its socket. */
export class ClientConn implements RelayOwner {
  readonly socket: ClientSocket;
  readonly client: string;
  readonly startedAt: number;
  readonly deadline: number;
  readonly owner: ConnOwner;
  stage: StageValue = Stage.handshake;
  /** The protocol speaking on this connection; null until its first byte. */
  protocol: ProtocolHandler | null = null;
  /**
   * The `protocol` label of this connection's counters: the protocol's name unless it sets one
   * of its own (HTTP: `http_connect` or `http`).
   */
  label: string | undefined;
  /** The protocol's own sub-stage (SOCKS5: greeting, auth, request). */
  step = 0;
  /** Handshake bytes the protocol has not parsed yet. */
  buf: Uint8Array | null = null;
  /** Whatever else a protocol keeps per connection (none for SOCKS5). */
  protocolData: unknown = null;
  /** Bytes the client sent after its request, for the target. */
  early: Uint8Array | null = null;
  clientEof = false;
  /** Reading is paused because `early` is full. */
  paused = false;
  relay: ClientLeg | null = null;
  race: DialRace | null = null;
  result: ConnectionResult | null = null;
  reason: string | undefined;
  /** The requested target, `host:port`, for logs. */
  target: string | undefined;
  /** The address actually connected to, `ip:port`. */
  address: string | undefined;
  /** The authenticated user, for logs. */
  user: string | undefined;
  dialStart = 0;
  /** Source addresses the target leg must bind (a listener or user pinned to an exit); null: the kernel picks. */
  source: SourceAddresses | null = null;
  /** The pin of the listener that accepted this connection, kept apart from a user's (pin.ts). */
  listenerSource: SourceAddresses | null = null;
  /** Set when the user's pin and the listener's disagree: every request is denied with it (pin.ts). */
  pinRefusal: string | null = null;
  /** The target leg's local address once connected (which exit it left by), unmapped. */
  bound: string | null = null;

  constructor(options: ClientConnOptions) {
    this.socket = options.socket;
    this.client = options.client;
    this.startedAt = options.startedAt;
    this.deadline = options.deadline;
    this.owner = options.owner;
  }

  /** @internal The relay is over: both sockets have closed. */
  relayClosed(_relay: ClientLeg, error: Error | undefined): void {
    this.owner.finish(this, error);
  }
}
