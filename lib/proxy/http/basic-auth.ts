/**
 * The `Basic` authentication scheme (RFC 7617) as it arrives in `Proxy-Authorization` (RFC 9110
 * §11.7.2), turned into the same credentials a SOCKS5 client sends, so that one
 * `CredentialChecker` (`../auth.ts`) checks both protocols in constant time.
 *
 * What this module does NOT do: it compares nothing and never logs a credential. A malformed field
 * is reported as "invalid" without its content.
 */
import type { AuthRequest } from "../socks5-greeting.ts";
import { type HeaderList, headerValues } from "./wire.ts";

/** What a request's `Proxy-Authorization` carries. */
export type ProxyCredentials =
  | { readonly kind: "missing" }
  /** Not Basic, not base64, no colon, an empty user id, or the field sent twice. `why` is safe to log. */
  | { readonly kind: "invalid"; readonly why: string }
  | { readonly kind: "basic"; readonly request: AuthRequest };

const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Decodes `Basic <base64(user-id ":" password)>`. The scheme name is case-insensitive (RFC 9110
 * §11.1); the user id ends at the first colon (RFC 7617 §2), so a password may contain colons.
 * Both parts are returned as the raw bytes sent (RFC 7617 §2.1: UTF-8 when the realm says so, which
 * ours does).
 */
export function parseBasicCredentials(value: string): AuthRequest | string {
  const m = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)[ ]+(\S+)[ ]*$/.exec(value);
  if (!m) return "Proxy-Authorization is not \"<scheme> <credentials>\"";
  if (m[1]!.toLowerCase() !== "basic") return `Proxy-Authorization scheme "${m[1]!.slice(0, 32)}" is not Basic`;
  const b64 = m[2]!;
  if (!TOKEN68.test(b64) || b64.length % 4 === 1) return "Proxy-Authorization credentials are not base64";
  const bytes = new Uint8Array(Buffer.from(b64, "base64"));
  const colon = bytes.indexOf(0x3a);
  if (colon < 0) return "Proxy-Authorization credentials have no colon between user and password";
  if (colon === 0) return "Proxy-Authorization has an empty user id";
  return { username: bytes.slice(0, colon), password: bytes.slice(colon + 1) };
}

/** Reads the request's `Proxy-Authorization`. See {@link ProxyCredentials}. */
export function proxyCredentials(headers: HeaderList): ProxyCredentials {
  const values = headerValues(headers, "proxy-authorization");
  if (values.length === 0) return { kind: "missing" };
  if (values.length > 1) return { kind: "invalid", why: "Proxy-Authorization is sent more than once" };
  const r = parseBasicCredentials(values[0]!);
  return typeof r === "string" ? { kind: "invalid", why: r } : { kind: "basic", request: r };
}

/** Encodes `Basic <base64>` for a client (tests and the bench play the client). */
export function encodeBasicCredentials(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
}
