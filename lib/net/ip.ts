/**
 * IP addresses, CIDR prefixes and `host:port` strings, as pure functions.
 *
 * Does not resolve names and does not touch sockets. Addresses are compared as bytes, so
 * `::ffff:10.0.0.1` (an IPv4-mapped IPv6 address) is unmapped to `10.0.0.1` before matching; that
 * is how a pod could otherwise sneak a private IPv4 destination past an IPv4-only deny list.
 */
import { isIPv4, isIPv6 } from "node:net";

/** An address as bytes: 4 for IPv4, 16 for IPv6. */
export interface IpAddr {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

/** A prefix: the network address (host bits zero) and its length. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** A parsed `host:port`. `host` is an IP literal (without brackets) or a DNS name. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parses an IPv4 or IPv6 literal, or returns null. Zone ids (`fe80::1%eth0`) are rejected. */
export function parseIp(text: string): IpAddr | null {
  if (isIPv4(text)) {
    // isIPv4 has checked the form (four decimal parts, 0..255, no leading zeros), so the digits
    // are summed in place: split/map/Uint8Array.from cost more than the check, once per connection.
    const bytes = new Uint8Array(4);
    let part = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x2e) part++;
      else bytes[part] = bytes[part]! * 10 + (c - 0x30);
    }
    return { family: 4, bytes };
  }
  if (!isIPv6(text) || text.includes("%")) return null;
  return { family: 6, bytes: ipv6Bytes(text) };
}

function ipv6Bytes(text: string): Uint8Array {
  const out = new Uint8Array(16);
  let head = text;
  let tailV4: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    tailV4 = text.slice(lastColon + 1).split(".").map(Number);
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const [left = "", right] = head.split("::") as [string, string | undefined];
  const l = left === "" ? [] : left.split(":");
  const r = right === undefined ? [] : right === "" ? [] : right.split(":");
  const groups = right === undefined ? l : [...l, ...Array(8 - l.length - r.length).fill("0"), ...r];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tailV4.length === 4) out.set(tailV4, 12);
  return out;
}

/** Formats an address canonically (`10.0.0.1`, `2001:db8::1`). */
export function formatIp(addr: IpAddr): string {
  const b = addr.bytes;
  if (addr.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952 §4.2: compress the longest run (length >= 2) of zero groups, the first one on a tie.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return hex.slice(0, best).join(":") + "::" + hex.slice(best + bestLen).join(":");
}

/** Returns the IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else the input. */
export function unmapIp(addr: IpAddr): IpAddr {
  if (addr.family !== 6) return addr;
  const b = addr.bytes;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return addr;
  if (b[10] !== 0xff || b[11] !== 0xff) return addr;
  return { family: 4, bytes: b.slice(12) };
}

/** Why a CIDR string was rejected. */
export class CidrError extends Error {
  override name = "CidrError";
}

/**
 * Parses `a.b.c.d/n` or `x::/n`; a bare address means a single host (/32 or /128).
 * Host bits must be zero unless `{ allowHostBits: true }` (interface addresses like `10.100.0.2/24`).
 * Throws {@link CidrError} naming what is wrong.
 */
export function parseCidr(text: string, opts: { allowHostBits?: boolean } = {}): Cidr {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const addr = parseIp(addrText);
  if (!addr) throw new CidrError(`"${addrText}" is not an IP address`);
  const max = addr.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new CidrError(`prefix length "/${p}" must be 0..${max}`);
    prefix = Number(p);
  }
  const masked = maskBytes(addr.bytes, prefix);
  if (!opts.allowHostBits && !bytesEqual(masked, addr.bytes)) {
    throw new CidrError(`host bits are set; did you mean ${formatIp({ family: addr.family, bytes: masked })}/${prefix}?`);
  }
  return { family: addr.family, bytes: opts.allowHostBits ? addr.bytes : masked, prefix };
}

/** Formats a prefix as `network/len`. */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c)}/${c.prefix}`;
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = bytes[i]! & (bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff);
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when `addr` lies inside `cidr`. IPv4-mapped IPv6 addresses match IPv4 prefixes. */
export function cidrContains(cidr: Cidr, addr: IpAddr): boolean {
  const a = unmapIp(addr);
  if (a.family !== cidr.family) return false;
  const full = cidr.prefix >> 3;
  for (let i = 0; i < full; i++) if (a.bytes[i] !== cidr.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a.bytes[full]! & mask) === (cidr.bytes[full]! & mask);
}

/** True when any prefix in `list` contains `addr`. */
export function anyContains(list: readonly Cidr[], addr: IpAddr): boolean {
  for (const c of list) if (cidrContains(c, addr)) return true;
  return false;
}

/** Why a `host:port` string was rejected. */
export class HostPortError extends Error {
  override name = "HostPortError";
}

const DNS_NAME = /^(?=.{1,253}$)([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*\.?$/;

/** True for a syntactically valid DNS host name. */
export function isDnsName(text: string): boolean {
  return DNS_NAME.test(text);
}

/**
 * Parses `1.2.3.4:80`, `[2001:db8::1]:80` or `name.example:80`. A bare IPv6 address without
 * brackets is rejected, because its last group would be mistaken for the port.
 * `{ names: false }` rejects DNS names (listen addresses must be literals).
 */
export function parseHostPort(text: string, opts: { names?: boolean } = {}): HostPort {
  let host: string, portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") throw new HostPortError(`expected "[ipv6]:port"`);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) throw new HostPortError(`"${host}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw new HostPortError(`expected "host:port"`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) throw new HostPortError(`put an IPv6 address in brackets: "[${host}]:${portText}"`);
    if (!isIPv4(host)) {
      if (opts.names === false) throw new HostPortError(`"${host}" is not an IP address`);
      if (!isDnsName(host)) throw new HostPortError(`"${host}" is neither an IP address nor a DNS name`);
    }
  }
  if (!/^\d{1,5}$/.test(portText)) throw new HostPortError(`port "${portText}" is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new HostPortError(`port ${port} is out of range 1..65535`);
  return { host, port };
}

/** Formats a `host:port`, bracketing IPv6. */
export function formatHostPort(hp: HostPort): string {
  // join, not a template: a template makes a rope, which keeps its host and port strings alive
  // beside it for as long as the result lives (a connection's log fields: ~100 bytes each).
  return [hp.host.includes(":") ? `[${hp.host}]` : hp.host, hp.port].join(":");
}

/**
 * The one text of a socket address `ip:port`: the host unmapped (`::ffff:10.0.0.1` is 10.0.0.1)
 * and written as {@link formatIp} writes it (`[0:0::1]:80` is `[::1]:80`). How listeners are keyed,
 * so that two spellings of one address are one listener. Null when `hp.host` is not an IP literal.
 */
export function socketAddressKey(hp: HostPort): string | null {
  const ip = parseIp(hp.host);
  return ip ? formatHostPort({ host: formatIp(unmapIp(ip)), port: hp.port }) : null;
}

/** {@link socketAddressKey} of `ip:port` text; null when it is not one (its own field reports that). */
export function socketAddressKeyOf(text: string): string | null {
  try {
    return socketAddressKey(parseHostPort(text, { names: false }));
  } catch (e) {
    if (e instanceof HostPortError) return null;
    throw e;
  }
}

/**
 * True for `0.0.0.0` and `::`, which bind every interface, and for `::ffff:0.0.0.0`, which Linux
 * binds (on a dual-stack socket) to every IPv4 address.
 */
export function isWildcard(host: string): boolean {
  const a = parseIp(host);
  return a !== null && unmapIp(a).bytes.every((b) => b === 0);
}
