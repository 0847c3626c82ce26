/**
 * SOCKS version 5 on the wire (RFC 1928) and its username/password sub-negotiation (RFC 1929), as
 * pure functions over bytes.
 *
 * What this module does NOT do: it never touches a socket, resolves a name, applies a policy, or
 * decides which method or command the server supports. It only turns bytes into typed messages and
 * back. The session (`socks5-session.ts`) reads bytes, calls these parsers, and decides; tests and the bench
 * use the encoders to play the client.
 *
 * Every parser takes the bytes received so far and returns one of:
 * - `{ value, consumed }`: a whole message was read from the front of `buf`; bytes after `consumed`
 *   belong to whatever comes next (clients may pipeline the greeting, the auth and the request);
 * - {@link NEED_MORE}: `buf` is a prefix of a valid message; read more and call again with all of it;
 * - a {@link Socks5ProtocolError}: the bytes can never become a valid message.
 *
 * Parsers never throw. Encoders throw `RangeError` for values that cannot be represented.
 */
import type { IpAddr } from "../net/ip.ts";

/** Protocol version numbers. RFC 1928 §3 (`VER` = 5) and RFC 1929 §2 (sub-negotiation `VER` = 1). */
export const Version = {
  socks5: 0x05,
  userPassAuth: 0x01,
} as const;

/** Authentication method identifiers. RFC 1928 §3. */
export const AuthMethod = {
  noAuth: 0x00,
  gssapi: 0x01,
  usernamePassword: 0x02,
  /** Sent by the server when none of the client's methods is acceptable. */
  noAcceptable: 0xff,
} as const;

/** Request commands (`CMD`). RFC 1928 §4. */
export const Command = {
  connect: 0x01,
  bind: 0x02,
  udpAssociate: 0x03,
} as const;

/** Address types (`ATYP`). RFC 1928 §5. */
export const AddressType = {
  ipv4: 0x01,
  domainName: 0x03,
  ipv6: 0x04,
} as const;

/** Reply codes (`REP`). RFC 1928 §6. */
export const Reply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** One of the {@link Reply} codes. */
export type ReplyCode = (typeof Reply)[keyof typeof Reply];

/** Sub-negotiation status. RFC 1929 §2: `0x00` is success, any other value is failure. */
export const AuthStatus = {
  success: 0x00,
  failure: 0x01,
} as const;

/** Returned by a parser when `buf` is a valid but incomplete prefix of a message. */
export const NEED_MORE: unique symbol = Symbol("socks5.needMore");
/** The type of {@link NEED_MORE}. */
export type NeedMore = typeof NEED_MORE;

/** A whole message read from the front of a buffer. */
export interface Parsed<T> {
  readonly value: T;
  /** Bytes of the buffer this message used. */
  readonly consumed: number;
}

/** What any parser returns. */
export type ParseResult<T> = Parsed<T> | NeedMore | Socks5ProtocolError;

/** Why bytes can never become a valid message. */
export type ProtocolErrorReason =
  | "badVersion"
  | "noMethods"
  | "badAuthVersion"
  | "emptyUsername"
  | "emptyPassword"
  | "badAddressType"
  | "emptyDomainName";

/**
 * Bytes that cannot be a valid SOCKS5 message. Returned (not thrown) by parsers.
 * `reply` is the RFC 1928 §6 code to send before closing, when one applies to this stage of the
 * exchange; `null` means close without a reply (there is no reply message for a bad greeting).
 */
export class Socks5ProtocolError extends Error {
  override name = "Socks5ProtocolError";
  constructor(
    readonly reason: ProtocolErrorReason,
    message: string,
    readonly reply: ReplyCode | null = null,
  ) {
    super(message);
  }
}

/** A destination or bound host: an IP address, or a domain name to be resolved by the server. */
export type Socks5Host =
  | { readonly type: "ip"; readonly ip: IpAddr }
  | { readonly type: "domain"; readonly name: string };

/** The client's greeting: the authentication methods it offers. */
export interface Greeting {
  readonly methods: readonly number[];
}

/** RFC 1929 credentials as raw bytes; RFC 1929 does not name an encoding. */
export interface AuthRequest {
  readonly username: Uint8Array;
  readonly password: Uint8Array;
}

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

/** The largest greeting: VER, NMETHODS=255, 255 methods. */
export const MAX_GREETING_BYTES = 2 + 255;
/** The largest RFC 1929 request: VER, ULEN, 255, PLEN, 255. */
export const MAX_AUTH_REQUEST_BYTES = 3 + 255 + 255;
/** The largest request or reply: VER CMD RSV ATYP, a 255-byte domain with its length, port. */
export const MAX_REQUEST_BYTES = 4 + 1 + 255 + 2;

function protocolError(reason: ProtocolErrorReason, message: string, reply: ReplyCode | null = null) {
  return new Socks5ProtocolError(reason, message, reply);
}

