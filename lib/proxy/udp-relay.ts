/**
 * One SOCKS5 UDP association (RFC 1928 §7): a relay socket that the client sends its wrapped
 * datagrams to, and outbound sockets, owned by the daemon's uid, that carry them to their
 * destinations and take the replies back.
 *
 * What this module does NOT do: it never reads the TCP control connection (the SOCKS5 protocol
 * module owns that, and ends the association when it closes), decides who may open an association,
 * or knows how the destination policy or the resolver work: both are passed in. It does not
 * reassemble fragments: a datagram with FRAG ≠ 0 is dropped and counted, as §7 allows.
 *
 * Who may send, and where:
 * - Only the control connection's client IP may use the relay socket, and only from one port: the
 *   port the request named (DST.PORT), or else the port of its first datagram. Anything else is a
 *   foreign source, dropped and counted.
 * - Each destination passes the same policy as a CONNECT, after resolution for names.
 * - Replies are accepted only from a destination this association has sent to (endpoint-dependent
 *   filtering, as a NAT does), and go back wrapped with their real source address.
 *
 * Nothing is queued beyond `maxPending` datagrams waiting for a name; a full socket buffer drops the
 * datagram (UDP is lossy by contract, and a queue would only grow). Every drop has a reason label.
 */
import { formatIp, isDnsName, parseIp, unmapIp, type IpAddr } from "../net/ip.ts";
import type { SourceAddresses } from "./dial.ts";
import type { Resolve } from "./resolve.ts";
import { encodeUdpDatagram, parseUdpDatagram, STANDALONE_FRAG, UdpHeaderError } from "./socks5-udp.ts";
import type { UdpDropReason, UdpStats } from "./udp-stats.ts";

export { createUdpStats, UDP_DROP_REASONS, type UdpDropReason, type UdpStats } from "./udp-stats.ts";

/** Sockets one association may hold: the relay socket and an outbound socket per family. */
export const UDP_FDS_PER_ASSOCIATION = 3;

/** Defaults of {@link UdpAssociationOptions}. */
const UDP_DEFAULTS = {
  maxDestinations: 256,
  maxPending: 32,
  nameTtlMs: 60_000,
} as const;

