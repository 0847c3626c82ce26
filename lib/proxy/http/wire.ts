/**
 * The shared core of HTTP/1.1 on the wire (RFC 9112): result types, the typed protocol error, the
 * status codes the proxy sends, and the bounded scanner that splits a message head into lines and
 * header fields. The request and response parsers (`request.ts`, `response.ts`) build on it.
 *
 * What this module does NOT do: it never touches a socket, never decides what a request means for
 * the proxy, and never interprets a header's value beyond its syntax. Framing lives in `framing.ts`,
 * hop-by-hop handling in `forward.ts`.
 *
 * Line endings: RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator. We do not: a
 * proxy that reads a head differently from the origin behind it is how request smuggling starts, and
 * every real client sends CRLF. A bare LF and a bare CR are both a `badLineEnding` error (400).
 *
 * Text: heads are decoded as latin1 (one char per byte), so that no byte is lost or "repaired" and
 * re-encoding a parsed head gives back its exact bytes.
 */

/** Status codes the proxy produces or has to recognise. RFC 9110 §15. */
export const Status = {
  switchingProtocols: 101,
  ok: 200,
  noContent: 204,
  notModified: 304,
  badRequest: 400,
  forbidden: 403,
  methodNotAllowed: 405,
  proxyAuthenticationRequired: 407,
  uriTooLong: 414,
  requestHeaderFieldsTooLarge: 431,
  notImplemented: 501,
  badGateway: 502,
  serviceUnavailable: 503,
  gatewayTimeout: 504,
  httpVersionNotSupported: 505,
} as const;

/** Returned by a parser when `buf` is a valid but incomplete prefix of a message. */
export const NEED_MORE: unique symbol = Symbol("http.needMore");
/** The type of {@link NEED_MORE}. */
export type NeedMore = typeof NEED_MORE;

/** A whole message read from the front of a buffer. */
export interface Parsed<T> {
  readonly value: T;
  /** Bytes of the buffer this message used; what follows belongs to the body or the next message. */
  readonly consumed: number;
}

/** What a head parser returns. */
export type ParseResult<T> = Parsed<T> | NeedMore | HttpProtocolError;

/** Why bytes can never become a valid message. Each kind's status is in {@link HttpProtocolError}. */
export type HttpErrorKind =
  | "badLineEnding" // bare CR or bare LF (400)
  | "headTooLarge" // the head exceeds maxHeadBytes (431; 502 for a response)
  | "tooManyHeaders" // more than maxHeaders field lines (431; 502)
  | "requestLineTooLong" // the request line exceeds maxLineBytes (414)
  | "headerLineTooLong" // a field line or status line exceeds maxLineBytes (431; 502)
  | "badStartLine" // the request or status line does not parse (400; 502)
  | "badMethod" // the method is not a token (400)
  | "badVersion" // not HTTP/d.d (400; 502)
  | "unsupportedVersion" // HTTP/0.x, 2 or higher (505; 502)
  | "badTarget" // the request-target does not parse, or its form does not fit the method (400)
  | "unsupportedScheme" // an absolute-form target that is not http:// (501)
  | "badPort" // a port that is missing (CONNECT), not a number, 0 or above 65535 (400)
  | "obsFold" // a field line starting with whitespace, RFC 9112 §5.2 (400; 502)
  | "badHeader" // a field line without a colon, a bad name, whitespace before the colon, a CTL in the value (400; 502)
  | "badHost" // Host missing in HTTP/1.1 origin form, repeated, or not a valid authority (400)
  | "badContentLength" // not digits, too large, or several differing values (400; 502)
  | "smuggling" // Transfer-Encoding and Content-Length together (400; 502)
  | "badTransferEncoding" // chunked not last or repeated, in HTTP/1.0, or an empty coding (400)
  | "unsupportedTransferEncoding" // a coding name that is not a token (501)
  | "badChunk" // a chunk-size line, chunk data terminator or trailer that does not parse (400; 502)
  | "chunkLineTooLong" // a chunk-size line or trailer line over its limit (400; 502)
  | "chunkTooLarge"; // a chunk size above 2^48 (400; 502)

/**
 * Bytes that cannot be a valid HTTP message. Returned (not thrown) by the parsers. `status` is what
 * the proxy answers its client before closing: a 4xx/5xx for a bad request, 502 for a bad response
 * from upstream (RFC 9112 §6.3 asks for 502 when a proxy gets an unframeable response).
 */
