/**
 * The SOCKS5 egress proxy: listeners, admission, the handshake, and the hand-off to the relay.
 *
 * One {@link ProxyServer} owns any number of listeners that share one configuration. A connection
 * goes through these stages, each with its own way to end (the `result` label of the metrics):
 *
 *   accept ─ client outside allowClients? ──────────────────────────── denied_client (no byte read)
 *     │      more than maxConnections open? ─────────────────────────── (counted as over limit)
 *   greeting, auth (RFC 1928 §3, RFC 1929) ─ bad bytes, timeout ──────── protocol_error, auth_failed
 *   request (§4) ─ not CONNECT, bad address ─────────────────────────── protocol_error
 *     │ domain? resolve (resolve.ts), then check every address (policy.ts) ─ denied_destination
 *   dial (dial.ts: Happy Eyeballs, connect timeout) ─ refused, unreachable, timeout
 *   reply with the outbound socket's local address (§6) ─────────────── ok
 *   relay (relay.ts) until both sides close; one info line per connection
 *
 * Does not create routes, marks or firewall rules (lib/host does, and the daemon glues them
 * together), and does not read config files: it takes parsed values.
 */
import type { Socket, SocketHandler, TCPSocketListener, TCPSocketListenOptions } from "bun";
import { silentLogger, type Logger } from "../log/logger.ts";
import {
  formatHostPort,
  formatIp,
  isDnsName,
  isWildcard,
  parseIp,
  unmapIp,
  type Cidr,
  type HostPort,
  type IpAddr,
} from "../net/ip.ts";
import { KEEPALIVE_LIMITS, setKeepalive, socketFd, type KeepaliveSchedule } from "../net/sockopt.ts";
import { CredentialChecker, type Credentials } from "./auth.ts";
import { dial, interleaveFamilies, type Connect, type DialRace, type TargetSocket } from "./dial.ts";
import { ListenError, ProxyConfigError, replyForError, resultForReply } from "./errors.ts";
import { checkDestination, clientAllowed, type DestinationPolicy } from "./policy.ts";
import { Relay, type RelayOwner } from "./relay.ts";
import { createResolver, type DnsOptions, type Resolve } from "./resolve.ts";
import {
  AuthMethod,
  AuthStatus,
  Command,
  NEED_MORE,
  Reply,
  Socks5ProtocolError,
  encodeAuthReply,
  encodeMethodSelection,
  encodeReply,
  parseAuthRequest,
  parseGreeting,
  parseRequest,
  type ReplyCode,
  type Request,
} from "./socks5.ts";
import { createStats, observe, type ConnectionResult, type ProxyStats } from "./stats.ts";

/**
 * TCP keepalive on both legs of every connection. With the defaults a peer that stops answering
 * is found after 60 + 8 x 15 = 180 s, and an idle connection outlives any outage of the path
 * (a tunnel re-handshake, an exit reboot) shorter than two minutes.
 */
export interface KeepaliveOptions {
  /** Default true. */
  readonly enabled?: boolean;
  /** Idle time before the first probe, in milliseconds (whole seconds, 1 s..32767 s). Default 60000. */
  readonly idleMs?: number;
  /** Time between unanswered probes, in milliseconds (whole seconds, 1 s..32767 s). Default 15000. */
  readonly intervalMs?: number;
  /** Unanswered probes before the connection is reset, 1..127. Default 8. */
  readonly count?: number;
}

