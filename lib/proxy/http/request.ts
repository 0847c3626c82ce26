/**
 * The head of an HTTP/1.1 request (RFC 9112 §3, §5) as a pure, bounded parser, and its encoder.
 *
 * What this module does NOT do: it reads no body, decides nothing about the proxy's policy or
 * authentication, and does not rewrite the request for forwarding (`forward.ts` does). What it
 * returns is safe to act on: the target parsed, the Host field checked, the body's framing decided
 * with every smuggling ambiguity rejected (`framing.ts`).
 *
 * {@link parseRequestHead} takes the bytes received so far and returns `{ value, consumed }` (bytes
 * after `consumed` are the body or the next request), {@link NEED_MORE}, or an
 * {@link HttpProtocolError} whose `status` is the answer to send before closing. It never throws.
 */
import { type BodyFraming, type HttpVersion, requestFraming, wantsPersistence } from "./framing.ts";
import { HTTP_DEFAULT_PORT, type RequestTarget, parseAuthority, parseRequestTarget } from "./target.ts";
import {
  DEFAULT_HEAD_LIMITS,
  type HeadLimits,
  type HeaderList,
  HttpProtocolError,
  NEED_MORE,
  type ParseResult,
  encodeHead,
  headerValues,
  httpError,
  isToken,
  scanHead,
} from "./wire.ts";

/** A parsed request head. */
export interface RequestHead {
  /** Case-sensitive, as sent (RFC 9110 §9.1). */
  readonly method: string;
  /** The request-target exactly as sent. */
  readonly rawTarget: string;
  readonly target: RequestTarget;
  readonly version: HttpVersion;
  readonly headers: HeaderList;
  readonly body: BodyFraming;
  /** The client wants the connection kept after this exchange (RFC 9112 §9.3). */
  readonly persistent: boolean;
}

const VERSION = /^HTTP\/(\d)\.(\d)$/;

/** Parses an HTTP-version (`HTTP/1.1`); only major version 1 is supported. */
export function parseVersion(text: string, side: "request" | "response"): HttpVersion | HttpProtocolError {
  const m = VERSION.exec(text);
  if (!m) return httpError("badVersion", side, `"${text.slice(0, 16)}" is not an HTTP version`);
  const version = { major: Number(m[1]), minor: Number(m[2]) };
  if (version.major !== 1) return httpError("unsupportedVersion", side, `HTTP/${version.major}.${version.minor} is not supported; use HTTP/1.1`);
  return version;
}

/*
 * request-line = method SP request-target SP HTTP-version     RFC 9112 §3
 *
 * Exactly one SP between the parts: RFC 9112 §3 lets a server split on any whitespace, but a
 * proxy that splits differently from the origin is a smuggling risk, and every client sends one SP.
 */

/** Parses a request head. See the module comment. `limits` default to {@link DEFAULT_HEAD_LIMITS}. */
export function parseRequestHead(buf: Uint8Array, limits: HeadLimits = DEFAULT_HEAD_LIMITS): ParseResult<RequestHead> {
  const scanned = scanHead(buf, "request", limits);
  if (scanned === NEED_MORE || scanned instanceof HttpProtocolError) return scanned;
  const { startLine, headers } = scanned.value;
  const parts = startLine.split(" ");
  if (parts.length !== 3) return httpError("badStartLine", "request", `request line does not have three parts separated by one space`);
  const [method, rawTarget, versionText] = parts as [string, string, string];
  if (!isToken(method)) return httpError("badMethod", "request", `method "${method.slice(0, 32)}" is not a token`);
  const version = parseVersion(versionText, "request");
  if (version instanceof HttpProtocolError) return version;
  const target = parseRequestTarget(method, rawTarget);
  if (target instanceof HttpProtocolError) return target;
  const hostError = checkHost(version, target, headers);
  if (hostError) return hostError;
  const body = requestFraming(version, headers);
  if (body instanceof HttpProtocolError) return body;
  return {
    value: { method, rawTarget, target, version, headers, body, persistent: wantsPersistence(version, headers) },
    consumed: scanned.consumed,
  };
}

// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, with more than one,
// or with an invalid one. For the absolute form, a proxy replaces Host with the target's authority
// (§3.2.2), so there it must only not be repeated or malformed.
function checkHost(version: HttpVersion, target: RequestTarget, headers: HeaderList): HttpProtocolError | null {
  const hosts = headerValues(headers, "host");
  if (hosts.length > 1) return httpError("badHost", "request", `request has ${hosts.length} Host fields`);
  if (hosts.length === 0) {
    if (target.form === "origin" && version.minor >= 1) return httpError("badHost", "request", "HTTP/1.1 request has no Host field");
    return null;
  }
  const host = hosts[0]!;
  if (host === "") return target.form === "origin" && version.minor >= 1 ? httpError("badHost", "request", "Host field is empty") : null;
  const parsed = parseAuthority(host, HTTP_DEFAULT_PORT);
  if (parsed instanceof HttpProtocolError) return httpError("badHost", "request", `Host field "${host.slice(0, 64)}" is not host[:port]`);
  return null;
}

/** The parts of a request head that {@link encodeRequestHead} writes. */
export interface RequestHeadParts {
  readonly method: string;
  readonly target: string;
  /** Default `{ major: 1, minor: 1 }`. */
  readonly version?: HttpVersion;
  readonly headers: HeaderList;
}

/** Encodes a request head, ending with the empty line. Throws `RangeError` for an unencodable part. */
export function encodeRequestHead(head: RequestHeadParts): Uint8Array {
  if (!isToken(head.method)) throw new RangeError(`method "${head.method}" is not a token`);
  if (head.target === "" || /\s/.test(head.target)) throw new RangeError(`request-target "${head.target}" is empty or has whitespace`);
  const v = head.version ?? { major: 1, minor: 1 };
  return encodeHead(`${head.method} ${head.target} HTTP/${v.major}.${v.minor}`, head.headers);
}