/** The relay socket could not be bound. */
export class UdpBindError extends Error {
  override name = "UdpBindError";
  constructor(
    readonly address: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Options of {@link openUdpAssociation}. */
export interface UdpAssociationOptions {
  /** The control connection's client address, unmapped. Only it may send to the relay. */
  readonly client: IpAddr;
  /** DST.PORT of the UDP ASSOCIATE request: the client's source port, or 0 when it does not know. */
  readonly clientPort?: number;
  /** Where to bind the relay socket: the local address the client reached, so BND.ADDR is reachable. */
  readonly bindAddress: string;
  /**
   * The addresses outbound sockets bind, by family (a pinned exit's tunnel addresses), so that
   * policy routing takes that exit only; a destination of a family without one is dropped. Default:
   * the wildcard, the kernel picks.
   */
  readonly source?: SourceAddresses | null;
  /** Ports to bind the relay socket from (inclusive); default an ephemeral port. */
  readonly portRange?: { readonly first: number; readonly last: number };
  /** The destination policy: null when `addr` may be reached, else the reason it may not. */
  readonly checkDestination: (addr: IpAddr) => string | null;
  /** Resolves names in datagrams, by the configured DNS mode. */
  readonly resolve: Resolve;
  readonly stats: UdpStats;
  /** Distinct destinations (address and port) one association may send to. Default 256. */
  readonly maxDestinations?: number;
  /** Datagrams that may wait for a name to resolve. Default 32. */
  readonly maxPending?: number;
  /** End the association after this long without a datagram either way; 0 (default) never. */
  readonly idleTimeoutMs?: number;
  /** How long a resolved name is reused. Default 60 s. */
  readonly nameTtlMs?: number;
  /** Called once when the association ends by itself (idle), not on close(). */
  readonly onEnd?: (reason: string) => void;
  /** Told of each drop, for debug logging; keep it cheap. */
  readonly onDrop?: (reason: UdpDropReason, detail: string) => void;
}

type BunUdp = Bun.udp.Socket<"uint8array">;

interface Resolved {
  readonly at: number;
  readonly result: Promise<IpAddr | string>;
}

/** A live association; {@link close} it when its control connection ends. */
export class UdpAssociation {
  readonly #o: UdpAssociationOptions;
  readonly #relay: BunUdp;
  readonly #out: { 4?: Promise<BunUdp>; 6?: Promise<BunUdp> } = {};
  readonly #outReady: { 4?: BunUdp; 6?: BunUdp } = {};
  readonly #destinations = new Set<string>();
  readonly #names = new Map<string, Resolved>();
  #clientPort: number;
  /** The client's address as Bun reports a datagram's source: compared as text first, parsed only when it differs. */
  readonly #clientText: string;
  #pending = 0;
  #last = performance.now();
  #idle: ReturnType<typeof setTimeout> | null = null;
  #closed = false;
  /** This association's own counts, for its log line. */
  readonly counts = { datagramsUp: 0, bytesUp: 0, datagramsDown: 0, bytesDown: 0, dropped: 0 };

  /** Use {@link openUdpAssociation}. */
  constructor(options: UdpAssociationOptions, relay: BunUdp) {
    this.#o = options;
    this.#relay = relay;
    this.#clientPort = options.clientPort ?? 0;
    this.#clientText = formatIp(options.client);
    options.stats.associationsActive++;
    options.stats.associationsTotal++;
    if ((options.idleTimeoutMs ?? 0) > 0) this.#armIdle(options.idleTimeoutMs!);
  }

  /** The relay socket's address and port: BND.ADDR and BND.PORT of the reply. */
  get bound(): { address: string; port: number } {
    return { address: this.#relay.address.address, port: this.#relay.port };
  }

  /** Whether the association has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Ends the association and frees its sockets. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#o.stats.associationsActive--;
    if (this.#idle) clearTimeout(this.#idle);
    this.#relay.close();
    for (const p of [this.#out[4], this.#out[6]]) p?.then((s) => s.close(), () => undefined);
  }

  #end(reason: string): void {
    if (this.#closed) return;
    this.close();
    this.#o.onEnd?.(reason);
  }

  #armIdle(ms: number): void {
    this.#idle = setTimeout(() => {
      const quiet = performance.now() - this.#last;
      if (quiet >= ms) this.#end(`idle for ${Math.round(quiet / 1000)} s`);
      else this.#armIdle(ms - quiet);
    }, ms);
  }

  #drop(reason: UdpDropReason, detail: string): void {
    this.#o.stats.drops[reason]++;
    this.counts.dropped++;
    this.#o.onDrop?.(reason, detail);
  }

  /** A datagram on the relay socket. */
  fromClient(data: Uint8Array, port: number, address: string): void {
    if (this.#closed) return;
    if (address !== this.#clientText) {
      const src = parseIp(address);
      if (src === null || !sameIp(unmapIp(src), this.#o.client)) return this.#drop("foreign_source", `${address}:${port}`);
    }
    if (this.#clientPort === 0) this.#clientPort = port;
    else if (port !== this.#clientPort) return this.#drop("foreign_source", `${address}:${port}`);
    const d = parseUdpDatagram(data);
    if (d instanceof UdpHeaderError) return this.#drop("malformed", d.message);
    if (d.frag !== STANDALONE_FRAG) return this.#drop("fragment", `FRAG ${d.frag}`);
    if (d.port === 0) return this.#drop("malformed", "destination port 0");
    this.#last = performance.now();
    const host = d.host;
    if (host.type === "ip") return this.#send(unmapIp(host.ip), d.port, d.data);
    const literal = parseIp(host.name);
    if (literal) return this.#send(unmapIp(literal), d.port, d.data);
    this.#sendToName(host.name, d.port, d.data);
  }

  #sendToName(name: string, port: number, payload: Uint8Array): void {
    if (!isDnsName(name)) return this.#drop("malformed", "not a valid domain name");
    const now = performance.now();
    let entry = this.#names.get(name);
    if (entry === undefined || now - entry.at > (this.#o.nameTtlMs ?? UDP_DEFAULTS.nameTtlMs)) {
      if (entry === undefined && this.#names.size >= (this.#o.maxDestinations ?? UDP_DEFAULTS.maxDestinations)) return this.#drop("over_limit", `more than ${this.#names.size} names`);
      entry = { at: now, result: this.#resolveAllowed(name) };
      this.#names.set(name, entry);
    }
    if (this.#pending >= (this.#o.maxPending ?? UDP_DEFAULTS.maxPending)) return this.#drop("over_limit", `${this.#pending} datagrams wait for names`);
    this.#pending++;
    const copy = payload.slice(); // a view into the receive buffer, which the next datagram reuses
    entry.result.then((r) => {
      this.#pending--;
      if (this.#closed) return;
      if (typeof r === "string") return this.#drop(r.startsWith("denied") ? "policy" : "unresolved", `${name}: ${r}`);
      this.#send(r, port, copy);
    });
  }

  /** The first resolved address that the policy allows, or why there is none. Never rejects. */
  async #resolveAllowed(name: string): Promise<IpAddr | string> {
    let addrs: IpAddr[];
    try {
      addrs = await this.#o.resolve(name);
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
    let denial: string | null = null;
    for (const given of addrs) {
      const a = unmapIp(given); // ::ffff:10.0.0.1 is 10.0.0.1 for the policy and the send
      const why = this.#o.checkDestination(a);
      if (why === null) return a;
      denial ??= `denied: ${why} (${formatIp(given)})`;
    }
    return denial ?? "name has no addresses";
  }

  #send(addr: IpAddr, port: number, payload: Uint8Array): void {
    const why = this.#o.checkDestination(addr);
    if (why !== null) return this.#drop("policy", `${why} (${formatIp(addr)})`);
    const ip = formatIp(addr);
    const key = `${ip}|${port}`;
    if (!this.#destinations.has(key)) {
      if (this.#destinations.size >= (this.#o.maxDestinations ?? UDP_DEFAULTS.maxDestinations)) return this.#drop("over_limit", `more than ${this.#destinations.size} destinations`);
      this.#destinations.add(key);
    }
    const ready = this.#outReady[addr.family];
    if (ready) return this.#sendOut(ready, ip, port, payload);
    // The payload is a view into Bun's receive buffer, which the next datagram may reuse.
    const copy = payload.slice();
    this.#outbound(addr.family).then(
      (sock) => this.#closed || this.#sendOut(sock, ip, port, copy),
      (err: unknown) => this.#drop("send_failed", err instanceof Error ? err.message : String(err)),
    );
  }

  #sendOut(sock: BunUdp, ip: string, port: number, payload: Uint8Array): void {
    const why = trySend(sock, payload, port, ip);
    if (why !== null) return this.#drop("send_failed", `${why} toward ${ip}:${port}`);
    this.#o.stats.datagramsUp++;
    this.#o.stats.bytesUp += payload.length;
    this.counts.datagramsUp++;
    this.counts.bytesUp += payload.length;
  }

  /** The outbound socket for a family, made on first use. Its owner is the daemon's uid. */
  #outbound(family: 4 | 6): Promise<BunUdp> {
    let p = this.#out[family];
    if (p === undefined) {
      const source = this.#o.source;
      const local = source ? source[family] : family === 4 ? "0.0.0.0" : "::";
      if (local === undefined) return Promise.reject(new Error(`no IPv${family} source address on the pinned exit`));
      p = Bun.udpSocket({
        hostname: local,
        port: 0,
        binaryType: "uint8array",
        socket: {
          data: (_s, data, port, address) => this.#fromDestination(data, port, address),
          // Bun reports an ICMP error (port or host unreachable, for one destination) here, with
          // no error object, and the socket stays usable: it is never a reason to end.
          error: () => undefined,
        },
      });
      this.#out[family] = p;
      p.then(
        (s) => {
          // A socket made after close() must not outlive the association.
          if (this.#closed) s.close();
          else this.#outReady[family] = s;
        },
        // A pinned exit's address may be gone for now (its interface is being re-created): the
        // next datagram tries to bind again rather than fail for the rest of the association.
        () => void (this.#out[family] = undefined),
      );
    }
    return p;
  }

  #fromDestination(data: Uint8Array, port: number, address: string): void {
    if (this.#closed) return;
    const parsed = parseIp(address);
    if (parsed === null) return this.#drop("foreign_source", address);
    const src = unmapIp(parsed);
    if (!this.#destinations.has(`${formatIp(src)}|${port}`)) return this.#drop("foreign_source", `${address}:${port}`);
    this.#last = performance.now();
    const wrapped = encodeUdpDatagram({ host: { type: "ip", ip: src }, port }, data);
    const why = trySend(this.#relay, wrapped, this.#clientPort, this.#clientText);
    if (why !== null) return this.#drop("send_failed", `${why} toward the client`);
    this.#o.stats.datagramsDown++;
    this.#o.stats.bytesDown += data.length;
    this.counts.datagramsDown++;
    this.counts.bytesDown += data.length;
  }
}

/**
 * Binds the relay socket on `options.bindAddress` (from `portRange` when given, trying each port
 * once from a random start) and returns the association. Throws {@link UdpBindError}.
 */
export async function openUdpAssociation(options: UdpAssociationOptions): Promise<UdpAssociation> {
  let assoc: UdpAssociation | null = null;
  const handler = {
    data: (_s: BunUdp, data: Uint8Array, port: number, address: string) => assoc?.fromClient(data, port, address),
    // An ICMP error for a datagram sent to the client (its socket closed, say): the relay socket
    // stays usable and the client may still send; its TCP connection says when it is over.
    error: () => undefined,
  };
  const ports = candidatePorts(options.portRange);
  let lastErr: unknown;
  for (const port of ports) {
    try {
      const relay = await Bun.udpSocket({ hostname: options.bindAddress, port, binaryType: "uint8array", socket: handler });
      assoc = new UdpAssociation(options, relay);
      return assoc;
    } catch (err) {
      lastErr = err;
      if ((err as { code?: string }).code !== "EADDRINUSE") break;
    }
  }
  const range = options.portRange ? ` from ports ${options.portRange.first}-${options.portRange.last}` : "";
  const why = lastErr instanceof Error ? lastErr.message : String(lastErr);
  throw new UdpBindError(options.bindAddress, `cannot bind a UDP relay socket on ${options.bindAddress}${range}: ${why}`, { cause: lastErr });
}

function candidatePorts(range: UdpAssociationOptions["portRange"]): number[] {
  if (range === undefined) return [0];
  const n = range.last - range.first + 1;
  const start = Math.floor(Math.random() * n);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(range.first + ((start + i) % n));
  return out;
}

/**
 * Sends one datagram; null when it went, else why not. Bun's `send()` returns false when the socket
 * buffer is full, and throws for an error of the route: EHOSTUNREACH or ENETUNREACH when the kill
 * switch's `unreachable default` answers, EPERM when a firewall rejects it. A datagram that cannot
 * go is dropped and counted, never a reason to end the association (or to throw out of a handler).
 */
function trySend(sock: BunUdp, payload: Uint8Array, port: number, ip: string): string | null {
  try {
    return sock.send(payload, port, ip) ? null : "socket buffer full";
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string") return code;
    if (err instanceof Error) return err.message;
    throw err;
  }
}

function sameIp(a: IpAddr, b: IpAddr): boolean {
  if (a.family !== b.family) return false;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}