/** Options for {@link ProxyServer}; `update()` takes the same. */
export interface ProxyServerOptions {
  /** Addresses to listen on: IP literals with a port (port 0 picks a free one, for tests). */
  readonly listeners: readonly HostPort[];
  /** Allow `0.0.0.0` / `::` listeners. Default false: a wildcard would expose the proxy to the WAN. */
  readonly allowWildcardBind?: boolean;
  /** Clients allowed to connect; everyone else is closed before a byte is read. Required. */
  readonly allowClients: readonly Cidr[];
  /** Destinations allowed although a default deny rule or `ownAddresses` covers them. Default []. */
  readonly allowDestinations?: readonly Cidr[];
  /**
   * The gateway's own addresses, denied as destinations. Default []. The listener addresses are
   * always added.
   */
  readonly ownAddresses?: readonly IpAddr[];
  /** Require RFC 1929 username/password. Default null: no authentication. */
  readonly auth?: Credentials | null;
  /** How domain targets are resolved. Default `{ mode: "system", timeoutMs: 5000 }`. */
  readonly dns?: DnsOptions;
  /** Give up connecting to a target after this long, in ms; the client gets TTL expired. Default 10000. */
  readonly connectTimeoutMs?: number;
  /** Close clients that have not sent a complete request after this long, in ms. Default 10000. */
  readonly handshakeTimeoutMs?: number;
  /** Close relays with no byte either way for this long, in ms. Default 0: never. */
  readonly idleTimeoutMs?: number;
  /** Open client connections at most; the excess is closed at accept. Default 20000. */
  readonly maxConnections?: number;
  /** TCP keepalive on both legs. Default enabled: 60 s idle, then a probe every 15 s, 8 at most. */
  readonly keepalive?: KeepaliveOptions;
  /** Set TCP_NODELAY on both legs (relayed bytes are never held back). Default true. */
  readonly noDelay?: boolean;
  /** Opens outbound connections. Default `Bun.connect`. */
  readonly dial?: Connect;
  /** Resolves domain targets. Default: {@link createResolver} over `dns`. */
  readonly resolve?: Resolve;
  /** Default: silent. */
  readonly log?: Logger;
  /** Monotonic milliseconds, for durations and deadlines. Default `performance.now()`. */
  readonly clock?: () => number;
}

/** Options for {@link ProxyServer.stop}. */
export interface StopOptions {
  /**
   * Let open connections finish for up to this long, in ms, then reset the rest. Default 0:
   * reset them at once.
   */
  readonly drainMs?: number;
}

/** Defaults for {@link ProxyServerOptions}. */
export const PROXY_DEFAULTS = {
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 0,
  maxConnections: 20_000,
  keepaliveIdleMs: 60_000,
  keepaliveIntervalMs: 15_000,
  keepaliveCount: 8,
} as const;

