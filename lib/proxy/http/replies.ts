/**
 * The responses the proxy itself sends: `200 Connection established` for CONNECT, and the error
 * responses a person can read (a one-line reason as the body), each ending the connection.
 *
 * What this module does NOT do: it does not decide which status a failure gets; the server maps the
 * core's failure kinds to statuses in one place and calls {@link encodeErrorResponse}.
 */
import { encodeResponseHead } from "./response.ts";
import { type HeaderField, Status, latin1Bytes } from "./wire.ts";

/** The realm of the 407 challenge. */
export const PROXY_REALM = "egressd";

/** Reason phrases for the statuses the proxy sends (RFC 9110 §15). */
export const REASON_PHRASES: Readonly<Record<number, string>> = {
  200: "Connection established",
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** The answer to a CONNECT that succeeded; the tunnel starts after it. No fields (RFC 9110 §9.3.6). */
export function encodeConnectEstablished(): Uint8Array {
  return encodeResponseHead({ status: Status.ok, reason: REASON_PHRASES[200]!, headers: [] });
}

/** Options for {@link encodeErrorResponse}. */
export interface ErrorResponseOptions {
  /** For 405: the methods allowed; RFC 9110 §15.5.6 requires an Allow field, so pass them. No default. */
  readonly allow?: readonly string[];
  /** For a response to HEAD: the head only, no body. Default false. */
  readonly head?: boolean;
}

/**
 * An error response with `Connection: close`, a `text/plain` body holding `reason` and a newline,
 * and for 407 the `Proxy-Authenticate: Basic realm="egressd", charset="UTF-8"` challenge (RFC 7617
 * §2.1). Control characters in `reason` become spaces, so a name taken from the request can never
 * split the response. Throws `RangeError` for a status outside 400..599.
 */
export function encodeErrorResponse(status: number, reason: string, opts: ErrorResponseOptions = {}): Uint8Array {
  if (!Number.isInteger(status) || status < 400 || status > 599) throw new RangeError(`error status ${status} is not 400..599`);
  const body = new TextEncoder().encode(reason.replace(/[\x00-\x1f\x7f]/g, " ") + "\n");
  const headers: HeaderField[] = [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ["Connection", "close"],
  ];
  if (status === Status.proxyAuthenticationRequired) headers.push(["Proxy-Authenticate", `Basic realm="${PROXY_REALM}", charset="UTF-8"`]);
  if (status === Status.methodNotAllowed && opts.allow) headers.push(["Allow", opts.allow.join(", ")]);
  const head = encodeResponseHead({ status, reason: REASON_PHRASES[status] ?? "Error", headers });
  if (opts.head) return head;
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** The same as {@link encodeErrorResponse}, as text, for logs and tests. */
export function errorResponseText(status: number, reason: string, opts: ErrorResponseOptions = {}): string {
  return new TextDecoder().decode(encodeErrorResponse(status, reason, opts));
}
