/**
 * The request-target of an HTTP/1.1 request line (RFC 9112 §3.2), as a pure function.
 *
 * What this module does NOT do: it does not decide whether the proxy serves a form (the server
 * answers origin-form and asterisk-form itself), resolve names, or apply a destination policy.
 * It only says which form the target has and where it points.
 */
import { isIPv4, isIPv6 } from "node:net";
import { isDnsName } from "../../net/ip.ts";
import { type HttpProtocolError, httpError } from "./wire.ts";

/** The default port of `http://` (RFC 9110 §4.2.1). */
export const HTTP_DEFAULT_PORT = 80;

/** Where a request points. `host` is an IP literal without brackets or a DNS name in lower case. */
export type RequestTarget =
  /** `CONNECT host:port`, RFC 9112 §3.2.3. The port is always given. */
  | { readonly form: "authority"; readonly host: string; readonly port: number }
  /**
   * `GET http://host[:port]/path?query`, RFC 9112 §3.2.2. `path` is the origin-form to forward
   * (`/` when the URI has no path); `authority` is the value the forwarded Host header must carry.
   */
  | { readonly form: "absolute"; readonly host: string; readonly port: number; readonly authority: string; readonly path: string }
  /** `GET /path?query`, RFC 9112 §3.2.1: a request for the proxy itself. */
  | { readonly form: "origin"; readonly path: string }
  /** `OPTIONS *`, RFC 9112 §3.2.4. */
  | { readonly form: "asterisk" };

/** A host and port from an authority, plus the authority normalised for a Host header. */
export interface Authority {
  readonly host: string;
  readonly port: number;
  readonly authority: string;
}

// Visible ASCII except the characters RFC 3986 never allows in a URI; the request line parser
// already split on SP, so what is left must be VCHAR.
function isUriText(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x22 || c === 0x3c || c === 0x3e || c === 0x5c || c === 0x5e || c === 0x60 || c === 0x7b || c === 0x7c || c === 0x7d) return false;
  }
  return true;
}

/**
 * Parses `host[:port]` (RFC 3986 §3.2.2-3.2.3): a DNS name, an IPv4 literal or an IPv6 literal in
 * brackets. `defaultPort` is used when the port is absent or empty; `null` makes a port required.
 */
export function parseAuthority(text: string, defaultPort: number | null): Authority | HttpProtocolError {
  let host: string;
  let portText: string | null;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return httpError("badTarget", "request", `"${text}" has an unclosed "["`);
    host = text.slice(1, close);
    // A zone id (%25eth0, RFC 6874) or an IPvFuture literal never names a destination a pod may reach.
    if (!isIPv6(host) || host.includes("%")) return httpError("badTarget", "request", `"${host}" in brackets is not an IPv6 address`);
    const rest = text.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) return httpError("badTarget", "request", `"${text}" has text after "]"`);
    portText = rest === "" ? null : rest.slice(1);
  } else {
    const colon = text.lastIndexOf(":");
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? null : text.slice(colon + 1);
    if (host.includes(":")) return httpError("badTarget", "request", `put the IPv6 address in brackets: "[${host}]"`);
    if (host === "") return httpError("badTarget", "request", `"${text}" has an empty host`);
    if (!isIPv4(host)) {
      if (!isDnsName(host)) return httpError("badTarget", "request", `"${host}" is neither an IP address nor a DNS name`);
      host = host.toLowerCase().replace(/\.$/, "");
      // "2130706433", "127.1" and "0x7f.0.0.1" are names to a DNS resolver but 127.0.0.1 to
      // inet_aton and to browsers (WHATWG URL): refuse them, so no resolver can turn one into an
      // address the destination policy never saw as such.
      if (/^(0x[0-9a-f]*|\d+)$/.test(host.slice(host.lastIndexOf(".") + 1))) {
        return httpError("badTarget", "request", `"${host}" looks like an IPv4 address in a non-standard form; write it as a.b.c.d`);
      }
    }
  }
  let port: number;
  if (portText === null || portText === "") {
    if (defaultPort === null) return httpError("badPort", "request", `"${text}" has no port; CONNECT needs host:port`);
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) return httpError("badPort", "request", `port "${portText}" is not a number`);
    port = Number(portText);
    if (port < 1 || port > 65535) return httpError("badPort", "request", `port ${port} is out of range 1..65535`);
  }
  const shown = host.includes(":") ? `[${host}]` : host;
  return { host, port, authority: port === HTTP_DEFAULT_PORT && defaultPort === HTTP_DEFAULT_PORT ? shown : `${shown}:${port}` };
}

/**
 * Parses a request-target. CONNECT takes only the authority form, every other method only the
 * absolute, origin or (for OPTIONS) asterisk form. A fragment or userinfo is an error: RFC 9110
 * §4.2.4 tells recipients to treat userinfo in an http URI as one, and a client never sends `#`.
 */
export function parseRequestTarget(method: string, text: string): RequestTarget | HttpProtocolError {
  if (!isUriText(text)) return httpError("badTarget", "request", `request-target has a character not allowed in a URI`);
  if (text.includes("#")) return httpError("badTarget", "request", `request-target has a fragment`);
  if (method === "CONNECT") {
    if (text.includes("/") || text.includes("@") || text.includes("?")) return httpError("badTarget", "request", `CONNECT needs host:port, not "${text}"`);
    const a = parseAuthority(text, null);
    if (!("host" in a)) return a;
    return { form: "authority", host: a.host, port: a.port };
  }
  if (text === "*") {
    if (method !== "OPTIONS") return httpError("badTarget", "request", `"*" is only a target for OPTIONS`);
    return { form: "asterisk" };
  }
  if (text.startsWith("/")) return { form: "origin", path: text };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (!scheme) return httpError("badTarget", "request", `request-target "${text.slice(0, 64)}" is neither absolute nor origin form`);
  if (scheme[1]!.toLowerCase() !== "http") return httpError("unsupportedScheme", "request", `scheme "${scheme[1]}" is not proxied; use CONNECT for https`);
  const rest = text.slice(scheme[0].length);
  const pathAt = rest.search(/[/?]/);
  const authText = pathAt < 0 ? rest : rest.slice(0, pathAt);
  if (authText.includes("@")) return httpError("badTarget", "request", `request-target has userinfo; send credentials in Proxy-Authorization`);
  const a = parseAuthority(authText, HTTP_DEFAULT_PORT);
  if (!("host" in a)) return a;
  const tail = pathAt < 0 ? "" : rest.slice(pathAt);
  const path = tail === "" ? "/" : tail.startsWith("?") ? `/${tail}` : tail;
  return { form: "absolute", host: a.host, port: a.port, authority: a.authority, path };
}
