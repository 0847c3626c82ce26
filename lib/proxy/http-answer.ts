/**
 * What the HTTP proxy answers when it refuses: the one place HTTP meets the core's
 * {@link FailureKind}s (as `socks5Reply` is for SOCKS5), the one-line reasons a person can read,
 * the Proxy-Authorization check, and the target a request names, shared by CONNECT (http-session.ts)
 * and forwarded requests (http-forward.ts).
 *
 * Does not parse or write sockets itself beyond the error response; the handler (http-session.ts)
 * and the forwarder (http-forward.ts) decide when to answer.
 */
import { Failure, type FailureKind } from "./errors.ts";
import { Status, type HeaderList } from "./http/wire.ts";
import { proxyCredentials } from "./http/basic-auth.ts";
import { encodeErrorResponse } from "./http/replies.ts";
import { parseIp } from "../net/ip.ts";
import { authenticated } from "./pin.ts";
import { printable, type ClientConn, type ProtocolCore, type Target } from "./protocol.ts";

/** A host from a request-target (an IP literal or a lower-case name) as the core takes it. */
export function httpTarget(host: string): Target {
  const ip = parseIp(host);
  return ip ? { type: "ip", ip } : { type: "domain", name: host };
}

/**
 * The status for a failure to connect: 403 for a policy refusal, 407 for credentials, 502 for a
 * target that refused or cannot be reached (RFC 9110 §15.6.3), 504 for a timeout (§15.6.5), 503
 * when the proxy itself is out of fds (§15.6.4: temporary, retry), 400 for a malformed request.
 */
export function httpStatus(kind: FailureKind): number {
  switch (kind) {
    case Failure.denied:
      return Status.forbidden;
    case Failure.authFailed:
      return Status.proxyAuthenticationRequired;
    case Failure.timeout:
      return Status.gatewayTimeout;
    case Failure.protocolError:
      return Status.badRequest;
    case Failure.localResource: // the proxy ran out of fds or buffers: not the destination's fault
      return Status.serviceUnavailable;
    case Failure.refused:
    case Failure.networkUnreachable:
    case Failure.hostUnreachable:
    case Failure.addressUnsupported:
    case Failure.general:
      return Status.badGateway;
  }
}

/** What {@link failureMessage} words a failure from. */
export interface FailureDetail {
  /** The core's reason, as logged. */
  readonly reason: string;
  /** The destination as requested (`host:port`), if known. */
  readonly target?: string | undefined;
}

/**
 * The one-line body for a failure: the core's log `reason` turned into a sentence that names the
 * destination and, for a policy refusal, the setting that would allow it.
 */
export function failureMessage(kind: FailureKind, detail: FailureDetail): string {
  const { reason, target } = detail;
  const where = target ? printable(target) : "the destination";
  switch (kind) {
    case Failure.denied: {
      // The core's text: "destination denied: <range name> (<address>)".
      const m = /^destination denied: ([a-z0-9-]+) \((.+)\)$/.exec(reason);
      if (m) {
        const range = m[1] === "own-address" ? "one of this gateway's own addresses" : `a ${m[1]} address`;
        return `destination ${m[2]} is ${range}; see proxy.allowDestinations`;
      }
      return `${where} is not allowed: ${reason}`;
    }
    case Failure.refused:
      return `${where} refused the connection (${reason})`;
    case Failure.timeout:
      return `${where} did not answer in time (${reason})`;
    case Failure.networkUnreachable:
    case Failure.hostUnreachable:
      return `${where} cannot be reached: ${reason}`;
    case Failure.authFailed:
      return `proxy authentication required: ${reason}`;
    case Failure.localResource:
      return `the proxy is short of resources, try again: ${reason}`;
    default:
      return `cannot connect to ${where}: ${reason}`;
  }
}

/** The error response for a core failure, ready to write. */
export function failureResponse(kind: FailureKind, detail: FailureDetail): Uint8Array {
  return encodeErrorResponse(httpStatus(kind), failureMessage(kind, detail));
}

/**
 * Checks a request's Proxy-Authorization against `core.auth`. Returns null when it may proceed
 * (setting `conn.user` and the user's pin, pin.ts), or the reason for the log after counting the failure; the caller answers
 * 407 and closes.
 */
export function checkProxyAuth(core: ProtocolCore, request: { readonly conn: ClientConn; readonly headers: HeaderList }): string | null {
  const { conn, headers } = request;
  const auth = core.auth;
  if (!auth) return null;
  const c = proxyCredentials(headers);
  const user = c.kind === "basic" ? auth.match(c.request) : null;
  if (user !== null) {
    authenticated(conn, user);
    return null;
  }
  core.stats.authFailures++;
  if (c.kind === "missing") return "no Proxy-Authorization";
  if (c.kind === "invalid") return c.why;
  if (core.log.debugEnabled) core.log.debug("proxy auth failed", { client: conn.client, user: printable(new TextDecoder().decode(c.request.username)) });
  return "bad username or password";
}