interface ListenSpec {
  readonly key: string;
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

interface Settings {
  readonly listeners: readonly ListenSpec[];
  readonly allowClients: readonly Cidr[];
  readonly policy: DestinationPolicy;
  readonly auth: CredentialChecker | null;
  readonly resolve: Resolve;
  /** For logs: `system`, `tunnel` or `injected`. */
  readonly dnsMode: string;
  readonly dial: Connect | undefined;
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  /** Null: keepalive off. */
  readonly keepalive: KeepaliveSchedule | null;
  readonly noDelay: boolean;
}

/** Timers hold a signed 32-bit millisecond count; a longer delay would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** `1500ms`, `10s`: a millisecond count as a user writes durations. */
function ms(n: number): string {
  return Number.isSafeInteger(n) && n % 1000 === 0 && n !== 0 ? `${n / 1000}s` : `${n}ms`;
}

/** Like {@link positiveInt}, for a duration in milliseconds; the message speaks in durations. */
function durationMs(field: string, v: number | undefined, dflt: number, min = 1, max = MAX_TIMER_MS): number {
  const x = v ?? dflt;
  if (!Number.isSafeInteger(x) || x < min || x > max) throw new ProxyConfigError(field, `must be from ${ms(min)} to ${ms(max)}, not ${ms(x)}`);
  return x;
}

function positiveInt(field: string, v: number | undefined, dflt: number, min = 1, max = MAX_TIMER_MS): number {
  const x = v ?? dflt;
  if (!Number.isSafeInteger(x) || x < min || x > max) throw new ProxyConfigError(field, `must be an integer in ${min}..${max}, not ${x}`);
  return x;
}

function normalize(o: ProxyServerOptions): Settings {
  if (o.listeners.length === 0) throw new ProxyConfigError("listeners", "at least one listen address is required");
  const listeners: ListenSpec[] = [];
  const own: IpAddr[] = [...(o.ownAddresses ?? [])];
  o.listeners.forEach((l, i) => {
    const parsed = parseIp(l.host);
    if (!parsed) throw new ProxyConfigError(`listeners[${i}]`, `"${l.host}" is not an IP address`);
    const ip = unmapIp(parsed); // ::ffff:10.1.0.1 is 10.1.0.1; a v6-only socket could not bind it
    if (!Number.isInteger(l.port) || l.port < 0 || l.port > 65535) throw new ProxyConfigError(`listeners[${i}]`, `port ${l.port} is out of range`);
    if (isWildcard(l.host)) {
      if (!o.allowWildcardBind) throw new ProxyConfigError(`listeners[${i}]`, `${formatHostPort(l)} listens on every interface; set allowWildcardBind to allow it`);
    } else {
      own.push(ip);
    }
    const host = formatIp(ip);
    const key = formatHostPort({ host, port: l.port });
    if (!listeners.some((x) => x.key === key)) listeners.push({ key, host, port: l.port, family: ip.family });
  });
  const k = o.keepalive ?? {};
  const seconds = (field: string, value: number | undefined, dflt: number, max: number) => {
    const v = durationMs(field, value, dflt, 1000, max * 1000);
    if (v % 1000 !== 0) throw new ProxyConfigError(field, `must be whole seconds, not ${ms(v)}`);
    return v / 1000;
  };
  const keepalive =
    k.enabled === false
      ? null
      : {
          idleS: seconds("keepalive.idleMs", k.idleMs, PROXY_DEFAULTS.keepaliveIdleMs, KEEPALIVE_LIMITS.idleS),
          intervalS: seconds("keepalive.intervalMs", k.intervalMs, PROXY_DEFAULTS.keepaliveIntervalMs, KEEPALIVE_LIMITS.intervalS),
          count: positiveInt("keepalive.count", k.count, PROXY_DEFAULTS.keepaliveCount, 1, KEEPALIVE_LIMITS.count),
        };
  return {
    listeners,
    allowClients: o.allowClients,
    policy: { allowDestinations: o.allowDestinations ?? [], ownAddresses: own },
    auth: o.auth ? new CredentialChecker(o.auth) : null,
    resolve: o.resolve ?? createResolver(o.dns),
    dnsMode: o.resolve ? "injected" : (o.dns?.mode ?? "system"),
    dial: o.dial,
    connectTimeoutMs: durationMs("connectTimeoutMs", o.connectTimeoutMs, PROXY_DEFAULTS.connectTimeoutMs),
    handshakeTimeoutMs: durationMs("handshakeTimeoutMs", o.handshakeTimeoutMs, PROXY_DEFAULTS.handshakeTimeoutMs),
    idleTimeoutMs: durationMs("idleTimeoutMs", o.idleTimeoutMs, PROXY_DEFAULTS.idleTimeoutMs, 0),
    maxConnections: positiveInt("maxConnections", o.maxConnections, PROXY_DEFAULTS.maxConnections, 1, Number.MAX_SAFE_INTEGER),
    keepalive,
    noDelay: o.noDelay ?? true,
  };
}

/** Bytes a client may send after its request, before the target is connected, before we stop reading. */
const MAX_EARLY_DATA = 64 * 1024;

type Stage = "greeting" | "auth" | "request" | "dialing" | "relaying" | "closed";

type ClientSocket = Socket<Session | undefined>;

/** One client connection, from accept to close: the `data` of its socket. */
class Session implements RelayOwner {
  stage: Stage = "greeting";
  /** Handshake bytes not parsed yet. */
  buf: Uint8Array | null = null;
  /** Bytes the client sent after its request, for the target. */
  early: Uint8Array | null = null;
  clientEof = false;
  /** Reading is paused because `early` is full. */
  paused = false;
  relay: Relay | null = null;
  race: DialRace | null = null;
  result: ConnectionResult | null = null;
  reason: string | undefined;
  /** The requested target, `host:port`, for logs. */
  target: string | undefined;
  /** The address actually connected to, `ip:port`. */
  address: string | undefined;
  user: string | undefined;
  deadline: number;
  dialStart = 0;