export class HttpProtocolError extends Error {
  override name = "HttpProtocolError";
  constructor(
    readonly kind: HttpErrorKind,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Which end of the exchange a message came from; it decides the status an error maps to. */
export type Side = "request" | "response";

/** Bounds on a head. Defaults: {@link DEFAULT_HEAD_LIMITS}. */
export interface HeadLimits {
  /** The whole head, start line to the empty line, inclusive. */
  readonly maxHeadBytes: number;
  /** One line without its CRLF. */
  readonly maxLineBytes: number;
  /** Field lines. */
  readonly maxHeaders: number;
}

/** 16 KiB heads, 8 KiB lines, 100 fields: larger than any real client sends, small enough to buffer per connection. */
export const DEFAULT_HEAD_LIMITS: HeadLimits = { maxHeadBytes: 16 * 1024, maxLineBytes: 8 * 1024, maxHeaders: 100 };

/** One header field as received: the name in its original case, the value without surrounding whitespace. */
export type HeaderField = readonly [name: string, value: string];

/** Header fields in order. Names compare case-insensitively (RFC 9110 §5.1). */
export type HeaderList = readonly HeaderField[];

/** All values of a field, in order, each as sent (a field may also carry a comma list). */
export function headerValues(headers: HeaderList, name: string): string[] {
  // A loop rather than filter/map: called several times per request head, on the hot path.
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (const [n, v] of headers) if (n.toLowerCase() === lower) out.push(v);
  return out;
}

/** The elements of a comma-separated list field across all its lines, trimmed, empty ones dropped (RFC 9110 §5.6.1). */
export function headerList(headers: HeaderList, name: string): string[] {
  const out: string[] = [];
  for (const v of headerValues(headers, name)) {
    for (const part of v.split(",")) {
      const s = part.trim();
      if (s !== "") out.push(s);
    }
  }
  return out;
}

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;

// tchar, RFC 9110 §5.6.2: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** True when `s` is a non-empty RFC 9110 token. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!TCHAR[s.charCodeAt(i)]) return false;
  return true;
}

/** Decodes bytes one char per byte. */
export function latin1(bytes: Uint8Array): string {
  // Most head lines and field names are short, where a plain loop beats every native call (the
  // spread into fromCharCode cost ~1 us for a 32-byte request line); Buffer's latin1 is exact
  // (byte n is U+00nn, unlike TextDecoder's "latin1", which is windows-1252) and fast for the rest.
  if (bytes.length <= 64) {
    let s = "";
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
    return s;
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** Encodes a string one byte per char; throws `RangeError` for a char above U+00FF. */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`character U+${c.toString(16).padStart(4, "0")} at ${i} cannot be sent in an HTTP head`);
    out[i] = c;
  }
  return out;
}

/** The status a kind maps to on each side. */
export function statusFor(kind: HttpErrorKind, side: Side): number {
  if (side === "response") return Status.badGateway;
  switch (kind) {
    case "headTooLarge":
    case "tooManyHeaders":
    case "headerLineTooLong":
      return Status.requestHeaderFieldsTooLarge;
    case "requestLineTooLong":
      return Status.uriTooLong;
    case "unsupportedVersion":
      return Status.httpVersionNotSupported;
    case "unsupportedScheme":
    case "unsupportedTransferEncoding":
      return Status.notImplemented;
    default:
      return Status.badRequest;
  }
}

/** Builds the error for `kind` on `side`. */
export function httpError(kind: HttpErrorKind, side: Side, message: string): HttpProtocolError {
  return new HttpProtocolError(kind, message, statusFor(kind, side));
}

/** A head split into its start line and field lines. */
export interface ScannedHead {
  readonly startLine: string;
  readonly headers: HeaderList;
}

/*
 * A message head. RFC 9112 §2.1, §5.
 *
 *   start-line CRLF
 *   *( field-name ":" OWS field-value OWS CRLF )
 *   CRLF
 *
 * A request may be preceded by empty lines (RFC 9112 §2.2: a server SHOULD ignore at least one);
 * they count against maxHeadBytes.
 */

/**
 * Splits a head into its start line and header fields, checking line endings, limits and field
 * syntax as it goes, so that a bad line is reported as soon as it is complete. The cost of a call is
 * linear in `min(buf.length, maxHeadBytes)`.
 */
