/**
 * The proxy's error types, and the protocol-neutral failure kinds.
 *
 * OS errors arrive from `Bun.connect` with a Node-style `code` (`ECONNREFUSED`, ...). Nothing else
 * in lib/proxy inspects error codes: it asks {@link failureForError} for a {@link FailureKind},
 * derives the metrics result label with {@link resultForFailure}, and each protocol turns the kind
 * into its own reply (SOCKS5: `socks5Reply` in socks5-session.ts).
 */
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

/**
 * The outbound socket could not be created for want of a local resource. Bun reports socket(2)
 * failing with EMFILE as a refused connect; the dialer checks and replaces it with this error, so
 * that {@link failureForError} sees the real `code`.
 */
export class LocalResourceError extends Error {
  override name = "LocalResourceError";
  constructor(
    /** `EMFILE` or `ENFILE`. */
    readonly code: string,
    /** What was being dialed, `host:port`. */
    readonly target: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot open a socket to ${target}: ${code} (${code === "EMFILE" ? "the proxy is at its open-files limit" : "the system is out of file descriptors"})`, options);
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

/**
 * How a connection attempt failed, in terms every protocol can answer: SOCKS5 turns a kind into a
 * reply code, an HTTP proxy into a status line. Protocol modules map kinds to their replies in
 * exactly one function each; nothing else in lib/proxy looks at OS error codes.
 */
export const Failure = {
  /** The target actively refused (RST to our SYN). */
  refused: "refused",
  /** No route to the target's network. */
  networkUnreachable: "network_unreachable",
  /** The name did not resolve, or no route to the host. */
  hostUnreachable: "host_unreachable",
  /** No answer in time: our connect timeout, or the kernel's. */
  timeout: "timeout",
  /** The destination policy (or a local firewall) forbids the target. */
  denied: "denied",
  /** The client's credentials were wrong, or it offered no usable method. */
  authFailed: "auth_failed",
  /** The client broke its protocol: bad bytes, an unsupported request, a handshake timeout. */
  protocolError: "protocol_error",
  /** The OS cannot open a socket of the target's address family. */
  addressUnsupported: "address_unsupported",
  /**
   * The proxy itself ran out of something it needs for the outbound socket (file descriptors,
   * buffer space, memory): not the target's fault, and not worth retrying elsewhere at once.
   */
  localResource: "local_resource",
  /** Anything else (an unknown error). */
  general: "general",
} as const;

/** One of {@link Failure}. */
export type FailureKind = (typeof Failure)[keyof typeof Failure];

/** The Node-style string `code` of an error (`ECONNREFUSED`), or undefined. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Maps a failure to reach the target (a resolver or dialer error) to its {@link FailureKind}. The
 * single place that knows OS error codes; tested with a table.
 */
export function failureForError(err: unknown): FailureKind {
  if (err instanceof ResolveError) return Failure.hostUnreachable;
  switch (errorCode(err)) {
    case "ENOTFOUND": // resolver codes, for an injected resolver that rejects with a plain error
    case "ENODATA":
      return Failure.hostUnreachable;
    case "ECONNREFUSED":
    case "ECONNRESET": // a RST during the handshake, e.g. from a firewall "reject with tcp reset"
      return Failure.refused;
    case "ENETUNREACH":
    case "ENETDOWN":
      return Failure.networkUnreachable;
    case "EHOSTUNREACH":
    case "EHOSTDOWN":
      return Failure.hostUnreachable;
    case "ETIMEDOUT":
      return Failure.timeout;
    case "EACCES": // an "ip route prohibit" route, or a local firewall denying the packet
    case "EPERM":
      return Failure.denied;
    case "EAFNOSUPPORT":
    case "EPROTONOSUPPORT":
      return Failure.addressUnsupported;
    case "EMFILE": // this process is out of fds (Bun reports it as ECONNREFUSED; dial.ts tells them apart)
    case "ENFILE": // the system is
    case "ENOBUFS":
    case "ENOMEM":
      return Failure.localResource;
    default:
      return Failure.general;
  }
}

/** The metrics `result` label of a connection that ended with a failure of this kind. */
export function resultForFailure(kind: FailureKind): ConnectionResult {
  switch (kind) {
    case Failure.refused:
      return "refused";
    case Failure.timeout:
      return "timeout";
    case Failure.denied:
      return "denied_destination";
    case Failure.authFailed:
      return "auth_failed";
    case Failure.protocolError:
      return "protocol_error";
    case Failure.localResource:
      return "local_resource";
    case Failure.networkUnreachable:
    case Failure.hostUnreachable:
    case Failure.addressUnsupported:
    case Failure.general:
      return "unreachable";
  }
}
