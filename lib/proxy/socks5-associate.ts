/**
 * SOCKS5 UDP ASSOCIATE (RFC 1928 §7) on one control connection: admission (is UDP on for this
 * listener, is there room for another association), the relay socket bound on the address the
 * client reached, the reply, and the tie between the association and its TCP connection.
 *
 *   CMD 3 ─ UDP off for this listener ─────────────────────────── command not supported (0x07)
 *         ─ pinned to an exit that is down / pins disagree ───────── network unreachable (0x03) / not allowed (0x02)
 *         ─ udp.maxAssociations open ───────────────────────────── general failure (0x01)
 *         ─ relay socket cannot be bound ───────────────────────── general failure (0x01)
 *         └ succeeded, BND = the relay socket; the connection is held (result ok)
 *   control connection closes or errors ─────────────────────────── association closed
 *   association idle for udp.idleTimeoutMs ─────────────────────── control connection closed
 *
 * Does not parse SOCKS5 requests (socks5-session.ts) or relay datagrams (udp-relay.ts), and knows
 * the policy and the resolver only through the core.
 */
import { formatHostPort, formatIp, parseIp, unmapIp, type IpAddr } from "../net/ip.ts";
import { Failure } from "./errors.ts";
import { formatTarget, Stage, type ClientConn, type ProtocolCore, type Target } from "./protocol.ts";
import { encodeReply } from "./socks5-request.ts";
import { Reply } from "./socks5.ts";
import { udpAllowedOn } from "./udp-options.ts";
import { openUdpAssociation, UdpAssociation } from "./udp-relay.ts";

/** Opens and tracks the associations of one server's SOCKS5 connections. */
export class UdpAssociator {
  readonly #core: ProtocolCore;
  /** Associations whose relay socket is being bound: they count against the limit already. */
  #opening = 0;

  constructor(core: ProtocolCore) {
    this.#core = core;
  }

  /** Whether `conn`'s listener answers UDP ASSOCIATE. */
  allowed(conn: ClientConn): boolean {
    const s = conn.socket;
    return udpAllowedOn(this.#core.udp, { host: s.localAddress, port: s.localPort });
  }

  /**
   * Serves a UDP ASSOCIATE request whose DST was `hint:hintPort` (the client's own UDP address, or
   * zeros). Writes the reply; on success the connection is held until either side ends it.
   */
  open(conn: ClientConn, hint: Target, hintPort: number): void {
    const core = this.#core;
    const udp = core.udp;
    conn.target = formatTarget(hint, hintPort);
    const client = parseIp(conn.socket.remoteAddress);
    const local = parseIp(conn.socket.localAddress);
    if (!client || !local) return this.#refuse(conn, "no local or peer address");
    const pin = core.checkPin(conn);
    if (pin !== null) {
      conn.socket.write(encodeReply(pin.kind === Failure.denied ? Reply.notAllowed : Reply.networkUnreachable));
      return core.fail(conn, pin.kind, `udp associate: ${pin.reason}`);
    }
    if (core.stats.udp.associationsActive + this.#opening >= udp.maxAssociations) {
      return this.#refuse(conn, `at udp.maxAssociations (${udp.maxAssociations})`);
    }
    this.#opening++;
    openUdpAssociation({
      client: unmapIp(client),
      clientPort: hintPort,
      bindAddress: formatIp(unmapIp(local)),
      portRange: udp.portRange ?? undefined,
      source: conn.source,
      checkDestination: (a) => core.checkDestination(a),
      resolve: (name) => core.resolve(name),
      stats: core.stats.udp,
      maxDestinations: udp.maxDestinations,
      idleTimeoutMs: udp.idleTimeoutMs,
      onEnd: (reason) => core.fail(conn, Failure.general, `udp association ended: ${reason}`),
      onDrop: (reason, detail) => {
        if (core.log.debugEnabled) core.log.debug("proxy udp datagram dropped", { client: conn.client, reason, detail });
      },
    }).then(
      (assoc) => {
        this.#opening--;
        if (conn.stage === Stage.closed) return assoc.close(); // the client left while we bound
        conn.protocolData = assoc;
        core.hold(conn);
        const bound = assoc.bound;
        conn.address = `udp ${formatHostPort({ host: bound.address, port: bound.port })}`;
        // A pinned association goes out from its exit's address: resetting what left by an exit
        // that went down (server.ts resetFrom) ends it too, so its client learns at once.
        conn.bound = conn.source?.[4] ?? conn.source?.[6] ?? null;
        const ip: IpAddr = unmapIp(parseIp(bound.address) ?? local);
        conn.socket.write(encodeReply(Reply.succeeded, { host: { type: "ip", ip }, port: bound.port }));
        if (core.log.debugEnabled) core.log.debug("proxy udp associated", { client: conn.client, hint: conn.target, relay: conn.address });
      },
      (err: unknown) => {
        this.#opening--;
        core.log.warn("proxy udp association failed", { client: conn.client, err });
        this.#refuse(conn, err instanceof Error ? err.message : String(err));
      },
    );
  }

  /** The control connection has closed: the association goes with it. Returns its log fields. */
  closed(conn: ClientConn): Record<string, unknown> | undefined {
    const assoc = conn.protocolData;
    if (!(assoc instanceof UdpAssociation)) return undefined;
    assoc.close();
    const c = assoc.counts;
    return { up: c.bytesUp, down: c.bytesDown, datagramsUp: c.datagramsUp, datagramsDown: c.datagramsDown, dropped: c.dropped };
  }

  #refuse(conn: ClientConn, reason: string): void {
    if (conn.stage === Stage.closed) return;
    conn.socket.write(encodeReply(Reply.generalFailure));
    this.#core.fail(conn, Failure.general, `udp associate: ${reason}`);
  }
}
