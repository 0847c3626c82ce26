/**
 * The protocol-free core: connect a client to a destination under the policy, then relay.
 *
 * A protocol handler calls {@link ProxyCore.connect} with the target the client asked for; the
 * core then
 *
 *   port 0, a name that is no DNS name ───────────────────────────────── protocol_error, unreachable
 *   pinned to an exit that is down, or pins that disagree (pin.ts) ────── unreachable, denied
 *   domain? resolve (resolve.ts) per the DNS mode
 *   unmap every address once, check each against the policy (policy.ts) ─ denied_destination
 *   dial (dial.ts: Happy Eyeballs, connect timeout) ───────────────────── refused, unreachable, timeout
 *   protocol.connected(): the protocol's success reply ────────────────── ok
 *   relay (relay.ts) until both sides close; one info line per connection
 *
 * and answers a failure with `protocol.failed(kind)`, so every protocol gets the same policy,
 * counters and log line. Bytes the client sends while the core connects are held (up to
 * {@link MAX_EARLY_DATA}) and forwarded first.
 *
 * Does not accept connections or enforce admission and deadlines (server.ts), and does not parse
 * any protocol (socks5-session.ts).
 */
import type { Logger } from "../log/logger.ts";
import { formatHostPort, formatIp, isDnsName, parseIp, unmapIp, type IpAddr } from "../net/ip.ts";
import type { CredentialChecker } from "./auth.ts";
import { concat } from "./bytes.ts";
import { dial, interleaveFamilies, type DialRace, type TargetSocket } from "./dial.ts";
import { errorCode, Failure, failureForError, resultForFailure, type FailureKind } from "./errors.ts";
import type { Keepalive } from "./keepalive.ts";
import type { Settings } from "./options.ts";
import { pinProblem } from "./pin.ts";
import { checkDestination } from "./policy.ts";
import { formatTarget, Stage, type ClientConn, type ClientLeg, type ConnOwner, type DialCallbacks, type DialHandle, type ProtocolCore, type Target } from "./protocol.ts";
import { Relay } from "./relay.ts";
import { countConnection, observe, protocolStats, type ConnectionResult, type ProxyStats } from "./stats.ts";
import type { UdpSettings } from "./udp-options.ts";

/** Bytes a client may send after its request, before the target is connected, before we stop reading. */
export const MAX_EARLY_DATA = 64 * 1024;

/** Where {@link ProxyCore}'s shared connect path reports, for `connect()` and `dial()` alike. */
interface DialSink {
  /** False once nobody waits for the outcome (the client went away, the dial was cancelled). */
  live(): boolean;
  /** The race in progress, to cancel it; null once it is over. */
  race(race: DialRace | null): void;
  failed(kind: FailureKind, reason: string): void;
  connected(socket: TargetSocket, address: IpAddr): void;
}

/** The listener's side of a connection's life, as the core reports it. */
export interface ConnTracker {
  /** The handshake is over (the request is in): the handshake deadline no longer applies. */
  handshakeDone(conn: ClientConn): void;
  /** The connection has closed and been logged. */
  closed(conn: ClientConn): void;
  /** An outbound socket could not be opened for want of fds: stop accepting for a while. */
  outOfFds(): void;
}

/** Options for {@link ProxyCore}. */
export interface ProxyCoreOptions {
  readonly settings: Settings;
  readonly stats: ProxyStats;
  readonly log: Logger;
  /** Monotonic milliseconds. */
  readonly clock: () => number;
  /** Sets keepalive on the target leg. */
  readonly keepalive: Keepalive;
  readonly tracker: ConnTracker;
}

/** One per server: the connection path every protocol shares. */
export class ProxyCore implements ProtocolCore, ConnOwner {
  /** The settings in force; the server replaces them on update. */
  settings: Settings;
  log: Logger;
  readonly stats: ProxyStats;
  readonly clock: () => number;
  readonly #keepalive: Keepalive;
  readonly #tracker: ConnTracker;

  constructor(options: ProxyCoreOptions) {
    this.settings = options.settings;
    this.log = options.log;
    this.stats = options.stats;
    this.clock = options.clock;
    this.#keepalive = options.keepalive;
    this.#tracker = options.tracker;
  }

  /** The credentials in force. */
  get auth(): CredentialChecker | null {
    return this.settings.auth;
  }

