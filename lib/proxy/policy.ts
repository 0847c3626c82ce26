/**
 * Who may use the proxy, and where it may connect to: pure decisions over addresses.
 *
 * Does not resolve names and does not know about sockets. The core (core.ts) asks twice for a domain
 * target: never for the name itself, but for every address the name resolves to, because a public
 * name can resolve to `10.0.0.1` (docs/design.md, trap 6: pivoting).
 */
import { anyContains, cidrContains, parseCidr, type Cidr, type IpAddr } from "../net/ip.ts";

/** A range denied by default, with the name used in logs and the RFC that defines it. */
export interface DeniedRange {
  readonly cidr: Cidr;
  /** Short name, used as the `reason` in logs: `loopback`, `private`, ... */
  readonly name: string;
  readonly rfc: string;
}

function range(cidr: string, name: string, rfc: string): DeniedRange {
  return { cidr: parseCidr(cidr), name, rfc };
}

/**
 * Destinations refused unless listed in `allowDestinations`: everything that is not "the internet"
 * from the gateway's point of view. The first match names the reason, so more specific entries
 * come first. Addresses are matched unmapped: `::ffff:10.0.0.1` is checked as `10.0.0.1`.
 */
export const DEFAULT_DENIED_DESTINATIONS: readonly DeniedRange[] = [
  range("0.0.0.0/8", "this-network", "RFC 791, RFC 1122 §3.2.1.3"),
  range("10.0.0.0/8", "private", "RFC 1918 §3"),
  range("100.64.0.0/10", "cgnat", "RFC 6598 §7"),
  range("127.0.0.0/8", "loopback", "RFC 1122 §3.2.1.3"),
  range("169.254.0.0/16", "link-local", "RFC 3927 §2.1"),
  range("172.16.0.0/12", "private", "RFC 1918 §3"),
  range("192.168.0.0/16", "private", "RFC 1918 §3"),
  range("224.0.0.0/4", "multicast", "RFC 5771 §3"),
  range("255.255.255.255/32", "broadcast", "RFC 919 §7, RFC 8190"),
  range("240.0.0.0/4", "reserved", "RFC 1112 §4"),
  range("::/128", "unspecified", "RFC 4291 §2.5.2"),
  range("::1/128", "loopback", "RFC 4291 §2.5.3"),
  // Linux routes ::/96 into the sit0 tunnel when the module is loaded, i.e. to the embedded IPv4
  // address, so the deprecated IPv4-compatible form must not slip past the IPv4 rows.
  range("::/96", "ipv4-compatible", "RFC 4291 §2.5.5.1"),
  range("64:ff9b:1::/48", "nat64-local", "RFC 8215 §3"),
  range("fc00::/7", "unique-local", "RFC 4193 §3"),
  range("fe80::/10", "link-local", "RFC 4291 §2.5.6"),
  range("fec0::/10", "site-local", "RFC 3879 §4"),
  range("ff00::/8", "multicast", "RFC 4291 §2.7"),
];

const NAT64_WELL_KNOWN = parseCidr("64:ff9b::/96"); // RFC 6052 §2.1: IPv4 in the last 32 bits
const SIX_TO_FOUR = parseCidr("2002::/16"); // RFC 3056 §2: IPv4 in bits 16..47

/**
 * The IPv4 address a NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::`) address leads to, or
 * null. A NAT64 gateway on the home network would turn `64:ff9b::10.0.0.1` into `10.0.0.1`.
 */
export function embeddedIpv4(addr: IpAddr): IpAddr | null {
  if (addr.family !== 6) return null;
  if (cidrContains(NAT64_WELL_KNOWN, addr)) return { family: 4, bytes: addr.bytes.slice(12, 16) };
  if (cidrContains(SIX_TO_FOUR, addr)) return { family: 4, bytes: addr.bytes.slice(2, 6) };
  return null;
}

/** What the destination check needs. Both lists default to empty. */
export interface DestinationPolicy {
  /** Allowed even though a default rule or `ownAddresses` would deny them. */
  readonly allowDestinations?: readonly Cidr[];
  /** The gateway's own addresses (including public ones, which no default rule covers). */
  readonly ownAddresses?: readonly IpAddr[];
}

function sameAddr(x: IpAddr, y: IpAddr): boolean {
  if (x.family !== y.family) return false;
  for (let i = 0; i < x.bytes.length; i++) if (x.bytes[i] !== y.bytes[i]) return false;
  return true;
}

/**
 * Returns null when the proxy may connect to `addr`, else the reason it may not (a
 * {@link DeniedRange} name, or `own-address`). `allowDestinations` wins over every deny rule.
 *
 * `addr` and `ownAddresses` must already be unmapped (`::ffff:10.0.0.1` as `10.0.0.1`, see
 * `unmapIp`): the proxy unmaps every address once, where it enters (options, accept, the
 * request, the resolver's answer), so this hot check does not do it again.
 */
export function checkDestination(a: IpAddr, policy: DestinationPolicy): string | null {
  if (anyContains(policy.allowDestinations ?? [], a)) return null;
  for (const own of policy.ownAddresses ?? []) if (sameAddr(own, a)) return "own-address";
  for (const r of DEFAULT_DENIED_DESTINATIONS) if (cidrContains(r.cidr, a)) return r.name;
  const inner = embeddedIpv4(a);
  if (inner) {
    const why = checkDestination(inner, policy);
    if (why) return `${why}-embedded`;
  }
  return null;
}

/** True when a client at `addr` may use the proxy. An empty list admits nobody. */
export function clientAllowed(addr: IpAddr, allowClients: readonly Cidr[]): boolean {
  return anyContains(allowClients, addr);
}
