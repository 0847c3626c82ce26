/**
 * The proxy's options, and their normalisation into the settings the server runs with.
 *
 * Does not read config files or flags: lib/config validates a config file and lib/cli/proxy.ts the
 * standalone flags, and both hand over plain values. Defaults come from the config schema
 * (`PROXY_DEFAULTS`), never from a copy here. What is checked here is what the proxy's own
 * mechanisms cannot run with (a listener that is not an IP literal, a timer longer than 2^31 ms,
 * a keepalive schedule the kernel refuses), so that an embedder gets a {@link ProxyConfigError}
 * naming the field instead of a socket that misbehaves later.
 */
import { PROXY_DEFAULTS } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { formatHostPort, formatIp, isWildcard, parseHostPort, parseIp, socketAddressKey, unmapIp, type Cidr, type HostPort, type IpAddr } from "../net/ip.ts";
import { KEEPALIVE_LIMITS, type KeepaliveSchedule } from "../net/sockopt.ts";
import { CredentialChecker, type Credentials } from "./auth.ts";
import type { Connect, SourceAddresses } from "./dial.ts";
import { ProxyConfigError } from "./errors.ts";
import type { DestinationPolicy } from "./policy.ts";
import type { ProtocolFactory } from "./protocol.ts";
import { createResolver, type DnsOptions, type Resolve } from "./resolve.ts";
import { normalizeUdpOptions, type UdpOptions, type UdpSettings } from "./udp-options.ts";

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

/** An address to listen on, and which protocols it speaks. */
export interface ListenAddress extends HostPort {
  /**
   * The names of the protocols this listener speaks (`socks5`, `http`), a subset of
   * {@link ProxyServerOptions.protocols}. Default: all of them. A SOCKS4 client is answered with
   * SOCKS4's refusal wherever SOCKS5 is spoken.
   */
  readonly protocols?: readonly string[];
}

/** Options for `ProxyServer`; `update()` takes the same. */
export interface ProxyServerOptions {
  /** Addresses to listen on: IP literals with a port (port 0 picks a free one, for tests). */
  readonly listeners: readonly ListenAddress[];
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
  /**
   * Require RFC 1929 username/password (HTTP: Basic), for one account or several; an account with
   * a `source` is pinned to that exit. Default null: no authentication.
   */
  readonly auth?: Credentials | readonly Credentials[] | null;
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
  /**
   * The protocols the listeners speak, each claiming first bytes; a byte nobody claims goes to the
   * first. Default: SOCKS5 (with the SOCKS4 refusal) and HTTP. Fixed at construction (`update()`
   * ignores it); a listener may speak a subset (`ListenAddress.protocols`).
   */
  readonly protocols?: readonly ProtocolFactory[];
  /** SOCKS5 UDP ASSOCIATE. Default on for every listener, ending with the TCP connection. */
  readonly udp?: UdpOptions;
  /**
   * Listeners whose outbound connections bind given source addresses (an exit's tunnel addresses,
   * so that policy routing takes that exit and no other), by listener `host:port` as in `listeners`.
   * Default: none.
   */
  readonly pinned?: ReadonlyMap<string, SourceAddresses>;
  /**
   * The exits, as the source addresses of each (named): a connection's log line names the exit
   * its outbound leg left by. Default: none, the line shows no exit unless the connection is pinned.
   */
  readonly exits?: readonly SourceAddresses[];
  /**
   * Whether an exit (by name) is known to be down: a connection pinned to it then fails at once,
   * "network unreachable", instead of waiting out `connectTimeoutMs` in its dead tunnel. Default:
   * none known down (the tunnel's kill switch still keeps it from leaving any other way).
   */
  readonly exitDown?: (exit: string) => boolean;
  /** Opens outbound connections. Default `Bun.connect`. */
  readonly dial?: Connect;
  /** Resolves domain targets. Default: {@link createResolver} over `dns`. */
  readonly resolve?: Resolve;
  /** Default: silent. */
  readonly log?: Logger;
  /** Monotonic milliseconds, for durations and deadlines. Default `performance.now()`. */
  readonly clock?: () => number;
}

/** The defaults of the config schema's `proxy` section, in the units the options take. */
const DEFAULTS = {
  connectTimeoutMs: PROXY_DEFAULTS.connectTimeout,
  handshakeTimeoutMs: PROXY_DEFAULTS.handshakeTimeout,
  idleTimeoutMs: PROXY_DEFAULTS.idleTimeout,
  maxConnections: PROXY_DEFAULTS.maxConnections,
  keepaliveIdleMs: PROXY_DEFAULTS.keepaliveIdle,
  keepaliveIntervalMs: PROXY_DEFAULTS.keepaliveInterval,
  keepaliveCount: PROXY_DEFAULTS.keepaliveCount,
} as const;

/** One address to listen on, normalised. */
export interface ListenSpec {
  /** `host:port` with the host unmapped and canonical: the identity of a listener across updates. */
  readonly key: string;
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** Protocol names, or null for every protocol of the server. */
  readonly protocols: readonly string[] | null;
}

