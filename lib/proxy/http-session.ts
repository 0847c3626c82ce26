/**
 * HTTP/1.1 proxying on one connection (RFC 9110 §9.3.6, §7.6; RFC 9112): the handler the listener
 * picks when the first byte is an upper-case letter, as every method starts with one.
 *
 *   request head (http/request.ts; bounded, under the handshake deadline) ─ 400/414/431/501/505
 *   Proxy-Authorization Basic, when proxy.auth is set ─────────────────── 407 + Proxy-Authenticate
 *   CONNECT host:port → core.connect(); connected() answers 200, then the shared relay
 *   absolute form (GET http://host/...) → the forwarder (http-forward.ts), request after request
 *   origin or asterisk form (a request for the proxy itself) ───────────── 400 naming what to send
 *
 * Does not resolve, check the policy, dial or relay (core.ts does, for every protocol), and does
 * not time the head out (server.ts does). Bytes after a CONNECT head are early data for the target.
 */
import type { IpAddr } from "../net/ip.ts";
import { concat } from "./bytes.ts";
import { Failure, type FailureKind } from "./errors.ts";
import { checkProxyAuth, failureResponse, httpTarget } from "./http-answer.ts";
import { HttpForwarder } from "./http-forward.ts";
import { encodeConnectEstablished, encodeErrorResponse } from "./http/replies.ts";
import { parseRequestHead } from "./http/request.ts";
import { HttpProtocolError, NEED_MORE, Status } from "./http/wire.ts";
import { formatTarget, Stage, type ClientConn, type ProtocolCore, type ProtocolHandler } from "./protocol.ts";

/** The message for a request in origin form: the client treats us as an origin server. */
export const NOT_A_PROXY_REQUEST = "this is a proxy: send CONNECT host:port, or an absolute URI such as GET http://host/path";

/** Builds the HTTP handler: the `ProtocolFactory` for `ProxyServerOptions.protocols`. */
export function httpProtocol(core: ProtocolCore): ProtocolHandler {
  return new HttpProtocol(core);
}

/** The HTTP {@link ProtocolHandler}; one per server. */
export class HttpProtocol implements ProtocolHandler {
  readonly name = "http";
  readonly #core: ProtocolCore;

  constructor(core: ProtocolCore) {
    this.#core = core;
  }

  /** A method is a token; every registered one starts with an upper-case letter (RFC 9110 §16.1). */
  claims(firstByte: number): boolean {
    return firstByte >= 0x41 && firstByte <= 0x5a;
  }

  data(conn: ClientConn, d: Uint8Array): void {
    const core = this.#core;
    const buf = conn.buf ? concat(conn.buf, d) : d;
    conn.buf = null;
    const r = parseRequestHead(buf);
    if (r === NEED_MORE) {
      conn.buf = buf.slice(); // bounded: the parser refuses a head over its limit
      return;
    }
    if (r instanceof HttpProtocolError) return this.#reject(conn, r.status, r.message);
    const head = r.value;
    const t = head.target;
    if (t.form === "origin" || t.form === "asterisk") return this.#reject(conn, Status.badRequest, NOT_A_PROXY_REQUEST);
    conn.label = t.form === "authority" ? "http_connect" : "http";
    conn.target = formatTarget(httpTarget(t.host), t.port);
    const denied = checkProxyAuth(core, { conn, headers: head.headers });
    if (denied !== null) {
      conn.socket.write(failureResponse(Failure.authFailed, { reason: denied, target: conn.target }));
      return core.fail(conn, Failure.authFailed, denied);
    }
    if (t.form === "authority") return core.connect(conn, httpTarget(t.host), t.port, buf.subarray(r.consumed));
    // Forwarding: the forwarder parses this head again (cheap) so that every request, the first
    // included, takes one path.
    const forwarder = new HttpForwarder(core, conn);
    conn.protocolData = forwarder; // for closed(): the destinations of every request
    core.adopt(conn, forwarder);
    forwarder.fromClient(buf);
  }

  connected(conn: ClientConn, _local: IpAddr | null, _localPort: number): void {
    conn.socket.write(encodeConnectEstablished());
  }

  failed(conn: ClientConn, kind: FailureKind, reason: string): void {
    conn.socket.write(failureResponse(kind, { reason, target: conn.target }));
  }

  /** A forwarding connection's line adds `requests` and, if they went to several, the `targets`. */
  closed(conn: ClientConn): Record<string, unknown> | undefined {
    return conn.protocolData instanceof HttpForwarder ? conn.protocolData.seen.fields() : undefined;
  }

  /** A request refused before the core saw it: its status, a reason, then close. */
  #reject(conn: ClientConn, status: number, reason: string): void {
    if (conn.stage !== Stage.handshake) return;
    conn.socket.write(encodeErrorResponse(status, reason));
    this.#core.fail(conn, Failure.protocolError, reason);
  }
}