export function scanHead(buf: Uint8Array, side: Side, limits: HeadLimits = DEFAULT_HEAD_LIMITS): ParseResult<ScannedHead> {
  const end = Math.min(buf.length, limits.maxHeadBytes);
  let pos = 0;
  let startLine: string | null = null;
  const headers: HeaderField[] = [];
  for (;;) {
    const lf = buf.indexOf(LF, pos);
    const lineEnd = lf < 0 || lf >= end ? -1 : lf;
    if (lineEnd < 0) {
      // The line is incomplete: a prefix of something valid unless it is already too long or
      // holds a bare CR, or the head cannot end within its limit.
      const tail = end - pos;
      const cr = buf.indexOf(CR, pos);
      if (cr >= 0 && cr < end - 1) return httpError("badLineEnding", side, `bare CR in the ${startLine === null ? "start line" : "head"}`);
      if (tail > limits.maxLineBytes + 1) return lineTooLong(startLine === null, side, limits);
      if (buf.length >= limits.maxHeadBytes) return httpError("headTooLarge", side, `head is larger than ${limits.maxHeadBytes} bytes`);
      return NEED_MORE;
    }
    if (lineEnd === pos || buf[lineEnd - 1] !== CR) return httpError("badLineEnding", side, `bare LF at byte ${lineEnd}`);
    const contentEnd = lineEnd - 1;
    const cr = buf.indexOf(CR, pos);
    if (cr < contentEnd) return httpError("badLineEnding", side, `bare CR at byte ${cr}`);
    if (contentEnd - pos > limits.maxLineBytes) return lineTooLong(startLine === null, side, limits);
    const line = buf.subarray(pos, contentEnd);
    pos = lineEnd + 1;
    if (startLine === null) {
      if (line.length === 0 && side === "request") continue;
      if (line.length === 0) return httpError("badStartLine", side, "empty status line");
      if (line[0] === SP || line[0] === HTAB) return httpError("badStartLine", side, "start line begins with whitespace");
      startLine = latin1(line);
      continue;
    }
    if (line.length === 0) return { value: { startLine, headers }, consumed: pos };
    if (headers.length >= limits.maxHeaders) return httpError("tooManyHeaders", side, `more than ${limits.maxHeaders} header fields`);
    const field = parseFieldLine(line, side);
    if (field instanceof HttpProtocolError) return field;
    headers.push(field);
  }
}

function lineTooLong(isStart: boolean, side: Side, limits: HeadLimits): HttpProtocolError {
  if (isStart && side === "request") return httpError("requestLineTooLong", side, `request line is longer than ${limits.maxLineBytes} bytes`);
  return httpError("headerLineTooLong", side, `a ${isStart ? "status" : "header"} line is longer than ${limits.maxLineBytes} bytes`);
}

// field-line = field-name ":" OWS field-value OWS; field-value chars are VCHAR, obs-text, SP, HTAB.
function parseFieldLine(line: Uint8Array, side: Side): HeaderField | HttpProtocolError {
  if (line[0] === SP || line[0] === HTAB) return httpError("obsFold", side, "header line begins with whitespace (obs-fold is not accepted)");
  const colon = line.indexOf(0x3a);
  if (colon < 0) return httpError("badHeader", side, `header line has no colon: ${quote(line)}`);
  if (colon === 0) return httpError("badHeader", side, "header line has an empty name");
  for (let i = 0; i < colon; i++) {
    if (!TCHAR[line[i]!]) {
      const ws = line[i] === SP || line[i] === HTAB;
      return httpError("badHeader", side, ws ? `whitespace before the colon in header ${quote(line.subarray(0, colon))}` : `header name ${quote(line.subarray(0, colon))} is not a token`);
    }
  }
  let a = colon + 1;
  let b = line.length;
  while (a < b && (line[a] === SP || line[a] === HTAB)) a++;
  while (b > a && (line[b - 1] === SP || line[b - 1] === HTAB)) b--;
  for (let i = a; i < b; i++) {
    const c = line[i]!;
    if ((c < 0x20 && c !== HTAB) || c === 0x7f) return httpError("badHeader", side, `header ${quote(line.subarray(0, colon))} has control byte 0x${c.toString(16).padStart(2, "0")} in its value`);
  }
  return [latin1(line.subarray(0, colon)), latin1(line.subarray(a, b))];
}

/** A short, printable rendering of bytes for an error message (control bytes escaped, cut at 64). */
export function quote(bytes: Uint8Array): string {
  let s = "";
  for (const c of bytes.subarray(0, 64)) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  return `"${s}${bytes.length > 64 ? "..." : ""}"`;
}

/** Encodes a start line and fields as a head, ending with the empty line. Throws `RangeError` on CR, LF or NUL in any part. */
export function encodeHead(startLine: string, headers: HeaderList): Uint8Array {
  const parts = [checkText(startLine, "start line")];
  for (const [name, value] of headers) {
    if (!isToken(name)) throw new RangeError(`header name "${name}" is not a token`);
    parts.push(`${name}: ${checkText(value, `header ${name}`)}`);
  }
  return latin1Bytes(parts.join("\r\n") + "\r\n\r\n");
}

function checkText(s: string, what: string): string {
  if (/[\r\n\0]/.test(s)) throw new RangeError(`${what} contains CR, LF or NUL`);
  return s;
}