  constructor(
    readonly socket: ClientSocket,
    readonly client: string,
    readonly startedAt: number,
    handshakeTimeoutMs: number,
    readonly ended: (s: Session, error: Error | undefined) => void,
  ) {
    this.deadline = startedAt + handshakeTimeoutMs;
  }

  relayClosed(_relay: Relay, error: Error | undefined): void {
    this.ended(this, error);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Client-supplied text made safe for a log line: control and non-ASCII characters are escaped
 * (`\u001b`), so a crafted domain name cannot inject terminal escapes or fake fields.
 */
function printable(text: string): string {
  return /^[\x21-\x7e]*$/.test(text) ? text : JSON.stringify(text).slice(1, -1).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * A SOCKS5 proxy (CONNECT only) with client and destination policy. Construct, `start()`,
 * `update()` on reload, `stop()` on shutdown; read `stats` for metrics.
 */
export class ProxyServer {
  /** Live counters; see {@link ProxyStats}. The object is updated in place, never replaced. */
  readonly stats: ProxyStats = createStats();

  #settings: Settings;
  #log: Logger;
  #clock: () => number;
  #listeners = new Map<string, TCPSocketListener<Session | undefined>>();
  #sessions = new Set<Session>();
  #handshaking = new Set<Session>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  #state: "new" | "running" | "stopping" | "stopped" = "new";
  #whenIdle: (() => void) | null = null;
  #lastOverLimitWarning = -Infinity;
  /**
   * Every listener carries the keepalive options, so accepted sockets inherit them. False when a
   * listener could not be set up that way: each client socket is then set on its own.
   */
  #listenersKeepalive = false;
  #warnedKeepalive = false;
  readonly #ended = (s: Session, err: Error | undefined) => this.#finish(s, err);
  readonly #handlers: SocketHandler<Session | undefined>;

  /** Validates `options`; throws {@link ProxyConfigError}. Binds nothing until {@link start}. */
  constructor(options: ProxyServerOptions) {
    this.#settings = normalize(options);
    this.#log = options.log ?? silentLogger;
    this.#clock = options.clock ?? (() => performance.now());
    this.#handlers = {
      open: (s) => this.#accept(s),
      data: (s, d) => {
        const sess = s.data!;
        if (sess.relay) sess.relay.fromClient(d);
        else this.#handshake(sess, d);
      },
      drain: (s) => s.data?.relay?.clientDrained(),
      end: (s) => {
        const sess = s.data;
        if (!sess) return;
        if (sess.relay) sess.relay.clientEnded();
        else this.#clientEofEarly(sess);
      },
      close: (s, err) => {
        const sess = s.data;
        if (!sess) return;
        if (sess.relay) sess.relay.clientClosed(err);
        else this.#clientGoneEarly(sess, err);
      },
      error: (s, err) => {
        this.#log.error("proxy: socket handler failed", { err });
        s.terminate();
      },
    };
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
    this.#applyListenerKeepalive();
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
    const next = normalize({ ...options, dial: options.dial ?? this.#settings.dial });
    if (options.log) this.#log = options.log;
    if (this.#state === "running") {
      const added = next.listeners.filter((l) => !this.#listeners.has(l.key));
      this.#bindAll(added);
      for (const [key, listener] of this.#listeners) {
        if (next.listeners.some((l) => l.key === key)) continue;
        listener.stop(false);
        this.#listeners.delete(key);
        this.#log.info("proxy stopped listening", { listen: key });
      }
      this.#refreshListenerStats();
    }
    this.#settings = next;
    if (this.#state === "running") {
      this.#applyListenerKeepalive();
      this.#restartSweep();
    }
    this.#log.info("proxy configuration updated", { listen: this.stats.listeners.join(","), connections: this.#sessions.size });
  }

  /**
   * Stops accepting, lets open connections run for up to `drainMs`, then resets the rest.
   * Resolves when every connection is closed. Safe to call twice.
   */
  async stop(options: StopOptions = {}): Promise<void> {
    if (this.#state === "stopped" || this.#state === "stopping") return;
    const wasRunning = this.#state === "running";
    this.#state = "stopping";
    for (const listener of this.#listeners.values()) listener.stop(false);
    this.#listeners.clear();
    this.#refreshListenerStats();
    const drainMs = options.drainMs ?? 0;
    if (wasRunning && this.#sessions.size > 0 && drainMs > 0) {
      this.#log.info("proxy draining", { connections: this.#sessions.size, drainMs });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        this.#whenIdle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#whenIdle = null;
    }
    const left = this.#sessions.size;
    for (const s of [...this.#sessions]) this.#abort(s, "shutting down");
    clearInterval(this.#sweep);
    this.#sweep = undefined;
    this.#state = "stopped";
    if (wasRunning) this.#log.info("proxy stopped", { reset: left });
  }

  #bindAll(specs: readonly ListenSpec[]): void {
    const bound: [string, TCPSocketListener<Session | undefined>][] = [];
    try {
      for (const l of specs) {
        try {
          // `ipv6Only` works at runtime but is missing from bun-types' listen options.
          const options: TCPSocketListenOptions<Session | undefined> & { ipv6Only?: boolean } = {
            hostname: l.host,
            port: l.port,
            exclusive: true, // never share the port (SO_REUSEPORT) with another process
            ipv6Only: l.family === 6, // "[::]:1080" and "0.0.0.0:1080" can then coexist
            allowHalfOpen: true,
            socket: this.#handlers,
          };
          const listener = Bun.listen<Session | undefined>(options);
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

  /**
   * Sets the keepalive options on every listening socket; Linux copies them to each socket it
   * accepts, which saves four syscalls per connection and gives the client leg our own probe
   * schedule instead of Bun's fixed one. Bun.listen offers no hook before listen(2), so a client
   * whose handshake completes in the microseconds between a new listener's bind and this call
   * gets no keepalive on its client leg (its target leg still has it).
   */
  #applyListenerKeepalive(): void {
    const schedule = this.#settings.keepalive;
    let ok = true;
    for (const listener of this.#listeners.values()) {
      const fd = socketFd(listener);
      try {
        if (fd === null) throw new Error("Bun does not expose the listener's fd");
        setKeepalive(fd, schedule);
      } catch (err) {
        ok = false;
        this.#keepaliveFallback(err);
      }
    }
    this.#listenersKeepalive = ok;
  }

  /** Keepalive on one connected socket: our schedule, or Bun's if setsockopt cannot be reached. */
  #socketKeepalive(socket: ClientSocket | TargetSocket): void {
    const schedule = this.#settings.keepalive;
    if (schedule === null) return; // sockets start with keepalive off
    const fd = socketFd(socket);
    try {
      if (fd === null) throw new Error("Bun does not expose the socket's fd");
      setKeepalive(fd, schedule);
    } catch (err) {
      this.#keepaliveFallback(err);
      socket.setKeepAlive(true, schedule.idleS * 1000);
    }
  }

  #keepaliveFallback(err: unknown): void {
    if (this.#warnedKeepalive) return;
    this.#warnedKeepalive = true;
    this.#log.warn("proxy: cannot set the keepalive probe schedule; using Bun's (a probe every second, 10 at most)", { err });
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

  #tick(): void {
    const now = this.#clock();
    for (const s of this.#handshaking) {
      if (now < s.deadline) continue;
      this.stats.handshakeTimeouts++;
      this.#fail(s, null, "protocol_error", "handshake timeout");
    }
    const idle = this.#settings.idleTimeoutMs;
    if (idle > 0) {
      for (const s of this.#sessions) {
        const r = s.relay;
        if (r && r.clock && now - r.lastActivity >= idle) {
          s.reason = "idle timeout";
          r.abort();
        }
      }
    }
  }

  #accept(socket: ClientSocket): void {
    const remote = socket.remoteAddress as string | undefined;
    if (remote === undefined) {
      // Reset before we got to it: Bun reports no peer for a socket that is already gone.
      if (this.#log.debugEnabled) this.#log.debug("proxy: accepted a connection that was already reset");
      socket.terminate();
      return;
    }
    const ip = parseIp(remote);
    const client = formatHostPort({ host: ip ? formatIp(unmapIp(ip)) : remote, port: socket.remotePort });
    const settings = this.#settings;
    if (this.#state !== "running") {
      socket.end();
      return;
    }
    if (!ip || !clientAllowed(ip, settings.allowClients)) {
      this.stats.connectionsTotal.denied_client++;
      this.#log.info("proxy connection closed", { client, result: "denied_client" });
      socket.end();
      return;
    }
    if (this.#sessions.size >= settings.maxConnections) {
      this.stats.connectionsOverLimit++;
      const now = this.#clock();
      if (now - this.#lastOverLimitWarning > 1000) {
        this.#lastOverLimitWarning = now;
        this.#log.warn("proxy at maxConnections, closing new connections", { maxConnections: settings.maxConnections, overLimitTotal: this.stats.connectionsOverLimit });
      }
      socket.end();
      return;
    }
    const sess = new Session(socket, client, this.#clock(), settings.handshakeTimeoutMs, this.#ended);
    socket.data = sess;
    this.#sessions.add(sess);
    this.#handshaking.add(sess);
    this.stats.connectionsActive++;
    // Bun turns TCP_NODELAY on for every socket itself (checked with getsockopt in the tests), so
    // only turning it off costs a syscall.
    if (!settings.noDelay) socket.setNoDelay(false);
    if (!this.#listenersKeepalive) this.#socketKeepalive(socket);
    if (this.#log.debugEnabled) this.#log.debug("proxy accepted", { client, listen: formatHostPort({ host: socket.localAddress, port: socket.localPort }) });
  }

  #handshake(sess: Session, d: Uint8Array): void {
    if (sess.stage === "dialing") {
      sess.early = sess.early ? concat(sess.early, d) : d;
      if (sess.early.length >= MAX_EARLY_DATA && !sess.paused) {
        sess.paused = true;
        sess.socket.pause();
      }
      return;
    }
    let buf = sess.buf ? concat(sess.buf, d) : d;
    sess.buf = null;
    while (buf.length > 0 && sess.stage !== "closed") {
      switch (sess.stage) {
        case "greeting": {
          const r = parseGreeting(buf);
          if (r === NEED_MORE) break;
          if (r instanceof Socks5ProtocolError) return this.#fail(sess, null, "protocol_error", r.message);
          const auth = this.#settings.auth;
          const want = auth ? AuthMethod.usernamePassword : AuthMethod.noAuth;
          if (!r.value.methods.includes(want)) {
            sess.socket.write(encodeMethodSelection(AuthMethod.noAcceptable));
            const why = `no acceptable auth method (offered ${r.value.methods.join(",")})`;
            if (auth) this.stats.authFailures++;
            return this.#fail(sess, null, auth ? "auth_failed" : "protocol_error", why);
          }
          sess.socket.write(encodeMethodSelection(want));
          sess.stage = auth ? "auth" : "request";
          buf = buf.subarray(r.consumed);
          continue;
        }
        case "auth": {
          const r = parseAuthRequest(buf);
          if (r === NEED_MORE) break;
          if (r instanceof Socks5ProtocolError) {
            sess.socket.write(encodeAuthReply(AuthStatus.failure));
            return this.#fail(sess, null, "protocol_error", r.message);
          }
          const auth = this.#settings.auth;
          if (auth && !auth.check(r.value)) {
            this.stats.authFailures++;
            sess.socket.write(encodeAuthReply(AuthStatus.failure));
            if (this.#log.debugEnabled) this.#log.debug("proxy auth failed", { client: sess.client, user: printable(new TextDecoder().decode(r.value.username)) });
            return this.#fail(sess, null, "auth_failed", "bad username or password");
          }
          sess.user = auth?.username;
          sess.socket.write(encodeAuthReply(AuthStatus.success));
          sess.stage = "request";
          buf = buf.subarray(r.consumed);
          continue;
        }
        case "request": {
          const r = parseRequest(buf);
          if (r === NEED_MORE) break;
          if (r instanceof Socks5ProtocolError) return this.#fail(sess, r.reply ?? Reply.generalFailure, "protocol_error", r.message);
          return this.#request(sess, r.value, buf.subarray(r.consumed));
        }
      }
      break; // NEED_MORE
    }
    if (buf.length > 0 && sess.stage !== "closed") sess.buf = buf.slice();
  }

  #request(sess: Session, req: Request, early: Uint8Array): void {
    this.#handshaking.delete(sess);
    sess.stage = "dialing";
    // Keep reading while dialing, so that a client that resets is noticed and its dial abandoned;
    // what it sends meanwhile is held (up to MAX_EARLY_DATA, then the kernel holds the rest).
    if (early.length > 0) sess.early = early;
    if (early.length >= MAX_EARLY_DATA) {
      sess.paused = true;
      sess.socket.pause();
    }
    const host = req.host;
    sess.target = host.type === "domain" ? `${printable(host.name)}:${req.port}` : formatHostPort({ host: formatIp(host.ip), port: req.port });
    if (this.#log.debugEnabled) this.#log.debug("proxy request", { client: sess.client, command: req.command, target: sess.target, user: sess.user });
    if (req.command !== Command.connect) {
      return this.#fail(sess, Reply.commandNotSupported, "protocol_error", `command ${req.command} not supported`);
    }
    if (req.port === 0) return this.#fail(sess, Reply.generalFailure, "protocol_error", "port 0");
    sess.dialStart = this.#clock();
    const literal = host.type === "ip" ? host.ip : parseIp(host.name);
    if (literal) return this.#dialAddresses(sess, [literal], req.port);
    const name = (host as { name: string }).name;
    if (!isDnsName(name)) return this.#fail(sess, Reply.hostUnreachable, "unreachable", "not a valid domain name");
    this.#settings.resolve(name).then(
      (addrs) => {
        if (sess.stage !== "dialing") return; // the client went away meanwhile
        if (this.#log.debugEnabled) this.#log.debug("proxy resolved", { client: sess.client, name, addresses: addrs.map(formatIp).join(",") });
        this.#dialAddresses(sess, addrs, req.port);
      },
      (err: unknown) => {
        if (sess.stage !== "dialing") return;
        const reply = replyForError(err);
        this.#fail(sess, reply, resultForReply(reply), err instanceof Error ? err.message : String(err));
      },
    );
  }

  #dialAddresses(sess: Session, addrs: readonly IpAddr[], port: number): void {
    const settings = this.#settings;
    const allowed: IpAddr[] = [];
    let denial: string | null = null;
    for (const a of addrs) {
      const why = checkDestination(a, settings.policy);
      if (why === null) allowed.push(unmapIp(a));
      else denial ??= `${why} (${formatIp(a)})`;
    }
    if (allowed.length === 0) {
      if (denial) return this.#fail(sess, Reply.notAllowed, "denied_destination", `destination denied: ${denial}`);
      return this.#fail(sess, Reply.hostUnreachable, "unreachable", "name has no addresses");
    }
    sess.race = dial(interleaveFamilies(allowed), {
      port,
      connectTimeoutMs: settings.connectTimeoutMs,
      connect: settings.dial,
      stats: this.stats,
      onDone: (r) => {
        sess.race = null;
        if ("error" in r) {
          const reply = replyForError(r.error);
          const code = errorCode(r.error);
          return this.#fail(sess, reply, resultForReply(reply), code && !r.error.message.includes(code) ? `${code}: ${r.error.message}` : r.error.message);
        }
        this.#connected(sess, r.socket, r.address, port);
      },
    });
  }

  #connected(sess: Session, target: TargetSocket, address: IpAddr, port: number): void {
    const settings = this.#settings;
    if (!settings.noDelay) target.setNoDelay(false);
    this.#socketKeepalive(target);
    const now = this.#clock();
    observe(this.stats.connectDuration, (now - sess.dialStart) / 1000);
    sess.address = formatHostPort({ host: formatIp(address), port });
    // RFC 1928 §6: BND.ADDR/BND.PORT are the address the server used to connect to the target.
    const local = parseIp(target.localAddress);
    const bound = local ? { host: { type: "ip" as const, ip: unmapIp(local) }, port: target.localPort } : undefined;
    const relay = new Relay(sess.socket, target, this.stats, sess, settings.idleTimeoutMs > 0 ? this.#clock : null);
    target.data.leg = relay;
    sess.relay = relay;
    sess.stage = "relaying";
    this.#setResult(sess, "ok");
    sess.socket.write(encodeReply(Reply.succeeded, bound));
    if (this.#log.debugEnabled) this.#log.debug("proxy connected", { client: sess.client, target: sess.target, address: sess.address, bound: `${target.localAddress}:${target.localPort}`, ms: Math.round(now - sess.dialStart) });
    const early = sess.early;
    sess.early = null;
    if (early) relay.fromClient(early);
    if (sess.clientEof) relay.clientEnded();
    if (sess.paused) sess.socket.resume();
  }

  #setResult(sess: Session, result: ConnectionResult): void {
    if (sess.result !== null) return;
    sess.result = result;
    this.stats.connectionsTotal[result]++;
  }

  /** Ends a connection that never reached the relay: optional reply, then close. */
  #fail(sess: Session, reply: ReplyCode | null, result: ConnectionResult, reason: string): void {
    if (sess.stage === "closed") return;
    this.#setResult(sess, result);
    sess.reason ??= reason;
    if (reply !== null) sess.socket.write(encodeReply(reply));
    sess.socket.end(); // fires close → #clientGoneEarly → #finish
  }

  #clientEofEarly(sess: Session): void {
    if (sess.stage === "dialing") {
      sess.clientEof = true; // forwarded as a FIN once the relay starts
      return;
    }
    this.#fail(sess, null, "protocol_error", "client closed during handshake");
  }

  #clientGoneEarly(sess: Session, err: Error | undefined): void {
    if (sess.stage === "closed") return;
    if (sess.stage === "dialing" && sess.result === null) {
      // The client gave up waiting for the target (its own connect timeout, usually).
      sess.race?.cancel();
      sess.race = null;
      this.#setResult(sess, "timeout");
      sess.reason ??= "client closed while connecting";
    } else {
      this.#setResult(sess, "protocol_error");
      sess.reason ??= err ? `client error: ${err.message}` : "client closed during handshake";
    }
    this.#finish(sess, err);
  }

  #abort(sess: Session, reason: string): void {
    sess.reason ??= reason;
    if (sess.relay) {
      sess.relay.abort();
      return;
    }
    sess.race?.cancel();
    sess.race = null;
    this.#setResult(sess, "protocol_error");
    sess.socket.terminate();
    this.#finish(sess, undefined);
  }

  #finish(sess: Session, err: Error | undefined): void {
    if (sess.stage === "closed") return;
    sess.stage = "closed";
    sess.buf = null;
    sess.early = null;
    this.#sessions.delete(sess);
    this.#handshaking.delete(sess);
    this.stats.connectionsActive--;
    const relay = sess.relay;
    this.#log.info("proxy connection closed", {
      client: sess.client,
      target: sess.target,
      address: sess.address,
      user: sess.user,
      result: sess.result ?? "protocol_error",
      reason: sess.reason ?? (err ? err.message : undefined),
      up: relay?.bytesClientToTarget ?? 0,
      down: relay?.bytesTargetToClient ?? 0,
      duration: ((this.#clock() - sess.startedAt) / 1000).toFixed(3),
    });
    if (this.#sessions.size === 0) this.#whenIdle?.();
  }
}