/** {@link ProxyServerOptions} checked, defaulted and unmapped: what the server runs with. */
export interface Settings {
  readonly listeners: readonly ListenSpec[];
  readonly allowClients: readonly Cidr[];
  /** `ownAddresses` (plus the listeners) unmapped, as `checkDestination` expects. */
  readonly policy: DestinationPolicy;
  readonly auth: CredentialChecker | null;
  readonly resolve: Resolve;
  /** For logs: `system`, `tunnel` or `injected`. */
  readonly dnsMode: string;
  readonly dial: Connect | undefined;
  /** Source addresses by listener key (see {@link ProxyServerOptions.pinned}). */
  readonly pinned: ReadonlyMap<string, SourceAddresses>;
  /** Exit names by tunnel address (see {@link ProxyServerOptions.exits}). */
  readonly exitByAddress: ReadonlyMap<string, string>;
  /** See {@link ProxyServerOptions.exitDown}; null: none known down. */
  readonly exitDown: ((exit: string) => boolean) | null;
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  /** Null: keepalive off. */
  readonly keepalive: KeepaliveSchedule | null;
  readonly noDelay: boolean;
  readonly udp: UdpSettings;
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

/** A keepalive duration in whole seconds, as the kernel takes it. */
function seconds(field: string, value: number | undefined, dflt: number, max: number): number {
  const v = durationMs(field, value, dflt, 1000, max * 1000);
  if (v % 1000 !== 0) throw new ProxyConfigError(field, `must be whole seconds, not ${ms(v)}`);
  return v / 1000;
}

function keepaliveSchedule(k: KeepaliveOptions): KeepaliveSchedule | null {
  if (k.enabled === false) return null;
  return {
    idleS: seconds("keepalive.idleMs", k.idleMs, DEFAULTS.keepaliveIdleMs, KEEPALIVE_LIMITS.idleS),
    intervalS: seconds("keepalive.intervalMs", k.intervalMs, DEFAULTS.keepaliveIntervalMs, KEEPALIVE_LIMITS.intervalS),
    count: positiveInt("keepalive.count", k.count, DEFAULTS.keepaliveCount, 1, KEEPALIVE_LIMITS.count),
  };
}

/** `pinned` keyed like {@link ListenSpec.key} (host unmapped and canonical). */
function pinnedByKey(pinned: ReadonlyMap<string, SourceAddresses> | undefined): Map<string, SourceAddresses> {
  const out = new Map<string, SourceAddresses>();
  for (const [listen, source] of pinned ?? []) {
    let hp;
    try {
      hp = parseHostPort(listen, { names: false });
    } catch {
      throw new ProxyConfigError("pinned", `"${listen}" is not ip:port`);
    }
    out.set(socketAddressKey(hp)!, source);
  }
  return out;
}

/** Exit names by tunnel address, unmapped and canonical as a connection's bound address is. */
function exitsByAddress(exits: readonly SourceAddresses[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of exits) {
    for (const a of [e[4], e[6]]) {
      const ip = a === undefined ? null : parseIp(a);
      if (ip && e.exit !== undefined) out.set(formatIp(unmapIp(ip)), e.exit);
    }
  }
  return out;
}

/** Checks and defaults `o`; throws {@link ProxyConfigError} naming the first bad field. */
export function normalizeOptions(o: ProxyServerOptions): Settings {
  if (o.listeners.length === 0) throw new ProxyConfigError("listeners", "at least one listen address is required");
  const listeners: ListenSpec[] = [];
  const own: IpAddr[] = (o.ownAddresses ?? []).map(unmapIp);
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
    if (l.protocols !== undefined && l.protocols.length === 0) throw new ProxyConfigError(`listeners[${i}].protocols`, "must name at least one protocol");
    const protocols = l.protocols ? [...new Set(l.protocols)].sort() : null;
    if (!listeners.some((x) => x.key === key)) listeners.push({ key, host, port: l.port, family: ip.family, protocols });
  });
  const keepalive = keepaliveSchedule(o.keepalive ?? {});
  return {
    listeners,
    allowClients: o.allowClients,
    policy: { allowDestinations: o.allowDestinations ?? [], ownAddresses: own },
    auth: o.auth ? new CredentialChecker(o.auth) : null,
    resolve: o.resolve ?? createResolver(o.dns),
    dnsMode: o.resolve ? "injected" : (o.dns?.mode ?? "system"),
    dial: o.dial,
    pinned: pinnedByKey(o.pinned),
    exitByAddress: exitsByAddress(o.exits ?? []),
    exitDown: o.exitDown ?? null,
    connectTimeoutMs: durationMs("connectTimeoutMs", o.connectTimeoutMs, DEFAULTS.connectTimeoutMs),
    handshakeTimeoutMs: durationMs("handshakeTimeoutMs", o.handshakeTimeoutMs, DEFAULTS.handshakeTimeoutMs),
    idleTimeoutMs: durationMs("idleTimeoutMs", o.idleTimeoutMs, DEFAULTS.idleTimeoutMs, 0),
    maxConnections: positiveInt("maxConnections", o.maxConnections, DEFAULTS.maxConnections, 1, Number.MAX_SAFE_INTEGER),
    keepalive,
    noDelay: o.noDelay ?? true,
    // The idle timer is checked here, where durations are, so that its message speaks in durations.
    udp: normalizeUdpOptions({ ...o.udp, idleTimeoutMs: durationMs("udp.idleTimeoutMs", o.udp?.idleTimeoutMs, PROXY_DEFAULTS.udp.idleTimeout, 0) }, listeners.map((l) => l.key)),
  };
}
