/**
 * The proxy's error types, and the one place where an error becomes a SOCKS5 reply code.
 *
 * OS errors arrive from `Bun.connect` with a Node-style `code` (`ECONNREFUSED`, ...). Nothing else
 * in lib/proxy inspects error codes: it asks {@link replyForError}, and derives the metrics result
 * label from the reply with {@link resultForReply}.
 */
import { Reply, type ReplyCode } from "./socks5.ts";
import type { ConnectionResult } from "./stats.ts";

/** A listener could not be bound. `code` is the OS error (`EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`). */
export class ListenError extends Error {
  override name = "ListenError";
  constructor(
    /** The listen address as given, `host:port`. */
    readonly address: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(`cannot listen on ${address}: ${code ?? (options?.cause instanceof Error ? options.cause.message : "unknown error")}`, options);
  }
}

/** Options the proxy cannot run with. `field` names the offending option. */
export class ProxyConfigError extends Error {
  override name = "ProxyConfigError";
  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${message}`, options);
  }
}

/** A name did not resolve to any address. `code` is the resolver's (`ENOTFOUND`, `ETIMEOUT`, ...). */
export class ResolveError extends Error {
  override name = "ResolveError";
  constructor(
    readonly hostname: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot resolve ${hostname}: ${code}`, options);
  }
}

/** No connection attempt succeeded within `connectTimeoutMs`. */
export class ConnectTimeoutError extends Error {
  override name = "ConnectTimeoutError";
  readonly code = "ETIMEDOUT";
  constructor(
    /** What was being dialed, `host:port`. */
    readonly target: string,
    readonly timeoutMs: number,
  ) {
    super(`connect to ${target} timed out after ${timeoutMs} ms`);
  }
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/**
 * Maps a failure to reach the target to the reply sent to the client (RFC 1928 §6). The single
 * place that knows OS error codes; tested with a table.
 */
export function replyForError(err: unknown): ReplyCode {
  if (err instanceof ResolveError) return Reply.hostUnreachable;
  switch (errorCode(err)) {
    case "ENOTFOUND": // resolver codes, for an injected resolver that rejects with a plain error
    case "ENODATA":
      return Reply.hostUnreachable;
    case "ECONNREFUSED":
    case "ECONNRESET": // a RST during the handshake, e.g. from a firewall "reject with tcp reset"
      return Reply.connectionRefused;
    case "ENETUNREACH":
    case "ENETDOWN":
      return Reply.networkUnreachable;
    case "EHOSTUNREACH":
    case "EHOSTDOWN":
      return Reply.hostUnreachable;
    case "ETIMEDOUT":
      return Reply.ttlExpired;
    case "EACCES": // an "ip route prohibit" route, or a local firewall denying the packet
    case "EPERM":
      return Reply.notAllowed;
    case "EAFNOSUPPORT":
    case "EPROTONOSUPPORT":
      return Reply.addressTypeNotSupported;
    default:
      return Reply.generalFailure;
  }
}

/**
 * The metrics result label for a reply sent after the dial phase. Handshake-stage outcomes
 * (`denied_client`, `auth_failed`, `protocol_error`) are decided by the server directly.
 */
export function resultForReply(reply: number): ConnectionResult {
  switch (reply) {
    case Reply.succeeded:
      return "ok";
    case Reply.notAllowed:
      return "denied_destination";
    case Reply.connectionRefused:
      return "refused";
    case Reply.ttlExpired:
      return "timeout";
    case Reply.commandNotSupported:
      return "protocol_error";
    default:
      return "unreachable";
  }
}
