/**
 * SOCKS5 on one connection: the handshake state machine (RFC 1928 §3-§4, RFC 1929) and the
 * replies (§6), on top of the pure wire format in socks5.ts, socks5-greeting.ts and socks5-request.ts.
 *
 *   greeting (§3) ─ bad bytes, no acceptable method ─────────────────── protocol_error, auth_failed
 *   username/password (RFC 1929) ─ bad bytes, wrong credentials ──────── protocol_error, auth_failed
 *   request (§4) ─ bad address, not CONNECT ──────────────────────────── protocol_error
 *     ├─ CONNECT: core.connect(); its outcome comes back as connected() or failed(kind)
 *     └─ UDP ASSOCIATE (§7): socks5-associate.ts, where UDP is on for the listener
 *
 * Does not resolve, check the policy, dial or relay (core.ts does, for every protocol), and does
 * not time the handshake out (server.ts does). BIND, and UDP ASSOCIATE on a listener without UDP,
 * are refused with "command not supported".
 */
import type { IpAddr } from "../net/ip.ts";
import { concat } from "./bytes.ts";
import { Failure, type FailureKind } from "./errors.ts";
import { authenticated } from "./pin.ts";
import { UdpAssociator } from "./socks5-associate.ts";
import { formatTarget, printable, Stage, type ClientConn, type ProtocolCore, type ProtocolHandler } from "./protocol.ts";
import {
  AuthMethod,
  AuthStatus,
  Command,
  NEED_MORE,
  Reply,
  Socks5ProtocolError,
  Version,
  type ReplyCode,
} from "./socks5.ts";
import {
  encodeAuthReply,
  encodeMethodSelection,
  parseAuthRequest,
  parseGreeting,
} from "./socks5-greeting.ts";
import { encodeReply, parseRequest } from "./socks5-request.ts";

/** The two method selections a successful greeting gets, encoded once (a socket write copies them). */
const SELECT_NO_AUTH = encodeMethodSelection(AuthMethod.noAuth);
const SELECT_USERNAME_PASSWORD = encodeMethodSelection(AuthMethod.usernamePassword);

/** The sub-stages of a SOCKS5 handshake, kept in `ClientConn.step`. */
const Step = { greeting: 0, auth: 1, request: 2, associating: 3 } as const;

/**
 * The reply (RFC 1928 §6) for a failure to connect: the one place SOCKS5 meets
 * {@link FailureKind}. `auth_failed` never reaches a request reply (RFC 1929 answers it earlier)
 * and maps to "not allowed" for completeness.
 */
export function socks5Reply(kind: FailureKind): ReplyCode {
  switch (kind) {
    case Failure.refused:
      return Reply.connectionRefused;
    case Failure.networkUnreachable:
      return Reply.networkUnreachable;
    case Failure.hostUnreachable:
      return Reply.hostUnreachable;
    case Failure.timeout:
      return Reply.ttlExpired;
    case Failure.denied:
    case Failure.authFailed:
      return Reply.notAllowed;
    case Failure.addressUnsupported:
      return Reply.addressTypeNotSupported;
    case Failure.protocolError:
    case Failure.localResource:
    case Failure.general:
      return Reply.generalFailure;
  }
}

/** Builds the SOCKS5 handler: the `ProtocolFactory` for `ProxyServerOptions.protocols`. */
export function socks5Protocol(core: ProtocolCore): ProtocolHandler {
  return new Socks5Protocol(core);
}

/** The SOCKS5 {@link ProtocolHandler}; one per server. */
export class Socks5Protocol implements ProtocolHandler {
  readonly name = "socks5";
  readonly #core: ProtocolCore;
  readonly #udp: UdpAssociator;

  constructor(core: ProtocolCore) {
    this.#core = core;
    this.#udp = new UdpAssociator(core);
  }

  /** Every SOCKS5 greeting starts with the version byte, 5. */
  claims(firstByte: number): boolean {
    return firstByte === Version.socks5;
  }

