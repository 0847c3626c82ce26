/**
 * The exit's endpoint: resolving a DNS name, deciding when to resolve it again, and tracking what the
 * peer should point at ({@link EndpointTracker}).
 *
 * WireGuard resolves a name once, when it is configured. If the exit's address changes, the tunnel stays
 * dead until someone sets the endpoint again; wireguard-tools' `reresolve-dns.sh` does that when the
 * latest handshake is older than 135 s. egressd does the same from its reconcile pass.
 *
 * The resolver is the system's. The daemon's uid is marked, so its queries follow the routing of any
 * marked packet: a resolver on loopback or the LAN is reached directly (suppress_prefixlength), one on the
 * internet goes through the tunnel — and cannot help when the tunnel is down. Use a local resolver.
 *
 * A changed endpoint is put back with `wg set <if> peer <key> endpoint <ip:port>`, which keeps the
 * session (a full `setconf` would force a new handshake). One tracker per exit peer.
 */
import { lookup } from "node:dns/promises";
import type { Logger } from "../log/logger.ts";
import { formatHostPort, parseHostPort, parseIp, formatIp } from "../net/ip.ts";
import type { Change } from "./change.ts";
import { runHostCommand } from "./command.ts";
import type { Endpoint } from "./spec.ts";
import type { WgPeerDump } from "./wgdump.ts";

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

/** Options for {@link EndpointTracker}. */
export interface EndpointTrackerOptions {
  /** The interface the peer is on. */
  ifname: string;
  /** The peer's public key. */
  publicKey: string;
  /** The endpoint as configured (`host:port`), for messages. */
  configured: string;
  /** The parsed endpoint. */
  endpoint: Endpoint;
  /** Default {@link systemResolver}. */
  resolve?: Resolver;
  log: Logger;
  now: () => number;
  /** Minimum time between two re-resolutions of a DNS endpoint, ms. Default 30000. */
  reresolveIntervalMs?: number;
}

/** What {@link EndpointTracker.status} reports. */
export interface EndpointStatus {
  /** Endpoints the configured one currently resolves to, `ip:port`. */
  readonly resolvedEndpoints: readonly string[];
  /** Why the last resolution failed, or null. */
  readonly resolveError: string | null;
  /** Successful re-resolutions of a DNS endpoint because the handshake was stale (not counting the first). */
  readonly endpointReresolutions: number;
}

/** One peer's endpoint: the current resolution and the changes that keep the peer pointed at it. */
export class EndpointTracker {
  readonly #o: EndpointTrackerOptions;
  readonly #resolve: Resolver;
  readonly #reresolveMs: number;
  #endpoints: string[] = [];
  #lastResolveAt = -Infinity;
  #resolveError: string | null = null;
  #reresolutions = 0;

  constructor(opts: EndpointTrackerOptions) {
    this.#o = opts;
    this.#resolve = opts.resolve ?? systemResolver;
    this.#reresolveMs = opts.reresolveIntervalMs ?? 30_000;
  }

  /** The endpoint to configure (`ip:port`), or null while the name does not resolve. */
  get current(): string | null {
    return this.#endpoints[0] ?? null;
  }

  /** Resolution state, for status and metrics. */
  status(): EndpointStatus {
    return { resolvedEndpoints: [...this.#endpoints], resolveError: this.#resolveError, endpointReresolutions: this.#reresolutions };
  }

  /** Resolves once if nothing was resolved yet (before the interface is created). */
  async ensureResolved(): Promise<void> {
    if (this.#endpoints.length === 0) await this.#resolveNow();
  }

  /**
   * Plans the endpoint change for the peer as dumped: re-resolves a DNS name when the handshake is stale
   * (at most every `reresolveIntervalMs`), then sets the endpoint when the peer points elsewhere.
   */
  async plan(peer: WgPeerDump): Promise<Change[]> {
    const { endpoint: ep, now } = this.#o;
    let reresolved = false;
    if (ep.isName && isHandshakeStale(peer.latestHandshake, now()) && now() - this.#lastResolveAt >= this.#reresolveMs) {
      const before = this.#endpoints.join(",");
      const ok = await this.#resolveNow();
      if (ok) this.#reresolutions++;
      reresolved = ok && this.#endpoints.join(",") !== before;
    } else if (this.#endpoints.length === 0 && !ep.isName) {
      await this.#resolveNow();
    }
    return this.#changes(peer, reresolved);
  }

  /** Like {@link plan} without resolving: what would change against the current resolution. */
  observe(peer: WgPeerDump): Change[] {
    return this.#changes(peer, false);
  }

  #changes(peer: WgPeerDump, reresolved: boolean): Change[] {
    const target = this.#endpoints[0];
    const current = peer.endpoint === null ? null : canonicalEndpoint(peer.endpoint);
    if (target === undefined || (current !== null && this.#endpoints.includes(current))) return [];
    const { ifname, publicKey: pub, now } = this.#o;
    const handshake = peer.latestHandshake === 0 ? "never" : `${Math.round(now() / 1000 - peer.latestHandshake)} s ago`;
    return [
      {
        component: "endpoint",
        action: reresolved ? "reresolve-endpoint" : "set-endpoint",
        reason: reresolved
          ? `${this.#o.configured} now resolves to ${this.#endpoints.join(", ")} (peer had ${peer.endpoint ?? "none"}, handshake ${handshake})`
          : `peer endpoint is ${peer.endpoint ?? "unset"}, want ${target}`,
        apply: (r) => runHostCommand(r, ["wg", "set", ifname, "peer", pub, "endpoint", target]),
        undo: current === null ? undefined : (r) => runHostCommand(r, ["wg", "set", ifname, "peer", pub, "endpoint", current]),
      },
    ];
  }

  /** Resolves the configured endpoint; on failure keeps the previous answer and records the error. */
  async #resolveNow(): Promise<boolean> {
    const ep = this.#o.endpoint;
    this.#lastResolveAt = this.#o.now();
    if (!ep.isName) {
      this.#endpoints = [formatEndpoint(ep.host, ep.port)];
      return true;
    }
    try {
      const addrs = await this.#resolve(ep.host);
      if (addrs.length === 0) throw new Error("no addresses");
      this.#endpoints = addrs.map((a) => formatEndpoint(a, ep.port));
      this.#resolveError = null;
      return true;
    } catch (err) {
      this.#resolveError = `${ep.host}: ${(err as Error).message}`;
      this.#o.log.warn("cannot resolve the exit endpoint; will retry", { endpoint: this.#o.configured, error: this.#resolveError });
      return false;
    }
  }
}
