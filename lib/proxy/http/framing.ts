/**
 * Where an HTTP/1.1 message body ends (RFC 9112 §6.3), and whether the connection persists after it
 * (RFC 9112 §9.3), decided from a parsed head.
 *
 * What this module does NOT do: it reads no body bytes (`chunked.ts` finds the end of a chunked
 * body) and removes no headers (`forward.ts` does).
 *
 * A proxy and the server behind it must agree on every message boundary, or one client's bytes
 * become another request (request smuggling). So every ambiguity RFC 9112 lets a recipient resolve
 * is an error here: Transfer-Encoding with Content-Length, differing Content-Lengths, chunked not
 * last or sent twice, Transfer-Encoding in HTTP/1.0.
 */
import { type HeaderList, type HttpProtocolError, type Side, headerList, headerValues, httpError, isToken } from "./wire.ts";

/** How a body is delimited. */
export type BodyFraming =
  /** No body at all. */
  | { readonly kind: "none" }
  /** Exactly `length` bytes (Content-Length; 0 is allowed). */
  | { readonly kind: "length"; readonly length: number }
  /** Chunked transfer coding: feed the bytes to a `ChunkedDecoder` to find the end. */
  | { readonly kind: "chunked" }
  /** A response read until the server closes (no Content-Length, no chunked). */
  | { readonly kind: "close" }
  /** 101 Switching Protocols: after the head, both directions are an opaque tunnel. */
  | { readonly kind: "tunnel" };

/** An HTTP version from a start line. */
export interface HttpVersion {
  readonly major: number;
  readonly minor: number;
}

// RFC 9110 §8.6: Content-Length = 1*DIGIT. A recipient may accept a list of identical values
// ("42, 42", what some proxies produce); anything else is invalid.
function contentLength(headers: HeaderList, side: Side): number | null | HttpProtocolError {
  const fields = headerValues(headers, "content-length");
  if (fields.length === 0) return null;
  const values = fields.flatMap((v) => v.split(",")).map((s) => s.trim());
  const first = values[0]!;
  if (!/^\d+$/.test(first)) return httpError("badContentLength", side, `Content-Length "${first}" is not a number`);
  for (const v of values) {
    if (v !== first) return httpError("badContentLength", side, `Content-Length has differing values "${first}" and "${v}"`);
  }
  const n = Number(first);
  if (!Number.isSafeInteger(n)) return httpError("badContentLength", side, `Content-Length ${first} is too large`);
  return n;
}

/** The transfer codings, lower case, in the order applied; null when there is no Transfer-Encoding field. */
function transferCodings(headers: HeaderList, side: Side): string[] | null | HttpProtocolError {
  const fields = headerValues(headers, "transfer-encoding");
  if (fields.length === 0) return null;
  const raw = fields.flatMap((v) => v.split(",")).map((s) => s.trim());
  const codings: string[] = [];
  for (const c of raw) {
    if (c === "") return httpError("badTransferEncoding", side, `Transfer-Encoding has an empty coding`);
    // A coding may carry parameters (RFC 9112 §7: transfer-coding = token *( OWS ";" OWS transfer-parameter )).
    const name = c.split(";")[0]!.trim().toLowerCase();
    if (!isToken(name)) return httpError("unsupportedTransferEncoding", side, `Transfer-Encoding coding "${c}" is not a token`);
    codings.push(name);
  }
  const chunked = codings.filter((c) => c === "chunked").length;
  if (chunked > 1) return httpError("badTransferEncoding", side, `Transfer-Encoding applies chunked more than once`);
  return codings;
}

/**
 * The body of a request, RFC 9112 §6.3 items 3-6. A request without Content-Length or
 * Transfer-Encoding has no body.
 */
export function requestFraming(version: HttpVersion, headers: HeaderList): BodyFraming | HttpProtocolError {
  const te = transferCodings(headers, "request");
  if (te !== null && !Array.isArray(te)) return te;
  const cl = contentLength(headers, "request");
  if (cl !== null && typeof cl !== "number") return cl;
  if (te !== null) {
    if (cl !== null) return httpError("smuggling", "request", "request has both Transfer-Encoding and Content-Length");
    if (version.major === 1 && version.minor === 0) return httpError("badTransferEncoding", "request", "HTTP/1.0 request has Transfer-Encoding");
    if (te[te.length - 1] !== "chunked") return httpError("badTransferEncoding", "request", `request Transfer-Encoding "${te.join(", ")}" does not end with chunked`);
    return { kind: "chunked" };
  }
  if (cl !== null) return { kind: "length", length: cl };
  return { kind: "none" };
}

/** What the response framing depends on besides the response's own head. */
export interface ResponseContext {
  /** The request's method: a response to HEAD has no body. */
  readonly requestMethod: string;
}

/**
 * The body of a response, RFC 9112 §6.3 items 1-7. A response to HEAD, a 1xx, 204 or 304 has no
 * body whatever its fields say; 101 turns the connection into a tunnel; Transfer-Encoding that does
 * not end in chunked, and neither field at all, mean "until the server closes".
 */
export function responseFraming(status: number, version: HttpVersion, headers: HeaderList, ctx: ResponseContext): BodyFraming | HttpProtocolError {
  if (status === 101) return { kind: "tunnel" };
  if (ctx.requestMethod === "HEAD" || (status >= 100 && status < 200) || status === 204 || status === 304) return { kind: "none" };
  const te = transferCodings(headers, "response");
  if (te !== null && !Array.isArray(te)) return te;
  const cl = contentLength(headers, "response");
  if (cl !== null && typeof cl !== "number") return cl;
  if (te !== null) {
    if (cl !== null) return httpError("smuggling", "response", "response has both Transfer-Encoding and Content-Length");
    if (version.major === 1 && version.minor === 0) return { kind: "close" };
    return te[te.length - 1] === "chunked" ? { kind: "chunked" } : { kind: "close" };
  }
  if (cl !== null) return { kind: "length", length: cl };
  return { kind: "close" };
}

/**
 * Whether the sender wants the connection kept open after this message (RFC 9112 §9.3): HTTP/1.1
 * unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`. A close-delimited body
 * ends the connection whatever this says.
 */
export function wantsPersistence(version: HttpVersion, headers: HeaderList): boolean {
  const options = headerList(headers, "connection").map((o) => o.toLowerCase());
  if (options.includes("close")) return false;
  if (version.major === 1 && version.minor >= 1) return true;
  return options.includes("keep-alive");
}
