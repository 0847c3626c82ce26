/**
 * The proxy's listeners and admission: binding, accepting, who may connect, how many at once,
 * how long a handshake may take, and the hand-off to a protocol by the first byte.
 *
 * One {@link ProxyServer} owns any number of listeners that share one configuration. A connection
 * goes through these stages, each with its own way to end (the `result` label of the metrics):
 *
 *   accept ─ client outside allowClients? ──────────────────────────── denied_client (no byte read)
 *     │      half of maxConnections still in their handshake? the oldest (if older than
 *     │        EVICT_AFTER_MS) is closed to make room ────────────────── protocol_error
 *     │      more than maxConnections open, or handshakes full? ──────── (counted as over limit)
 *   first byte → protocol handler (socks5-session.ts, http-session.ts, socks4-refusal.ts)
 *                                                ─ handshakeTimeoutMs ─ protocol_error
 *   core (core.ts): policy, resolve, dial, relay, the log line
 *
 * maxConnections is clamped to what the open-files limit can hold, and the listeners stop
 * accepting while the process is about to run out of fds (fd-gate.ts): Bun's accept loop would
 * otherwise spin on EMFILE.
 *
 * Does not create routes, marks or firewall rules (lib/host does, and the daemon glues them
 * together), and does not read config files: it takes parsed values (options.ts).
 */
import type { SocketHandler, TCPSocketListener, TCPSocketListenOptions } from "bun";
import { silentLogger, type Logger } from "../log/logger.ts";
import { formatHostPort, formatIp, parseIp, unmapIp } from "../net/ip.ts";
import { ProxyCore, type ConnTracker } from "./core.ts";
import type { SourceAddresses } from "./dial.ts";
import { errorCode, Failure, ListenError, ProxyConfigError } from "./errors.ts";
import { FdGate } from "./fd-gate.ts";
import { Keepalive } from "./keepalive.ts";
import { normalizeOptions, type ListenSpec, type ProxyServerOptions, type Settings } from "./options.ts";
import { clientAllowed } from "./policy.ts";
import { ClientConn, Stage, type ClientSocket, type ProtocolFactory, type ProtocolHandler } from "./protocol.ts";
import { httpProtocol } from "./http-session.ts";
import { socks4Refusal } from "./socks4-refusal.ts";
import { socks5Protocol } from "./socks5-session.ts";
import { UDP_FDS_PER_ASSOCIATION } from "./udp-relay.ts";
import { countConnection, createStats, type ProxyStats } from "./stats.ts";

export type { KeepaliveOptions, ProxyServerOptions } from "./options.ts";

/** Options for {@link ProxyServer.stop}. */
export interface StopOptions {
  /**
   * Let open connections finish for up to this long, in ms, then reset the rest. Default 0:
   * reset them at once.
   */
  readonly drainMs?: number;
}

type Listener = TCPSocketListener<ClientConn | undefined>;

/** What every listener speaks unless told otherwise: SOCKS5 (first, so it names unknown bytes), SOCKS4's refusal, HTTP. */
export const DEFAULT_PROTOCOLS: readonly ProtocolFactory[] = [socks5Protocol, socks4Refusal, httpProtocol];

/**
 * A handshake at least this old may be closed to make room for a new client when handshakes hold
 * their whole share of the slots; a younger one is left to finish (a client on a slow link needs
 * a few round trips) and the new client is closed instead.
 */
export const EVICT_AFTER_MS = 250;

/**
 * A burst of at least this many accepted connections, then {@link GC_QUIET_MS} without a new one,
 * runs a full garbage collection. Each handshake leaves a few hundred bytes of garbage (buffers,
 * parsed requests, closures), and once the connections go idle nothing allocates, so JSC never
 * collects it: 9,350 idle connections held 22 MiB instead of 14.
 */
export const GC_AFTER_ACCEPTS = 1000;
export const GC_QUIET_MS = 2000;

/**
 * A SOCKS5 (CONNECT) and HTTP (CONNECT and forward) proxy with client and destination policy. Construct, `start()`,
 * `update()` on reload, `stop()` on shutdown; read `stats` for metrics.
 */
export class ProxyServer {
  /** Live counters; see {@link ProxyStats}. The object is updated in place, never replaced. */
  readonly stats: ProxyStats = createStats();

