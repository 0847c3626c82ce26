/**
 * The SOCKS5 request (RFC 1928 §4) and reply (§6), and the address they carry (§5), as pure functions
 * over bytes. The address codec (parseSocksAddress, writeSocksAddress, socksAddressLength) is shared
 * with the UDP request header (socks5-udp.ts). The codes, the result convention and the error are
 * socks5.ts's.
 */
import type { IpAddr } from "../net/ip.ts";
import { AddressType, NEED_MORE, protocolError, Reply, Socks5ProtocolError, Version, type ParseResult } from "./socks5.ts";

/** A destination or bound host: an IP address, or a domain name to be resolved by the server. */
export type Socks5Host =
  | { readonly type: "ip"; readonly ip: IpAddr }
  | { readonly type: "domain"; readonly name: string };

/** A request (RFC 1928 §4) or a reply (§6): the same layout with `CMD` or `REP` in byte 1. */
export interface Request {
  /** The raw `CMD` byte; compare with {@link Command}. Unknown values are returned as they are. */
  readonly command: number;
  readonly host: Socks5Host;
  readonly port: number;
}

/** A server reply. RFC 1928 §6. */
export interface ReplyMessage {
  /** The raw `REP` byte; compare with {@link Reply}. */
  readonly reply: number;
  readonly host: Socks5Host;
  readonly port: number;
}

/** The largest request or reply: VER CMD RSV ATYP, a 255-byte domain with its length, port. */
export const MAX_REQUEST_BYTES = 4 + 1 + 255 + 2;

/*
 * Request, client to server (RFC 1928 §4), and reply, server to client (§6): one layout.
 *
 *   +----+-----+-------+------+----------+----------+
 *   |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |      reply: CMD is REP, DST is BND
 *   +----+-----+-------+------+----------+----------+
 *   | 1  |  1  | X'00' |  1   | Variable |    2     |
 *   +----+-----+-------+------+----------+----------+
 *
 * DST.ADDR by ATYP (§5): 0x01 four bytes; 0x04 sixteen bytes; 0x03 one length byte, then that many
 * bytes of name, with no terminating NUL. DST.PORT is in network byte order.
 */

// `answer` says whether errors carry a reply code: a server answers a bad request, but a client
// has nobody to answer when a reply is bad.
function parseAddressMessage(buf: Uint8Array, what: string, answer: boolean): ParseResult<{ code: number; host: Socks5Host; port: number }> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== Version.socks5) return protocolError("badVersion", `${what} version is ${buf[0]}, not 5`, answer ? Reply.generalFailure : null);
  // RSV (byte 2) is not checked: RFC 1928 fixes it at 0, but no field depends on it and being
  // strict here would only break a sloppy client for no gain.
  if (buf.length < 4) return NEED_MORE;
  const r = parseSocksAddress(buf, 3, { what, answer });
  if (r === NEED_MORE || r instanceof Socks5ProtocolError) return r;
  return { value: { code: buf[1]!, host: r.value.host, port: r.value.port }, consumed: r.consumed };
}

/**
 * Parses `ATYP DST.ADDR DST.PORT` (RFC 1928 §5) starting at `buf[at]`, the part that requests,
 * replies and UDP request headers (§7) share. `consumed` counts from the start of `buf`.
 * Options: `what` names the message in errors (default "request"); `answer` says whether an error
 * carries a reply code, as when a server answers a bad request (default false).
 */