  /** See {@link ProtocolCore.idleTimeoutMs}. */
  get idleTimeoutMs(): number {
    return this.settings.idleTimeoutMs;
  }

  /**
   * Connects `conn` to `host:port` under the policy and starts the relay; on failure answers with
   * `conn.protocol.failed(kind)` and closes. `early` is what the client sent after its request
   * (may be empty); it reaches the target first. Ends the handshake stage.
   */
  connect(conn: ClientConn, host: Target, port: number, early: Uint8Array): void {
    this.#tracker.handshakeDone(conn);
    conn.stage = Stage.connecting;
    // Keep reading while connecting, so that a client that resets is noticed and its dial
    // abandoned; what it sends meanwhile is held (up to MAX_EARLY_DATA, then the kernel holds it).
    if (early.length > 0) conn.early = early;
    if (early.length >= MAX_EARLY_DATA) {
      conn.paused = true;
      conn.socket.pause();
    }
    conn.target ??= formatTarget(host, port); // HTTP has set it already, for its 407
    if (this.log.debugEnabled) this.log.debug("proxy request", { client: conn.client, protocol: conn.label ?? conn.protocol?.name, target: conn.target, user: conn.user });
    conn.dialStart = this.clock();
    this.#open(conn, host, port, {
      live: () => conn.stage === Stage.connecting, // the client may have gone away meanwhile
      race: (r) => (conn.race = r),
      failed: (kind, reason) => this.#refuse(conn, kind, reason),
      connected: (socket, address) => this.#connected(conn, socket, address, port),
    });
  }

  /** See {@link ProtocolCore.dial}: one outbound connection under the policy, handed to the caller. */
  dial(conn: ClientConn, host: Target, port: number, callbacks: DialCallbacks): DialHandle {
    let done = false;
    let race: DialRace | null = null;
    const started = this.clock();
    const live = (): boolean => !done && conn.stage !== Stage.closed;
    if (this.log.debugEnabled) this.log.debug("proxy request", { client: conn.client, protocol: conn.label ?? conn.protocol?.name, target: formatTarget(host, port), user: conn.user });
    this.#open(conn, host, port, {
      live,
      race: (r) => (race = r),
      failed: (kind, reason) => {
        if (!live()) return;
        done = true;
        this.#count(conn, resultForFailure(kind));
        callbacks.onFailed(kind, reason);
      },
      connected: (socket, address) => {
        if (!live()) return void socket.terminate();
        done = true;
        this.#prepareTarget(socket, started);
        // Which exit the latest upstream left by: for the log line, and for resetFrom.
        const local = parseIp(socket.localAddress);
        conn.bound = local ? formatIp(unmapIp(local)) : null;
        this.#count(conn, "ok");
        callbacks.onConnected(socket, address);
      },
    });
    return {
      cancel: () => {
        done = true;
        race?.cancel();
        race = null;
      },
    };
  }

  /** See {@link ProtocolCore.adopt}. */
  adopt(conn: ClientConn, leg: ClientLeg): void {
    this.#tracker.handshakeDone(conn);
    conn.stage = Stage.relaying;
    conn.relay = leg;
  }

  /** See {@link ProtocolCore.relay}. */
  relay(conn: ClientConn, target: TargetSocket, options: { toTarget: Uint8Array; toClient: Uint8Array }): void {
    const before = conn.relay;
    const relay = this.#newRelay(conn, target);
    // The log line counts the whole connection, not just what follows the upgrade.
    relay.bytesClientToTarget = before?.bytesClientToTarget ?? 0;
    relay.bytesTargetToClient = before?.bytesTargetToClient ?? 0;
    conn.stage = Stage.relaying;
    if (options.toClient.length > 0) relay.fromTarget(options.toClient);
    if (options.toTarget.length > 0) relay.fromClient(options.toTarget);
  }

  checkDestination(addr: IpAddr): string | null {
    return checkDestination(unmapIp(addr), this.settings.policy);
  }

  checkPin(conn: ClientConn): { kind: FailureKind; reason: string } | null {
    return pinProblem(conn, this.settings);
  }

  resolve(name: string): Promise<IpAddr[]> {
    return this.settings.resolve(name);
  }

  get udp(): UdpSettings {
    return this.settings.udp;
  }

  hold(conn: ClientConn): void {
    this.#tracker.handshakeDone(conn);
    conn.stage = Stage.relaying; // with no relay: the server's data handler discards what comes
    this.#setResult(conn, "ok");
  }

  /** Bytes from the client while connecting: held for the target; reading pauses when too many. */
  early(conn: ClientConn, d: Uint8Array): void {
    conn.early = conn.early ? concat(conn.early, d) : d;
    if (conn.early.length >= MAX_EARLY_DATA && !conn.paused) {
      conn.paused = true;
      conn.socket.pause();
    }
  }

  /**
   * Ends a connection that never reached the relay, without a reply: a protocol that has one
   * writes it first. The result label follows from `kind`; the first reason given is logged.
   */
  fail(conn: ClientConn, kind: FailureKind, reason: string): void {
    if (conn.stage === Stage.closed) return;
    this.#setResult(conn, resultForFailure(kind));
    conn.reason ??= reason;
    conn.socket.end(); // fires close → clientGone → finish
  }

  /** The client sent a FIN before the relay started. */
  clientEof(conn: ClientConn): void {
    if (conn.stage === Stage.connecting) {
      conn.clientEof = true; // forwarded as a FIN once the relay starts
      return;
    }
    this.fail(conn, Failure.protocolError, conn.stage === Stage.relaying ? "client closed" : "client closed during handshake");
  }

  /** The client socket closed before the relay started. */
  clientGone(conn: ClientConn, err: Error | undefined): void {
    if (conn.stage === Stage.closed) return;
    if (conn.stage === Stage.connecting && conn.result === null) {
      // The client gave up waiting for the target (its own connect timeout, usually).
      conn.race?.cancel();
      conn.race = null;
      this.#setResult(conn, "timeout");
      conn.reason ??= "client closed while connecting";
    } else {
      this.#setResult(conn, "protocol_error");
      conn.reason ??= err ? `client error: ${err.message}` : conn.stage === Stage.relaying ? "client closed" : "client closed during handshake";
    }
    this.finish(conn, err);
  }

  /** Resets a connection now, at any stage (shutdown deadline). */
  abort(conn: ClientConn, reason: string): void {
    conn.reason ??= reason;
    if (conn.relay) {
      conn.relay.abort();
      return;
    }
    conn.race?.cancel();
    conn.race = null;
    this.#setResult(conn, "protocol_error");
    conn.socket.terminate();
    this.finish(conn, undefined);
  }

  /** @internal The connection has closed: count it, log its one line, tell the listener. */
  finish(conn: ClientConn, err: Error | undefined): void {
    if (conn.stage === Stage.closed) return;
    conn.stage = Stage.closed;
    conn.buf = null;
    conn.early = null;
    this.stats.connectionsActive--;
    const relay = conn.relay;
    const extra = conn.protocol?.closed?.(conn);
    const fields = {
      client: conn.client,
      protocol: conn.label ?? conn.protocol?.name,
      target: conn.target,
      address: conn.address,
      user: conn.user,
      exit: conn.source?.exit ?? (conn.bound !== null ? this.settings.exitByAddress.get(conn.bound) : undefined),
      result: conn.result ?? "protocol_error",
      reason: conn.reason ?? (err ? err.message : undefined),
      up: relay?.bytesClientToTarget ?? 0,
      down: relay?.bytesTargetToClient ?? 0,
      duration: ((this.clock() - conn.startedAt) / 1000).toFixed(3),
    };
    this.log.info("proxy connection closed", extra ? { ...fields, ...extra } : fields);
    this.#tracker.closed(conn);
  }

  /** Answers with the protocol's reply for `kind`, then ends the connection. */
  #refuse(conn: ClientConn, kind: FailureKind, reason: string): void {
    if (conn.stage === Stage.closed) return;
    conn.protocol?.failed(conn, kind, reason);
    this.fail(conn, kind, reason);
  }

  /** Policy, resolution and the dial for one target; the outcome goes to `sink` while it is live. */
  #open(conn: ClientConn, host: Target, port: number, sink: DialSink): void {
    if (port === 0) return sink.failed(Failure.protocolError, "port 0");
    const refused = this.checkPin(conn);
    if (refused !== null) return sink.failed(refused.kind, refused.reason);
    const literal = host.type === "ip" ? host.ip : parseIp(host.name);
    if (literal) return this.#dialAddresses(conn, [literal], port, sink);
    const name = (host as { name: string }).name;
    if (!isDnsName(name)) return sink.failed(Failure.hostUnreachable, "not a valid domain name");
    this.settings.resolve(name).then(
      (addrs) => {
        if (!sink.live()) return;
        if (this.log.debugEnabled) this.log.debug("proxy resolved", { client: conn.client, name, addresses: addrs.map(formatIp).join(",") });
        this.#dialAddresses(conn, addrs, port, sink);
      },
      (err: unknown) => {
        if (!sink.live()) return;
        sink.failed(failureForError(err), err instanceof Error ? err.message : String(err));
      },
    );
  }

  #dialAddresses(conn: ClientConn, addrs: readonly IpAddr[], port: number, sink: DialSink): void {
    const settings = this.settings;
    const allowed: IpAddr[] = [];
    let denial: string | null = null;
    for (const given of addrs) {
      // The edge for destinations: `::ffff:10.0.0.1` is 10.0.0.1 for the policy and the dial.
      const a = unmapIp(given);
      const why = checkDestination(a, settings.policy);
      if (why === null) allowed.push(a);
      else denial ??= `${why} (${formatIp(given)})`;
    }
    if (allowed.length === 0) {
      if (denial) return sink.failed(Failure.denied, `destination denied: ${denial}`);
      return sink.failed(Failure.hostUnreachable, "name has no addresses");
    }
    sink.race(
      dial(interleaveFamilies(allowed), {
        port,
        connectTimeoutMs: settings.connectTimeoutMs,
        connect: settings.dial,
        source: conn.source,
        stats: this.stats,
        onDone: (r) => {
          sink.race(null);
          if ("error" in r) {
            const code = errorCode(r.error);
            const kind = failureForError(r.error);
            if (kind === Failure.localResource) this.#tracker.outOfFds();
            return sink.failed(kind, code && !r.error.message.includes(code) ? `${code}: ${r.error.message}` : r.error.message);
          }
          sink.connected(r.socket, r.address);
        },
      }),
    );
  }

  /** Keepalive and TCP_NODELAY on a fresh target socket, and its connect time observed. */
  #prepareTarget(target: TargetSocket, dialStart: number): number {
    if (!this.settings.noDelay) target.setNoDelay(false);
    this.#keepalive.socket(target);
    const now = this.clock();
    observe(this.stats.connectDuration, (now - dialStart) / 1000);
    return now;
  }

  #newRelay(conn: ClientConn, target: TargetSocket): Relay {
    const clock = this.settings.idleTimeoutMs > 0 ? this.clock : null;
    const relay = new Relay({ client: conn.socket, target, stats: this.stats, owner: conn, clock, counters: protocolStats(this.stats, conn.label ?? conn.protocol?.name) });
    target.data.leg = relay;
    conn.relay = relay;
    return relay;
  }

  #connected(conn: ClientConn, target: TargetSocket, address: IpAddr, port: number): void {
    const now = this.#prepareTarget(target, conn.dialStart);
    const text = formatHostPort({ host: formatIp(address), port });
    // Usually the target asked for, by IP: then one string serves both for the connection's life.
    conn.address = text === conn.target ? conn.target : text;
    const localText = target.localAddress;
    const local = parseIp(localText);
    // An unmapped IPv4 address is already in formatIp's form (see #accept in server.ts).
    conn.bound = local ? (local.family === 4 ? localText : formatIp(unmapIp(local))) : null;
    const relay = this.#newRelay(conn, target);
    conn.stage = Stage.relaying;
    this.#setResult(conn, "ok");
    conn.protocol?.connected(conn, local ? unmapIp(local) : null, target.localPort);
    if (this.log.debugEnabled) this.log.debug("proxy connected", { client: conn.client, target: conn.target, address: conn.address, bound: `${target.localAddress}:${target.localPort}`, ms: Math.round(now - conn.dialStart) });
    const early = conn.early;
    conn.early = null;
    if (early) relay.fromClient(early);
    if (conn.clientEof) relay.clientEnded();
    if (conn.paused) conn.socket.resume();
  }

  /** Counts one outbound connection of `conn`: its result if it has none yet, else a further one. */
  #count(conn: ClientConn, result: ConnectionResult): void {
    if (conn.result === null) this.#setResult(conn, result);
    else countConnection(this.stats, conn.label ?? conn.protocol?.name, result);
  }

  #setResult(conn: ClientConn, result: ConnectionResult): void {
    if (conn.result !== null) return;
    conn.result = result;
    countConnection(this.stats, conn.label ?? conn.protocol?.name, result);
  }
}
