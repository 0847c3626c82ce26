/**
 * The SOCKS5 UDP ASSOCIATE options of a proxy (`ProxyServerOptions.udp`), their normalisation, and
 * the question "may a connection that reached this local address open an association?".
 *
 * Does not open sockets (udp-relay.ts) or speak SOCKS5 (socks5-session.ts). Defaults come from the
 * config schema (`PROXY_DEFAULTS.udp`), never from a copy here.
 */
import { PROXY_DEFAULTS } from "../config/schema.ts";
import { formatHostPort, formatIp, isWildcard, parseIp, socketAddressKey, unmapIp, type HostPort } from "../net/ip.ts";
import { ProxyConfigError } from "./errors.ts";

/** UDP ASSOCIATE (RFC 1928 §7) options; every field is optional. */
export interface UdpOptions {
  /** Answer UDP ASSOCIATE at all. Default true. */
  readonly enabled?: boolean;
  /**
   * The listeners (as in `ProxyServerOptions.listeners`) that answer UDP ASSOCIATE; the others
   * answer "command not supported". Default null: every listener.
   */
  readonly listeners?: readonly HostPort[] | null;
  /** End an association after this long without a datagram either way, in ms. Default 0: only with its TCP connection. */
  readonly idleTimeoutMs?: number;
  /** Associations open at once, over every listener. Default 1024. */
  readonly maxAssociations?: number;
  /** Distinct destinations (address and port) one association may send to. Default 256. */
  readonly maxDestinations?: number;
  /** Ports the relay sockets are bound from, inclusive. Default null: an ephemeral port. */
  readonly portRange?: { readonly first: number; readonly last: number } | null;
}

/** {@link UdpOptions} checked and defaulted. */
export interface UdpSettings {
  readonly enabled: boolean;
  /** Listener keys (`host:port`, host unmapped and canonical) that answer; null: all. */
  readonly listeners: readonly string[] | null;
  readonly idleTimeoutMs: number;
  readonly maxAssociations: number;
  readonly maxDestinations: number;
  readonly portRange: { readonly first: number; readonly last: number } | null;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function int(field: string, v: number | undefined, dflt: number, min: number, max: number): number {
  const x = v ?? dflt;
  if (!Number.isSafeInteger(x) || x < min || x > max) throw new ProxyConfigError(field, `must be an integer in ${min}..${max}, not ${x}`);
  return x;
}

/** `host:port` with the host unmapped and canonical: how listeners are keyed. */
function listenerKey(hp: HostPort, field: string): string {
  const key = socketAddressKey(hp);
  if (key === null) throw new ProxyConfigError(field, `"${hp.host}" is not an IP address`);
  return key;
}

/**
 * Checks and defaults `o`; throws {@link ProxyConfigError} naming the field (`udp.portRange`, ...).
 * `listenerKeys` are the server's listeners: `udp.listeners` must name some of them.
 */
export function normalizeUdpOptions(o: UdpOptions | undefined, listenerKeys: readonly string[]): UdpSettings {
  const d = PROXY_DEFAULTS.udp;
  const u = o ?? {};
  let listeners: string[] | null = null;
  if (u.listeners != null) {
    listeners = u.listeners.map((l, i) => {
      const key = listenerKey(l, `udp.listeners[${i}]`);
      if (!listenerKeys.includes(key)) throw new ProxyConfigError(`udp.listeners[${i}]`, `${key} is not one of the listeners (${listenerKeys.join(", ")})`);
      return key;
    });
  }
  const range = u.portRange ?? null;
  if (range) {
    int("udp.portRange.first", range.first, 0, 1, 65535);
    int("udp.portRange.last", range.last, 0, 1, 65535);
    if (range.first > range.last) throw new ProxyConfigError("udp.portRange", `first port ${range.first} is above last port ${range.last}`);
  }
  return {
    enabled: u.enabled ?? d.enabled,
    listeners,
    idleTimeoutMs: int("udp.idleTimeoutMs", u.idleTimeoutMs, d.idleTimeout, 0, MAX_TIMER_MS),
    maxAssociations: int("udp.maxAssociations", u.maxAssociations, d.maxAssociations, 1, Number.MAX_SAFE_INTEGER),
    maxDestinations: int("udp.maxDestinations", u.maxDestinations, d.maxDestinations, 1, 65536),
    portRange: range ? { first: range.first, last: range.last } : null,
  };
}

/**
 * Whether a connection accepted on `local` (its socket's local address and port, as Bun reports
 * them) may open an association: UDP is on and the listener that took it is listed. A wildcard
 * listener takes every address of its family on its port (the config refuses a wildcard and a
 * specific address on one port, so at most one listener matches).
 */
export function udpAllowedOn(udp: UdpSettings, local: HostPort): boolean {
  if (!udp.enabled) return false;
  if (udp.listeners === null) return true;
  const ip = parseIp(local.host);
  if (!ip) return false;
  const a = unmapIp(ip);
  if (udp.listeners.includes(formatHostPort({ host: formatIp(a), port: local.port }))) return true;
  return udp.listeners.some((key) => {
    const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(key);
    return m !== null && Number(m[2]) === local.port && isWildcard(m[1]!) && parseIp(m[1]!)!.family === a.family;
  });
}