export function parseSocksAddress(
  buf: Uint8Array,
  at: number,
  { what = "request", answer = false }: { what?: string; answer?: boolean } = {},
): ParseResult<{ host: Socks5Host; port: number }> {
  if (buf.length < at + 1) return NEED_MORE;
  const atyp = buf[at]!;
  let host: Socks5Host;
  let end: number;
  switch (atyp) {
    case AddressType.ipv4:
      if (buf.length < at + 1 + 4 + 2) return NEED_MORE;
      host = { type: "ip", ip: { family: 4, bytes: buf.slice(at + 1, at + 5) } };
      end = at + 5;
      break;
    case AddressType.ipv6:
      if (buf.length < at + 1 + 16 + 2) return NEED_MORE;
      host = { type: "ip", ip: { family: 6, bytes: buf.slice(at + 1, at + 17) } };
      end = at + 17;
      break;
    case AddressType.domainName: {
      if (buf.length < at + 2) return NEED_MORE;
      const len = buf[at + 1]!;
      if (len === 0) return protocolError("emptyDomainName", `${what} has an empty domain name`, answer ? Reply.generalFailure : null);
      if (buf.length < at + 2 + len + 2) return NEED_MORE;
      // latin1 keeps every byte as one char, so a bad name is visible in logs and fails validation
      // later instead of being silently "repaired" by a UTF-8 decoder.
      host = { type: "domain", name: latin1(buf.subarray(at + 2, at + 2 + len)) };
      end = at + 2 + len;
      break;
    }
    default:
      return protocolError("badAddressType", `${what} has unknown address type ${atyp}`, answer ? Reply.addressTypeNotSupported : null);
  }
  const port = (buf[end]! << 8) | buf[end + 1]!;
  return { value: { host, port }, consumed: end + 2 };
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/**
 * Parses a client request. An unknown `CMD` is returned as is (the server answers
 * {@link Reply.commandNotSupported}); an unknown `ATYP` is an error whose `reply` is
 * {@link Reply.addressTypeNotSupported}, because without it the length of the message is unknown.
 */
export function parseRequest(buf: Uint8Array): ParseResult<Request> {
  const r = parseAddressMessage(buf, "request", true);
  if (r === NEED_MORE || r instanceof Socks5ProtocolError) return r;
  return { value: { command: r.value.code, host: r.value.host, port: r.value.port }, consumed: r.consumed };
}

/** Parses a server reply. */
export function parseReply(buf: Uint8Array): ParseResult<ReplyMessage> {
  const r = parseAddressMessage(buf, "reply", false);
  if (r === NEED_MORE || r instanceof Socks5ProtocolError) return r;
  return { value: { reply: r.value.code, host: r.value.host, port: r.value.port }, consumed: r.consumed };
}

function encodeAddressMessage(code: number, host: Socks5Host, port: number): Uint8Array {
  const out = new Uint8Array(3 + socksAddressLength(host));
  out[0] = Version.socks5;
  out[1] = code;
  out[2] = 0x00;
  writeSocksAddress(out, 3, { host, port });
  return out;
}

/** Bytes that `ATYP DST.ADDR DST.PORT` takes for `host` (RFC 1928 §5). Throws `RangeError` if none. */
export function socksAddressLength(host: Socks5Host): number {
  if (host.type === "ip") {
    if (host.ip.bytes.length !== (host.ip.family === 4 ? 4 : 16)) throw new RangeError(`IPv${host.ip.family} address has ${host.ip.bytes.length} bytes`);
    return 1 + host.ip.bytes.length + 2;
  }
  if (host.name.length < 1 || host.name.length > 255) throw new RangeError(`domain name must be 1..255 bytes, not ${host.name.length}`);
  return 1 + 1 + host.name.length + 2;
}

/**
 * Writes `ATYP DST.ADDR DST.PORT` at `out[at]` and returns the offset after it. `out` must have
 * {@link socksAddressLength} bytes free there.
 */
export function writeSocksAddress(out: Uint8Array, at: number, { host, port }: { host: Socks5Host; port: number }): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port ${port} is out of range 0..65535`);
  let i = at;
  if (host.type === "ip") {
    out[i++] = host.ip.family === 4 ? AddressType.ipv4 : AddressType.ipv6;
    out.set(host.ip.bytes, i);
    i += host.ip.bytes.length;
  } else {
    const name = latin1Bytes(host.name);
    out[i++] = AddressType.domainName;
    out[i++] = name.length;
    out.set(name, i);
    i += name.length;
  }
  out[i++] = port >> 8;
  out[i++] = port & 0xff;
  return i;
}

function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`domain name has a character outside latin1 at ${i}`);
    out[i] = c;
  }
  return out;
}

/** Encodes a client request. */
export function encodeRequest(command: number, host: Socks5Host, port: number): Uint8Array {
  return encodeAddressMessage(command, host, port);
}

const UNSPECIFIED_V4: Socks5Host = { type: "ip", ip: { family: 4, bytes: new Uint8Array(4) } };

/**
 * Encodes a server reply. Without `bound`, BND is `0.0.0.0:0`, which is what failure replies
 * carry (RFC 1928 §6 leaves BND meaningless on failure).
 */
export function encodeReply(reply: number, bound?: { host: Socks5Host; port: number }): Uint8Array {
  return encodeAddressMessage(reply, bound?.host ?? UNSPECIFIED_V4, bound?.port ?? 0);
}