  #settings: Settings;
  #log: Logger;
  readonly #clock: () => number;
  readonly #core: ProxyCore;
  readonly #keepalive: Keepalive;
  readonly #protocols: readonly ProtocolHandler[];
  /** Socket handlers by protocol set (`ListenSpec.protocols` joined, `*` for all). */
  readonly #handlersBySet = new Map<string, SocketHandler<ClientConn | undefined>>();
  #listeners = new Map<string, Listener>();
  #conns = new Set<ClientConn>();
  #handshaking = new Set<ClientConn>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  #acceptedSinceGc = 0;
  #lastAcceptAt = 0;
  #state: "new" | "running" | "stopping" | "stopped" = "new";
  #whenIdle: (() => void) | null = null;
  #lastOverLimitWarning = -Infinity;
  /** maxConnections as configured, or less when the open-files limit cannot hold that many. */
  #maxConnections: number;
  /** The fd budget; null until start. */
  #fds: FdGate | null = null;
  /**
   * Every listener carries the keepalive options, so accepted sockets inherit them. False when a
   * listener could not be set up that way: each client socket is then set on its own.
   */
  #listenersKeepalive = false;

  /** Validates `options`; throws {@link ProxyConfigError}. Binds nothing until {@link start}. */
  constructor(options: ProxyServerOptions) {
    this.#settings = normalizeOptions(options);
    this.#maxConnections = this.#settings.maxConnections;
    this.#log = options.log ?? silentLogger;
    this.#clock = options.clock ?? (() => performance.now());
    this.#keepalive = new Keepalive(this.#settings.keepalive, this.#log);
    const tracker: ConnTracker = {
      handshakeDone: (c) => this.#handshaking.delete(c),
      closed: (c) => {
        this.#conns.delete(c);
        this.#handshaking.delete(c);
        if (this.#conns.size === 0) this.#whenIdle?.();
      },
      outOfFds: () => this.#fds?.pause("an outbound socket failed for want of fds"),
    };
    const core = new ProxyCore({ settings: this.#settings, stats: this.stats, log: this.#log, clock: this.#clock, keepalive: this.#keepalive, tracker });
    this.#core = core;
    const protocols = (options.protocols ?? DEFAULT_PROTOCOLS).map((make) => make(core));
    if (protocols.length === 0) throw new ProxyConfigError("protocols", "at least one protocol is required");
    this.#protocols = protocols;
    this.#checkListenerProtocols(this.#settings.listeners);
  }

  /** The addresses listened on now, `host:port`. */
  get listening(): readonly string[] {
    return this.stats.listeners;
  }

  /**
   * Binds every listener. Throws {@link ListenError} (naming the address and the OS error, such as
   * `EADDRINUSE` or `EADDRNOTAVAIL`) and binds nothing if any listener fails.
   */
  start(): void {
    if (this.#state !== "new") throw new Error(`ProxyServer.start() called when ${this.#state}`);
    this.#bindAll(this.#settings.listeners);
    this.#listenersKeepalive = this.#keepalive.applyToListeners(this.#listeners.values());
    this.#fds = new FdGate({
      log: () => this.#log,
      stats: this.stats,
      connections: () => this.#conns.size,
      stopListening: () => {
        for (const listener of this.#listeners.values()) listener.stop(false);
      },
      listenAgain: () => this.#listenAgain(),
    });
    this.#maxConnections = this.#fds.admissible(this.#settings.maxConnections);
    this.#state = "running";
    this.#restartSweep();
    this.#log.info("proxy listening", { listen: this.stats.listeners.join(","), dns: this.#settings.dnsMode });
  }

  /**
   * Applies new options (SIGHUP): binds added listeners, closes removed ones, and swaps policy,
   * auth, DNS and limits for new connections and for handshakes still in progress. Live relays
   * are not touched. If a new listener cannot be bound, throws {@link ListenError} and changes
   * nothing. `dial` and `log` keep their old values when omitted (`clock` never changes);
   * `resolve` is rebuilt from `dns` unless given.
   * A changed `idleTimeoutMs` applies to connections relayed from then on.
   */
  update(options: ProxyServerOptions): void {
    const next = normalizeOptions({ ...options, dial: options.dial ?? this.#settings.dial });
    this.#checkListenerProtocols(next.listeners);
    if (options.log) {
      this.#log = options.log;
      this.#core.log = options.log;
      this.#keepalive.setLog(options.log);
    }
    if (this.#state === "running") {
      const added = next.listeners.filter((l) => !this.#listeners.has(l.key));
      this.#bindAll(added);
      for (const [key, listener] of this.#listeners) {
        const kept = next.listeners.find((l) => l.key === key);
        if (kept) {
          // Same address, maybe other protocols: new connections get the new table at once.
          listener.reload({ socket: this.#handlersFor(kept.protocols) });
          continue;
        }
        listener.stop(false);
        this.#listeners.delete(key);
        this.#log.info("proxy stopped listening", { listen: key });
      }
      this.#refreshListenerStats();
    }
    this.#settings = next;
    this.#maxConnections = this.#fds?.admissible(next.maxConnections) ?? next.maxConnections;
    this.#core.settings = next;
    this.#keepalive.schedule = next.keepalive;
    if (this.#state === "running") {
      this.#listenersKeepalive = this.#keepalive.applyToListeners(this.#listeners.values());
      this.#restartSweep();
    }
    this.#log.info("proxy configuration updated", { listen: this.stats.listeners.join(","), connections: this.#conns.size });
  }

  /**
   * Stops accepting, lets open connections run for up to `drainMs`, then resets the rest.
   * Resolves when every connection is closed. Safe to call twice.
   */
  async stop(options: StopOptions = {}): Promise<void> {
    if (this.#state === "stopped" || this.#state === "stopping") return;
    const wasRunning = this.#state === "running";
    this.#state = "stopping";
    this.#fds?.stop();
    for (const listener of this.#listeners.values()) listener.stop(false);
    this.#listeners.clear();
    this.#refreshListenerStats();
    const drainMs = options.drainMs ?? 0;
    if (wasRunning && this.#conns.size > 0 && drainMs > 0) {
      this.#log.info("proxy draining", { connections: this.#conns.size, drainMs });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        this.#whenIdle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#whenIdle = null;
    }
    const left = this.#conns.size;
    for (const c of [...this.#conns]) this.#core.abort(c, "shutting down");
    clearInterval(this.#sweep);
    this.#sweep = undefined;
    this.#state = "stopped";
    if (wasRunning) this.#log.info("proxy stopped", { reset: left });
  }

  #checkListenerProtocols(specs: readonly ListenSpec[]): void {
    const known = this.#protocols.map((p) => p.name);
    specs.forEach((l) => {
      const unknown = (l.protocols ?? []).filter((n) => !known.includes(n) || n === "socks4");
      if (unknown.length > 0) throw new ProxyConfigError(`listeners (${l.key}).protocols`, `"${unknown[0]}" is not a protocol; use ${known.filter((n) => n !== "socks4").map((n) => `"${n}"`).join(" or ")}`);
    });
  }

  /**
   * The socket handlers of a listener speaking `names` (null: all): the protocols by the first
   * byte they claim; bytes nobody claims go to the first protocol, whose parser names the error.
   */
  #handlersFor(names: readonly string[] | null): SocketHandler<ClientConn | undefined> {
    const key = names?.join(",") ?? "*";
    const cached = this.#handlersBySet.get(key);
    if (cached) return cached;
    // The SOCKS4 refusal answers wherever SOCKS5 is spoken: it is SOCKS5's way of saying no.
    const chosen = names === null ? this.#protocols : this.#protocols.filter((p) => names.includes(p.name) || (p.name === "socks4" && names.includes("socks5")));
    const byByte = Array.from({ length: 256 }, (_, b) => chosen.find((p) => p.claims(b)) ?? chosen[0]!);
    const core = this.#core;
    const handlers: SocketHandler<ClientConn | undefined> = {
      open: (s) => this.#accept(s),
      data: (s, d) => {
        const conn = s.data!;
        if (conn.relay) conn.relay.fromClient(d);
        else if (conn.stage === Stage.handshake) (conn.protocol ??= byByte[d[0]! & 0xff]!).data(conn, d);
        else if (conn.stage === Stage.connecting) core.early(conn, d);
      },
      drain: (s) => s.data?.relay?.clientDrained(),
      end: (s) => {
        const conn = s.data;
        if (!conn) return;
        if (conn.relay) conn.relay.clientEnded();
        else core.clientEof(conn);
      },
      close: (s, err) => {
        const conn = s.data;
        if (!conn) return;
        if (conn.relay) conn.relay.clientClosed(err);
        else core.clientGone(conn, err);
      },
      error: (s, err) => {
        this.#log.error("proxy: socket handler failed", { err });
        s.terminate();
      },
    };
    this.#handlersBySet.set(key, handlers);
    return handlers;
  }

  /** Binds every listener again after a pause for want of fds, on the same ports. */
  #listenAgain(): boolean {
    if (this.#state !== "running") return true;
    // The same ports again, also for listeners configured with port 0.
    const specs = this.#settings.listeners.map((l) => ({ ...l, port: this.#listeners.get(l.key)?.port ?? l.port }));
    try {
      this.#bindAll(specs);
    } catch (err) {
      this.#log.error("proxy: cannot listen again after running short of fds; retrying", { err });
      return false;
    }
    this.#listenersKeepalive = this.#keepalive.applyToListeners(this.#listeners.values());
    return true;
  }

  #bindAll(specs: readonly ListenSpec[]): void {
    const bound: [string, Listener][] = [];
    try {
      for (const l of specs) {
        try {
          // `ipv6Only` works at runtime but is missing from bun-types' listen options.
          const options: TCPSocketListenOptions<ClientConn | undefined> & { ipv6Only?: boolean } = {
            hostname: l.host,
            port: l.port,
            exclusive: true, // never share the port (SO_REUSEPORT) with another process
            ipv6Only: l.family === 6, // "[::]:1080" and "0.0.0.0:1080" can then coexist
            allowHalfOpen: true,
            socket: this.#handlersFor(l.protocols),
          };
          const listener = Bun.listen<ClientConn | undefined>(options);
          bound.push([l.key, listener]);
        } catch (err) {
          throw new ListenError(l.key, errorCode(err), { cause: err });
        }
      }
    } catch (err) {
      for (const [, listener] of bound) listener.stop(true);
      throw err;
    }
    for (const [key, listener] of bound) this.#listeners.set(key, listener);
    this.#refreshListenerStats();
  }

  #refreshListenerStats(): void {
    this.stats.listeners = [...this.#listeners.values()].map((l) => formatHostPort({ host: l.hostname, port: l.port }));
  }

  #restartSweep(): void {
    clearInterval(this.#sweep);
    const s = this.#settings;
    const shortest = s.idleTimeoutMs > 0 ? Math.min(s.handshakeTimeoutMs, s.idleTimeoutMs) : s.handshakeTimeoutMs;
    const every = Math.max(20, Math.min(1000, Math.floor(shortest / 10)));
    this.#sweep = setInterval(() => this.#tick(), every);
    this.#sweep.unref();
  }

  /** A full collection after a burst (see {@link GC_AFTER_ACCEPTS}); its pause is logged at debug. */
  #collect(): void {
    this.#acceptedSinceGc = 0;
    const t0 = performance.now();
    Bun.gc(true);
    if (this.#log.debugEnabled) this.#log.debug("proxy: collected garbage after a burst of connections", { ms: (performance.now() - t0).toFixed(1), connections: this.#conns.size });
  }

  #tick(): void {
    const now = this.#clock();
    if (this.#acceptedSinceGc >= GC_AFTER_ACCEPTS && now - this.#lastAcceptAt >= GC_QUIET_MS) this.#collect();
    // A UDP association holds up to three sockets beyond its control connection's one.
    this.#fds?.check(this.stats.pendingAbandonedDials + UDP_FDS_PER_ASSOCIATION * this.stats.udp.associationsActive);
    for (const c of this.#handshaking) {
      if (now < c.deadline) continue;
      this.stats.handshakeTimeouts++;
      this.#core.fail(c, Failure.protocolError, "handshake timeout");
    }
    const idle = this.#settings.idleTimeoutMs;
    if (idle > 0) {
      for (const c of this.#conns) {
        const r = c.relay;
        if (r && r.clock && now - r.lastActivity >= idle) {
          c.reason = "idle timeout";
          r.abort();
        }
      }
    }
  }

  /**
   * The source addresses of the listener that accepted `socket`, if it is pinned: by its address,
   * or by the wildcard of its family on its port.
   */
  #pinnedFor(socket: ClientSocket, settings: Settings): SourceAddresses | null {
    if (settings.pinned.size === 0) return null;
    const local = parseIp(socket.localAddress);
    if (!local) return null;
    const ip = unmapIp(local);
    const port = socket.localPort;
    return settings.pinned.get(formatHostPort({ host: formatIp(ip), port })) ?? settings.pinned.get(formatHostPort({ host: ip.family === 4 ? "0.0.0.0" : "::", port })) ?? null;
  }

  /**
   * Resets now every connection whose outbound leg left from one of `addresses` (an exit that went
   * down), or is dialing from them, so that its client reconnects, through another exit, instead of
   * hanging until keepalive gives up. Returns how many were reset.
   */
  resetFrom(addresses: readonly string[], reason: string): number {
    const wanted = new Set(addresses);
    let n = 0;
    for (const c of [...this.#conns]) {
      const dialingFrom = c.race !== null && c.source !== null && (wanted.has(c.source[4] ?? "") || wanted.has(c.source[6] ?? ""));
      if ((c.bound !== null && wanted.has(c.bound)) || dialingFrom) {
        this.#core.abort(c, reason);
        n++;
      }
    }
    if (n > 0) this.#log.info("proxy reset connections", { count: n, reason });
    return n;
  }

  #accept(socket: ClientSocket): void {
    const remote = socket.remoteAddress as string | undefined;
    if (remote === undefined) {
      // Reset before we got to it: Bun reports no peer for a socket that is already gone.
      if (this.#log.debugEnabled) this.#log.debug("proxy: accepted a connection that was already reset");
      socket.terminate();
      return;
    }
    const parsed = parseIp(remote);
    const ip = parsed && unmapIp(parsed); // the edge for clients: a dual-stack listener reports IPv4 mapped
    // An IPv4 peer that was not mapped is already written as formatIp would write it (the kernel's
    // dotted quad), so it is used as is: this runs for every connection.
    const host = ip === parsed && ip?.family === 4 ? remote : ip ? formatIp(ip) : remote;
    const client = formatHostPort({ host, port: socket.remotePort });
    const settings = this.#settings;
    if (this.#state !== "running") {
      socket.end();
      return;
    }
    if (!ip || !clientAllowed(ip, settings.allowClients)) {
      countConnection(this.stats, undefined, "denied_client");
      this.#log.info("proxy connection closed", { client, result: "denied_client" });
      socket.end();
      return;
    }
    const max = this.#maxConnections;
    const startedAt = this.#clock();
    this.#acceptedSinceGc++;
    this.#lastAcceptAt = startedAt;
    const handshakesFull = this.#handshaking.size >= Math.max(1, Math.floor(max / 2)) && !this.#evictOldestHandshake(startedAt);
    if (handshakesFull || this.#conns.size >= max) {
      this.stats.connectionsOverLimit++;
      if (startedAt - this.#lastOverLimitWarning > 1000) {
        this.#lastOverLimitWarning = startedAt;
        this.#log.warn("proxy at maxConnections, closing new connections", { maxConnections: max, handshaking: this.#handshaking.size, overLimitTotal: this.stats.connectionsOverLimit });
      }
      socket.end();
      return;
    }
    const conn = new ClientConn({ socket, client, startedAt, deadline: startedAt + settings.handshakeTimeoutMs, owner: this.#core });
    socket.data = conn;
    conn.source = conn.listenerSource = this.#pinnedFor(socket, settings);
    this.#conns.add(conn);
    this.#handshaking.add(conn);
    this.stats.connectionsActive++;
    // Bun turns TCP_NODELAY on for every socket itself (checked with getsockopt in the tests), so
    // only turning it off costs a syscall.
    if (!settings.noDelay) socket.setNoDelay(false);
    if (!this.#listenersKeepalive) this.#keepalive.socket(socket);
    if (this.#log.debugEnabled) this.#log.debug("proxy accepted", { client, listen: formatHostPort({ host: socket.localAddress, port: socket.localPort }) });
  }

  /**
   * Connections in their handshake may hold at most half of the slots, so that clients that
   * stall after a byte or two cannot lock out one that completes its handshake: the oldest
   * handshake gives way, once it has had {@link EVICT_AFTER_MS} to finish. False when none may.
   */
  #evictOldestHandshake(now: number): boolean {
    const oldest = this.#handshaking.values().next().value;
    if (!oldest || now - oldest.startedAt < EVICT_AFTER_MS) return false;
    this.stats.handshakeEvictions++;
    this.#core.fail(oldest, Failure.protocolError, "handshake slots full: closed for a new client");
    return true;
  }
}