/*
 * Greeting, client to server. RFC 1928 §3.
 *
 *   +----+----------+----------+
 *   |VER | NMETHODS | METHODS  |
 *   +----+----------+----------+
 *   | 1  |    1     | 1 to 255 |
 *   +----+----------+----------+
 */

/** Parses the client's greeting. Zero methods is an error: the client would offer nothing. */
export function parseGreeting(buf: Uint8Array): ParseResult<Greeting> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== Version.socks5) return protocolError("badVersion", `greeting version is ${buf[0]}, not 5`);
  if (buf.length < 2) return NEED_MORE;
  const n = buf[1]!;
  if (n === 0) return protocolError("noMethods", "greeting offers no authentication methods");
  if (buf.length < 2 + n) return NEED_MORE;
  return { value: { methods: Array.from(buf.subarray(2, 2 + n)) }, consumed: 2 + n };
}

/** Encodes a greeting offering `methods` (1 to 255 of {@link AuthMethod}). */
export function encodeGreeting(methods: readonly number[]): Uint8Array {
  if (methods.length < 1 || methods.length > 255) throw new RangeError(`a greeting offers 1..255 methods, not ${methods.length}`);
  const out = new Uint8Array(2 + methods.length);
  out[0] = Version.socks5;
  out[1] = methods.length;
  out.set(methods, 2);
  return out;
}

/*
 * Method selection, server to client. RFC 1928 §3.
 *
 *   +----+--------+
 *   |VER | METHOD |
 *   +----+--------+
 *   | 1  |   1    |
 *   +----+--------+
 */

/** Parses the server's method selection; `value` is the chosen {@link AuthMethod}. */
export function parseMethodSelection(buf: Uint8Array): ParseResult<number> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== Version.socks5) return protocolError("badVersion", `method selection version is ${buf[0]}, not 5`);
  if (buf.length < 2) return NEED_MORE;
  return { value: buf[1]!, consumed: 2 };
}

/** Encodes the server's method selection. */
export function encodeMethodSelection(method: number): Uint8Array {
  return Uint8Array.of(Version.socks5, method);
}

/*
 * Username/password request, client to server. RFC 1929 §2.
 *
 *   +----+------+----------+------+----------+
 *   |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
 *   +----+------+----------+------+----------+
 *   | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
 *   +----+------+----------+------+----------+
 */

/** Parses RFC 1929 credentials. Empty fields are errors (RFC 1929 §2 gives 1 to 255). */
export function parseAuthRequest(buf: Uint8Array): ParseResult<AuthRequest> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== Version.userPassAuth) return protocolError("badAuthVersion", `auth version is ${buf[0]}, not 1`);
  if (buf.length < 2) return NEED_MORE;
  const ulen = buf[1]!;
  if (ulen === 0) return protocolError("emptyUsername", "username is empty");
  if (buf.length < 3 + ulen) return NEED_MORE;
  const plen = buf[2 + ulen]!;
  if (plen === 0) return protocolError("emptyPassword", "password is empty");
  const end = 3 + ulen + plen;
  if (buf.length < end) return NEED_MORE;
  return {
    value: { username: buf.slice(2, 2 + ulen), password: buf.slice(3 + ulen, end) },
    consumed: end,
  };
}

/** Encodes RFC 1929 credentials; strings are sent as UTF-8. Each field must be 1..255 bytes. */
export function encodeAuthRequest(username: string | Uint8Array, password: string | Uint8Array): Uint8Array {
  const u = typeof username === "string" ? new TextEncoder().encode(username) : username;
  const p = typeof password === "string" ? new TextEncoder().encode(password) : password;
  if (u.length < 1 || u.length > 255) throw new RangeError(`username must be 1..255 bytes, not ${u.length}`);
  if (p.length < 1 || p.length > 255) throw new RangeError(`password must be 1..255 bytes, not ${p.length}`);
  const out = new Uint8Array(3 + u.length + p.length);
  out[0] = Version.userPassAuth;
  out[1] = u.length;
  out.set(u, 2);
  out[2 + u.length] = p.length;
  out.set(p, 3 + u.length);
  return out;
}

/*
 * Username/password status, server to client. RFC 1929 §2.
 *
 *   +----+--------+
 *   |VER | STATUS |
 *   +----+--------+
 *   | 1  |   1    |
 *   +----+--------+
 */

/** Parses the server's RFC 1929 status; `value` is the raw status (0 = success). */
export function parseAuthReply(buf: Uint8Array): ParseResult<number> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== Version.userPassAuth) return protocolError("badAuthVersion", `auth status version is ${buf[0]}, not 1`);
  if (buf.length < 2) return NEED_MORE;
  return { value: buf[1]!, consumed: 2 };
}

/** Encodes the server's RFC 1929 status. */
export function encodeAuthReply(status: number): Uint8Array {
  return Uint8Array.of(Version.userPassAuth, status);
}

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
