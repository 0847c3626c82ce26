/**
 * HTTP forward proxying on one client connection (RFC 9110 §7.6, RFC 9112 §9): absolute-form
 * requests, one after another (pipelined or not), each forwarded in origin form to its own host.
 *
 *   client ── GET http://a/x ──▶ parse head ─▶ core.dial(a) ─▶ head (origin form, hop-by-hop
 *                                 removed, Connection: close) + body ─▶ upstream a
 *          ◀── response ──────── parse head, body framed by Content-Length / chunked / close ◀─┘
 *   then the next request, to whichever host it names, on a fresh upstream connection.
 *
 * Every request gets its own upstream connection, opened by the core under the same policy, DNS
 * mode and dial as a SOCKS5 CONNECT, and closed when its response ends: a request can never reach
 * a connection opened for another authority, and no upstream is left idle. The client connection
 * is kept alive between requests unless it asked for `close` or a response is close-delimited.
 * `Upgrade` (websocket) becomes the plain relay after 101; a CONNECT after forwarded requests
 * becomes the relay after 200.
 *
 * Bodies are streamed, never buffered whole: the framing (`http/framing.ts`, `http/chunked.ts`)
 * says where each ends, and a peer that cannot take more pauses the other side's reading (the byte
 * paths: http-pipe.ts). Each request's state and log line live in http-exchange.ts.
 *
 * Between requests the client connection holds no upstream socket, only its own. It is kept as
 * long as the client keeps it, as a tunnel is: proxy.idleTimeout (default 0, never) applies to it
 * as to a relay, counting a byte either way as activity, and TCP keepalive finds a dead client;
 * maxConnections bounds how many are held. Does not cache, add Via, or retry.
 */
import { formatHostPort, formatIp } from "../net/ip.ts";
import { concat } from "./bytes.ts";
import { Failure, resultForFailure, type FailureKind } from "./errors.ts";
import { checkProxyAuth, failureResponse, httpStatus, httpTarget } from "./http-answer.ts";
import { logExchange, TargetsSeen, Upstream, type Exchange, type ExchangeEnd, type UpstreamOwner } from "./http-exchange.ts";
import { ForwardPipe, HIGH_WATER } from "./http-pipe.ts";
import { bodyState, takeBody } from "./http/body.ts";
import { encodeForwardRequest, encodeForwardResponse, upgradeProtocols } from "./http/forward.ts";
import { encodeConnectEstablished, encodeErrorResponse } from "./http/replies.ts";
import { parseRequestHead, type RequestHead } from "./http/request.ts";
import { parseResponseHead } from "./http/response.ts";
import { HttpProtocolError, NEED_MORE, Status } from "./http/wire.ts";
import { formatTarget, type ClientConn, type ClientLeg, type ProtocolCore } from "./protocol.ts";
import { countConnection } from "./stats.ts";

/** The {@link ClientLeg} of a client connection doing forward proxying. */
export class HttpForwarder implements ClientLeg, UpstreamOwner {
  /** Set when proxy.idleTimeout is on (read at adoption, as a relay reads it at its start). */
  readonly clock: (() => number) | null;
  lastActivity = 0;
  /** Every destination this connection's requests named, for its log line. */
  readonly seen = new TargetsSeen();

  readonly #core: ProtocolCore;
  readonly #conn: ClientConn;
  readonly #pipe: ForwardPipe;
  /** Client bytes not yet handled: the next request head, body bytes, pipelined requests. */
  #inbuf: Uint8Array = new Uint8Array(0);
  #x: Exchange | null = null;
  #clientEof = false;
  #closing = false;
  /** Handed to the plain relay (upgrade, CONNECT): nothing here runs any more. */
  #switched = false;

  constructor(core: ProtocolCore, conn: ClientConn) {
    this.#core = core;
    this.#conn = conn;
    this.#pipe = new ForwardPipe(core, { conn, current: () => this.#x?.up ?? null });
    this.clock = core.idleTimeoutMs > 0 ? core.clock : null;
    if (this.clock) this.lastActivity = this.clock();
  }