  data(conn: ClientConn, d: Uint8Array): void {
    const core = this.#core;
    let buf = conn.buf ? concat(conn.buf, d) : d;
    conn.buf = null;
    while (buf.length > 0 && conn.stage === Stage.handshake) {
      switch (conn.step) {
        case Step.greeting: {
          const r = parseGreeting(buf);
          if (r === NEED_MORE) break;
          if (r instanceof Socks5ProtocolError) return core.fail(conn, Failure.protocolError, r.message);
          const auth = core.auth;
          const want = auth ? AuthMethod.usernamePassword : AuthMethod.noAuth;
          if (!r.value.methods.includes(want)) {
            conn.socket.write(encodeMethodSelection(AuthMethod.noAcceptable));
            const why = `no acceptable auth method (offered ${r.value.methods.join(",")})`;
            if (auth) core.stats.authFailures++;
            return core.fail(conn, auth ? Failure.authFailed : Failure.protocolError, why);
          }
          conn.socket.write(auth ? SELECT_USERNAME_PASSWORD : SELECT_NO_AUTH);
          conn.step = auth ? Step.auth : Step.request;
          buf = buf.subarray(r.consumed);
          continue;
        }
        case Step.auth: {
          const r = parseAuthRequest(buf);
          if (r === NEED_MORE) break;
          if (r instanceof Socks5ProtocolError) {
            conn.socket.write(encodeAuthReply(AuthStatus.failure));
            return core.fail(conn, Failure.protocolError, r.message);
          }
          const user = core.auth?.match(r.value);
          if (user === null) {
            core.stats.authFailures++;
            conn.socket.write(encodeAuthReply(AuthStatus.failure));
            if (core.log.debugEnabled) core.log.debug("proxy auth failed", { client: conn.client, user: printable(new TextDecoder().decode(r.value.username)) });
            return core.fail(conn, Failure.authFailed, "bad username or password");
          }
          if (user) authenticated(conn, user);
          conn.socket.write(encodeAuthReply(AuthStatus.success));
          conn.step = Step.request;
          buf = buf.subarray(r.consumed);
          continue;
        }
        case Step.request: {
          const r = parseRequest(buf);
          if (r === NEED_MORE) break;
          if (r instanceof Socks5ProtocolError) return this.#reject(conn, r.reply ?? Reply.generalFailure, r.message);
          const req = r.value;
          if (req.command === Command.udpAssociate && this.#udp.allowed(conn)) {
            conn.step = Step.associating;
            return this.#udp.open(conn, req.host, req.port);
          }
          if (req.command !== Command.connect) {
            conn.target = formatTarget(req.host, req.port);
            return this.#reject(conn, Reply.commandNotSupported, `command ${req.command} not supported`);
          }
          return core.connect(conn, req.host, req.port, buf.subarray(r.consumed));
        }
        case Step.associating:
          return; // the relay socket is being bound; the control connection carries nothing more
      }
      break; // NEED_MORE
    }
    if (buf.length > 0 && conn.stage === Stage.handshake) conn.buf = buf.slice();
  }

  /** RFC 1928 §6: BND.ADDR/BND.PORT are the address the server used to connect to the target. */
  connected(conn: ClientConn, local: IpAddr | null, localPort: number): void {
    conn.socket.write(encodeReply(Reply.succeeded, local ? { host: { type: "ip", ip: local }, port: localPort } : undefined));
  }

  failed(conn: ClientConn, kind: FailureKind): void {
    conn.socket.write(encodeReply(socks5Reply(kind)));
  }

  /** A UDP association ends with its control connection. */
  closed(conn: ClientConn): Record<string, unknown> | undefined {
    return this.#udp.closed(conn);
  }

  /** A request this protocol refuses itself, with its own reply code. */
  #reject(conn: ClientConn, reply: ReplyCode, reason: string): void {
    conn.socket.write(encodeReply(reply));
    this.#core.fail(conn, Failure.protocolError, reason);
  }
}
