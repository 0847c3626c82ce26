/**
 * The opening of a SOCKS5 exchange, as pure functions over bytes: the client's greeting and the
 * server's method selection (RFC 1928 §3), then the username/password sub-negotiation (RFC 1929).
 * The codes, the result convention and the error are socks5.ts's.
 */
import { NEED_MORE, protocolError, Version, type ParseResult } from "./socks5.ts";

/** The client's greeting: the authentication methods it offers. */
export interface Greeting {
  readonly methods: readonly number[];
}

/** RFC 1929 credentials as raw bytes; RFC 1929 does not name an encoding. */
export interface AuthRequest {
  readonly username: Uint8Array;
  readonly password: Uint8Array;
}

/** The largest greeting: VER, NMETHODS=255, 255 methods. */
export const MAX_GREETING_BYTES = 2 + 255;
/** The largest RFC 1929 request: VER, ULEN, 255, PLEN, 255. */
export const MAX_AUTH_REQUEST_BYTES = 3 + 255 + 255;
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