  get bytesClientToTarget(): number {
    return this.#pipe.bytesClientToTarget;
  }

  get bytesTargetToClient(): number {
    return this.#pipe.bytesTargetToClient;
  }

  fromClient(d: Uint8Array): void {
    if (this.#switched || this.#closing) return;
    if (this.clock) this.lastActivity = this.clock();
    this.#inbuf = this.#inbuf.length === 0 ? d : concat(this.#inbuf, d);
    this.#pump();
  }

  clientDrained(): void {
    if (this.#switched || !this.#pipe.drainClient()) return;
    if (this.#closing) return void this.#conn.socket.end();
    this.#x?.up.socket?.resume();
  }

  clientEnded(): void {
    this.#clientEof = true;
    const x = this.#x;
    // A FIN after a complete request still gets its response (RFC 9112 §9.6 lets a client half-close).
    if (x && x.request.kind === "done") return;
    if (x) return this.#refuse(Status.badRequest, "the client closed before its request body was complete", Failure.protocolError);
    this.#endClient();
  }

  clientClosed(error: Error | undefined): void {
    if (this.#pipe.clientGone) return;
    this.#pipe.clientGone = true;
    const conn = this.#conn;
    if (conn.result === null) {
      // Gone before any request got as far as an upstream: counted once, as SOCKS5 counts it.
      const dialing = this.#x?.up.dial != null;
      conn.reason ??= dialing ? "client closed while connecting" : error ? `client error: ${error.message}` : "client closed before a complete request";
      conn.result = dialing ? "timeout" : "protocol_error";
      countConnection(this.#core.stats, conn.label, conn.result);
    }
    const x = this.#x;
    if (x) {
      const why = x.up.dial ? "client closed while connecting" : error ? `client error: ${error.message}` : "client closed before the response was complete";
      this.#endExchange(x, { reason: why });
    }
    this.#conn.relayClosed(this, error);
  }

  abort(): void {
    const x = this.#x;
    if (x) this.#endExchange(x, { reason: this.#conn.reason ?? "aborted" });
    if (!this.#pipe.clientGone) this.#conn.socket.terminate();
  }

  /** @internal Bytes from the current request's upstream. */
  upstreamData(up: Upstream, d: Uint8Array): void {
    const x = this.#x;
    if (!x || x.up !== up || this.#switched) return;
    if (this.clock) this.lastActivity = this.clock();
    let buf = x.responseBuf ? concat(x.responseBuf, d) : d;
    x.responseBuf = null;
    while (x.response === null) {
      const r = parseResponseHead(buf, { requestMethod: x.head.method });
      if (r === NEED_MORE) {
        x.responseBuf = buf.slice();
        return;
      }
      if (r instanceof HttpProtocolError) return this.#upstreamFailed(x, `bad response from upstream: ${r.message}`);
      const head = r.value;
      buf = buf.subarray(r.consumed);
      if (head.interim) {
        this.#pipe.sendClient(encodeForwardResponse(head));
        continue;
      }
      if (head.body.kind === "tunnel") {
        if (upgradeProtocols(x.head.headers).length === 0) return this.#upstreamFailed(x, "upstream switched protocols unasked");
        x.status = head.status;
        this.#pipe.sendClient(encodeForwardResponse(head));
        return this.#switch(x, buf);
      }
      x.status = head.status;
      x.keep = x.keep && head.body.kind !== "close";
      this.#pipe.sendClient(encodeForwardResponse(head, { close: !x.keep, keepAlive: x.keep && x.head.version.minor === 0 }));
      x.answered = true;
      x.response = bodyState(head.body, "response");
    }
    const taken = takeBody(x.response, buf);
    if (taken instanceof HttpProtocolError) return this.#upstreamFailed(x, `bad response body: ${taken.message}`);
    x.response = taken[2];
    if (taken[0].length > 0) this.#pipe.sendClient(taken[0]);
    if (x.response.kind === "done") this.#responseDone(x);
  }

  /** @internal The upstream can take more. */
  upstreamDrained(up: Upstream): void {
    if (this.#x?.up !== up) return;
    this.#pipe.flushUpstream(up);
    if (!up.pending && this.#pipe.paused && !this.#closing) {
      this.#pipe.resumeClient();
      this.#pump();
    }
  }

  /** @internal The upstream sent a FIN or closed; `error` when it was reset. */
  upstreamEnded(up: Upstream, error: Error | undefined): void {
    const x = this.#x;
    if (!x || x.up !== up || this.#switched) return;
    if (x.response?.kind === "close" && !error) return this.#responseDone(x);
    this.#upstreamFailed(x, error ? `upstream reset: ${error.message}` : "upstream closed before the response was complete");
  }

  /** Handles what the client has sent: the next request head, then its body. */
  #pump(): void {
    while (!this.#closing && !this.#switched) {
      if (!this.#x) {
        if (this.#inbuf.length === 0) return;
        const r = parseRequestHead(this.#inbuf);
        if (r === NEED_MORE) return; // bounded: the parser refuses a head over its limit
        if (r instanceof HttpProtocolError) return this.#refuse(r.status, r.message, Failure.protocolError);
        this.#inbuf = this.#inbuf.subarray(r.consumed);
        this.#start(r.value);
      }
      const x = this.#x;
      if (!x || this.#closing) return; // refused, or the dial failed at once
      if (x.request.kind === "done") break; // wait for the response; later bytes are the next request
      const taken = takeBody(x.request, this.#inbuf);
      if (taken instanceof HttpProtocolError) return this.#refuse(taken.status, `bad request body: ${taken.message}`, Failure.protocolError);
      const [body, rest, next] = taken;
      this.#inbuf = rest;
      x.request = next;
      if (body.length > 0) this.#pipe.sendUpstream(x.up, body);
      if ((x.up.pending?.length ?? 0) >= HIGH_WATER) return this.#pipe.pauseClient();
      if (x.request.kind !== "done") return;
      break;
    }
    // Pipelined requests wait in #inbuf while a response is under way; do not read without bound.
    if (this.#inbuf.length >= HIGH_WATER) this.#pipe.pauseClient();
  }

  /** Starts forwarding one request; `#x` is null afterwards if it was refused. */
  #start(head: RequestHead): void {
    const core = this.#core;
    const conn = this.#conn;
    const t = head.target;
    if (t.form === "origin" || t.form === "asterisk") {
      return this.#refuse(Status.badRequest, "this is a proxy: send an absolute URI such as GET http://host/path", Failure.protocolError);
    }
    const target = httpTarget(t.host);
    const shown = formatTarget(target, t.port);
    const denied = checkProxyAuth(core, { conn, headers: head.headers });
    if (denied !== null) {
      this.#closing = true;
      return this.#finalAnswer(failureResponse(Failure.authFailed, { reason: denied, target: shown }), Failure.authFailed, denied);
    }
    conn.target ??= shown;
    this.seen.add(shown);
    const up = new Upstream(this);
    const x: Exchange = {
      head,
      target: shown,
      up,
      startedAt: core.clock(),
      request: bodyState(head.body, "request"),
      responseBuf: null,
      response: null,
      status: null,
      answered: false,
      keep: head.persistent && !this.#clientEof,
      logged: false,
    };
    this.#x = x;
    if (t.form === "authority") {
      x.request = { kind: "done" };
      x.keep = false;
    } else {
      up.pending = encodeForwardRequest(head, { close: true });
    }
    up.dial = core.dial(conn, target, t.port, {
      onConnected: (socket, address) => {
        up.dial = null;
        if (this.#x !== x) return void socket.terminate();
        up.socket = socket;
        up.address = formatHostPort({ host: formatIp(address), port: t.port });
        socket.data.leg = up;
        if (t.form === "authority") {
          x.status = Status.ok;
          this.#pipe.sendClient(encodeConnectEstablished());
          return this.#switch(x, new Uint8Array(0));
        }
        this.#pipe.flushUpstream(up);
      },
      onFailed: (kind, reason) => {
        up.dial = null;
        if (this.#x !== x) return;
        this.#failExchange(x, { kind, reason, target: shown });
      },
    });
  }

  /** Hands the connection to the plain relay (after 101, or 200 for CONNECT); the request's line is logged now. */
  #switch(x: Exchange, toClient: Uint8Array): void {
    const up = x.up;
    const socket = up.socket!;
    this.#switched = true;
    this.#x = null;
    logExchange(this.#core, this.#conn, x, {});
    const toTarget = up.pending ? concat(up.pending, this.#inbuf) : this.#inbuf;
    up.pending = null;
    this.#inbuf = new Uint8Array(0);
    // Anything still queued for the client goes first, through the relay's own backpressure.
    const queued = this.#pipe.takeClientBacklog();
    this.#core.relay(this.#conn, socket, { toTarget, toClient: queued ? concat(queued, toClient) : toClient });
    this.#pipe.resumeClient();
  }

  #responseDone(x: Exchange): void {
    this.#x = null;
    logExchange(this.#core, this.#conn, x, {});
    const up = x.up;
    up.socket?.end(); // we asked for close; fires close at once, which is ignored now
    up.socket = null;
    if (!x.keep || x.request.kind !== "done" || this.#clientEof) return this.#endClient();
    if (!this.#pipe.clientBacklogged) this.#pipe.resumeClient();
    this.#pump();
  }

  /** The upstream broke: a status if the client has seen nothing of the response, else a reset. */
  #upstreamFailed(x: Exchange, reason: string): void {
    this.#conn.reason ??= reason;
    if (!x.answered) return this.#failExchange(x, { kind: Failure.general, reason, target: undefined });
    this.#endExchange(x, { reason });
    this.#conn.socket.terminate(); // a truncated body must not look complete
  }

  /**
   * A request that could not be forwarded: the status for `kind`, then close. Without a `target`
   * the upstream was reached and broke (502 "bad gateway"); with one, the dial failed.
   */
  #failExchange(x: Exchange, failure: { kind: FailureKind; reason: string; target: string | undefined }): void {
    const { kind, reason, target } = failure;
    this.#closing = true;
    x.status = httpStatus(kind);
    this.#endExchange(x, { ...(target === undefined ? {} : { result: resultForFailure(kind) }), reason });
    const body = target === undefined ? encodeErrorResponse(Status.badGateway, `bad gateway: ${reason}`) : failureResponse(kind, { reason, target });
    this.#finalAnswer(body, kind, reason);
  }

  /** A malformed request: its status, then close. */
  #refuse(status: number, reason: string, kind: FailureKind): void {
    this.#closing = true;
    const x = this.#x;
    if (x) {
      x.status = status;
      this.#endExchange(x, { result: resultForFailure(kind), reason });
    }
    this.#finalAnswer(encodeErrorResponse(status, reason), kind, reason);
  }

  #finalAnswer(response: Uint8Array, kind: FailureKind, reason: string): void {
    const conn = this.#conn;
    conn.reason ??= reason;
    if (conn.result === null) {
      // No dial was made (a bad first request, no credentials): the connection's result is this.
      conn.result = resultForFailure(kind);
      countConnection(this.#core.stats, conn.label, conn.result);
    }
    this.#pipe.sendClient(response);
    this.#endClient();
  }

  #endClient(): void {
    this.#closing = true;
    if (this.#pipe.clientGone) return;
    if (!this.#pipe.clientBacklogged) this.#conn.socket.end();
  }

  /** Ends `x` before its response is complete: its line is logged, its upstream reset. */
  #endExchange(x: Exchange, end: ExchangeEnd): void {
    if (this.#x === x) this.#x = null;
    logExchange(this.#core, this.#conn, x, end);
    x.up.dial?.cancel();
    x.up.dial = null;
    const s = x.up.socket;
    x.up.socket = null;
    s?.terminate();
  }
}
