/**
 * SOCKS version 5 on the wire (RFC 1928, RFC 1929): the vocabulary every message shares, as pure
 * values. The codes of each field, the parsers' result convention and their error. The messages
 * themselves are in two files: the greeting, the method selection and the username/password
 * sub-negotiation in socks5-greeting.ts; the request, the reply and the address they share with the
 * UDP header (socks5-udp.ts) in socks5-request.ts.
 *
 * What these modules do NOT do: they never touch a socket, resolve a name, apply a policy, or
 * decide which method or command the server supports. They only turn bytes into typed messages and
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

/** Builds a {@link Socks5ProtocolError}: the parsers' shorthand. */
export function protocolError(reason: ProtocolErrorReason, message: string, reply: ReplyCode | null = null) {
  return new Socks5ProtocolError(reason, message, reply);
}
