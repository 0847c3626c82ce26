/**
 * The exit's endpoint: resolving a DNS name, and deciding when to resolve it again.
 *
 * WireGuard resolves a name once, when it is configured. If the exit's address changes, the tunnel stays
 * dead until someone sets the endpoint again; wireguard-tools' `reresolve-dns.sh` does that when the
 * latest handshake is older than 135 s. egressd does the same from its reconcile pass.
 *
 * The resolver is the system's. The daemon's uid is marked, so its queries follow the routing of any
 * marked packet: a resolver on loopback or the LAN is reached directly (suppress_prefixlength), one on the
 * internet goes through the tunnel — and cannot help when the tunnel is down. Use a local resolver.
 */
import { lookup } from "node:dns/promises";
import { formatHostPort, parseHostPort, parseIp, formatIp } from "../net/ip.ts";

/** Resolves a host name to IP literals, preferred first. */
export type Resolver = (host: string) => Promise<string[]>;

/** A handshake older than this (or none at all) makes a DNS endpoint eligible for re-resolution. */
export const STALE_HANDSHAKE_SECONDS = 135;

/** The system resolver (getaddrinfo order). */
export const systemResolver: Resolver = async (host) => {
  const answers = await lookup(host, { all: true, verbatim: true });
  return answers.map((a) => a.address);
};

/** True when the handshake is missing or older than {@link STALE_HANDSHAKE_SECONDS}. */
export function isHandshakeStale(latestHandshake: number, nowMs: number): boolean {
  return latestHandshake === 0 || nowMs / 1000 - latestHandshake > STALE_HANDSHAKE_SECONDS;
}

/** Formats `ip:port` the way `wg` prints endpoints (`[v6]:port`), canonicalising the address. */
export function formatEndpoint(ip: string, port: number): string {
  const addr = parseIp(ip);
  return formatHostPort({ host: addr ? formatIp(addr) : ip, port });
}

/** Canonical form of an endpoint string as printed by wg, for comparison; null when unparsable. */
export function canonicalEndpoint(text: string): string | null {
  try {
    const hp = parseHostPort(text, { names: false });
    return formatEndpoint(hp.host, hp.port);
  } catch {
    return null;
  }
}
