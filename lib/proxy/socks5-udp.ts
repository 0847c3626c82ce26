/**
 * The SOCKS5 UDP request header (RFC 1928 §7), as pure functions over bytes: every datagram between
 * a client and the UDP relay carries it, in both directions.
 *
 * What this module does NOT do: it never touches a socket, resolves a name, applies a policy, tracks
 * an association, or reassembles fragments. Fragmentation (FRAG ≠ 0) is optional in RFC 1928 §7 and
 * egressd does not implement it: the parser returns the FRAG byte so that the relay can drop and count
 * such datagrams. Unlike the TCP messages in `socks5-request.ts`, a datagram is whole or it is nothing, so a
 * short datagram is an error, never "need more".
 *
 *   +----+------+------+----------+----------+----------+
 *   |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
 *   +----+------+------+----------+----------+----------+
 *   | 2  |  1   |  1   | Variable |    2     | Variable |
 *   +----+------+------+----------+----------+----------+
 *
 * RSV is X'0000'. DST.ADDR by ATYP as in §5. From relay to client, DST is the source of the reply.
 */
import { NEED_MORE, Socks5ProtocolError } from "./socks5.ts";
import { parseSocksAddress, type Socks5Host, socksAddressLength, writeSocksAddress } from "./socks5-request.ts";

/** FRAG of a datagram that is whole (not a fragment). RFC 1928 §7. */
export const STANDALONE_FRAG = 0x00;

/** Bytes of `RSV FRAG` before ATYP. */
const PREFIX_BYTES = 3;

/** The largest header: RSV, FRAG, ATYP, a 255-byte domain with its length, port. */
export const MAX_UDP_HEADER_BYTES = PREFIX_BYTES + 1 + 1 + 255 + 2;

/** A datagram read from a client, or to be sent to one. */
export interface UdpDatagram {
  /** The raw FRAG byte: {@link STANDALONE_FRAG} for a whole datagram; any other value is a fragment. */
  readonly frag: number;
  /** The destination (client to relay) or the source of the reply (relay to client). */
  readonly host: Socks5Host;
  readonly port: number;
  /** The payload; a view into the parsed buffer, not a copy. */
  readonly data: Uint8Array;
}

/** Why a datagram's header can never be valid. */
export type UdpHeaderErrorReason = "truncated" | "badReserved" | "badAddressType" | "emptyDomainName";

/** A datagram whose header cannot be read. Returned (not thrown) by {@link parseUdpDatagram}. */
export class UdpHeaderError extends Error {
  override name = "UdpHeaderError";
  constructor(
    readonly reason: UdpHeaderErrorReason,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Parses one datagram. RSV must be zero: unlike a TCP request, where a sloppy RSV harms nobody, a
 * datagram with a non-zero RSV is more likely not a SOCKS header at all (a stray packet on the
 * relay's port), and dropping it is the cheap, safe answer.
 */
export function parseUdpDatagram(buf: Uint8Array): UdpDatagram | UdpHeaderError {
  if (buf.length < PREFIX_BYTES + 1) return new UdpHeaderError("truncated", `datagram of ${buf.length} bytes is shorter than a header`);
  if (buf[0] !== 0 || buf[1] !== 0) return new UdpHeaderError("badReserved", `datagram RSV is 0x${hex2(buf[0]!)}${hex2(buf[1]!)}, not 0x0000`);
  const r = parseSocksAddress(buf, PREFIX_BYTES, { what: "datagram" });
  if (r === NEED_MORE) return new UdpHeaderError("truncated", `datagram of ${buf.length} bytes ends inside its header`);
  if (r instanceof Socks5ProtocolError) {
    return new UdpHeaderError(r.reason === "emptyDomainName" ? "emptyDomainName" : "badAddressType", r.message);
  }
  return { frag: buf[2]!, host: r.value.host, port: r.value.port, data: buf.subarray(r.consumed) };
}

/** The header's length for `host`: what a relay must reserve in front of a payload. */
export function udpHeaderLength(host: Socks5Host): number {
  return PREFIX_BYTES + socksAddressLength(host);
}

/**
 * Encodes a whole datagram (FRAG 0): header, then `data`. Throws `RangeError` for a port out of range,
 * a malformed address or a domain name outside 1..255 bytes.
 */
export function encodeUdpDatagram(to: { host: Socks5Host; port: number }, data: Uint8Array): Uint8Array {
  const { host, port } = to;
  const header = udpHeaderLength(host);
  const out = new Uint8Array(header + data.length);
  // out[0], out[1] (RSV) and out[2] (FRAG) are already zero.
  writeSocksAddress(out, PREFIX_BYTES, { host, port });
  out.set(data, header);
  return out;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}
