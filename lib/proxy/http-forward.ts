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
 * says where each ends, and a peer that cannot take more pauses the other side's reading. Does not
 * cache, add Via, retry, or bound the wait between requests (TCP keepalive finds a dead client).
 */
import { concat } from "./bytes.ts";
import type { TargetLeg, TargetSocket } from "./dial.ts";
import { Failure, resultForFailure, type FailureKind } from "./errors.ts";
import { checkProxyAuth, failureResponse, httpTarget } from "./http-answer.ts";
import { bodyState, takeBody, type BodyState } from "./http/body.ts";
import { encodeForwardRequest, encodeForwardResponse, upgradeProtocols } from "./http/forward.ts";
import { encodeConnectEstablished, encodeErrorResponse } from "./http/replies.ts";
import { parseRequestHead, type RequestHead } from "./http/request.ts";
import { parseResponseHead } from "./http/response.ts";
import { HttpProtocolError, NEED_MORE, Status } from "./http/wire.ts";
import { formatTarget, type ClientConn, type ClientLeg, type DialHandle, type ProtocolCore } from "./protocol.ts";
import { countConnection, protocolStats, type ProtocolStats } from "./stats.ts";

/** Bytes queued toward one side before the other side's reading pauses. */
const HIGH_WATER = 64 * 1024;

/** One upstream connection, for one request: the `leg` of its socket. */
class Upstream implements TargetLeg {
  socket: TargetSocket | null = null;
  dial: DialHandle | null = null;
  /** Bytes for the upstream not yet written (before connect, or after a partial write). */
  pending: Uint8Array | null = null;
  constructor(readonly owner: HttpForwarder) {}
  fromTarget(d: Uint8Array): void {
    this.owner.upstreamData(this, d);
  }
  targetDrained(): void {
    this.owner.upstreamDrained(this);
  }
  targetEnded(): void {
    this.owner.upstreamEnded(this, undefined);
  }
  targetClosed(error: Error | undefined): void {
    this.owner.upstreamEnded(this, error);
  }
}

/** The exchange in progress: one request and its response. */
interface Exchange {
  readonly head: RequestHead;
  readonly up: Upstream;
  request: BodyState;
  /** Response bytes not yet parsed as a head. */
  responseBuf: Uint8Array | null;
  /** Null until the final (non-1xx) response head has been read. */
  response: BodyState | null;
  /** Some of the response has reached the client: an error can no longer be a status. */
  answered: boolean;
  /** Keep the client connection after this exchange. */
  keep: boolean;
}

/** The {@link ClientLeg} of a client connection doing forward proxying. */
export class HttpForwarder implements ClientLeg {
  bytesClientToTarget = 0;
  bytesTargetToClient = 0;
  readonly clock = null;
  readonly lastActivity = 0;
  /** Requests forwarded on this connection, for the log line. */
  requests = 0;

  readonly #core: ProtocolCore;
  readonly #conn: ClientConn;
  readonly #counters: ProtocolStats;
  /** Client bytes not yet handled: the next request head, body bytes, pipelined requests. */
  #inbuf: Uint8Array = new Uint8Array(0);
  #toClient: Uint8Array | null = null;
  #x: Exchange | null = null;
  #clientEof = false;
  #clientGone = false;
  #closing = false;
  #paused = false;
  /** Handed to the plain relay (upgrade, CONNECT): nothing here runs any more. */
  #switched = false;

  constructor(core: ProtocolCore, conn: ClientConn) {
    this.#core = core;
    this.#conn = conn;
    this.#counters = protocolStats(core.stats, "http");
  }

  fromClient(d: Uint8Array): void {
    if (this.#switched || this.#closing) return;
    this.#inbuf = this.#inbuf.length === 0 ? d : concat(this.#inbuf, d);
    this.#pump();
  }

  clientDrained(): void {
    const buf = this.#toClient;
    if (!buf || this.#switched) return;
    this.#toClient = null;
    this.#writeClient(buf);
    if (this.#toClient) return;
    if (this.#closing) return void this.#conn.socket.end();
    this.#x?.up.socket?.resume();
  }

  clientEnded(): void {
    this.#clientEof = true;
    const x = this.#x;
    // A FIN after a complete request still gets its response (RFC 9112 §9.6 lets a client half-close).
    if (x && x.request.kind === "done") return;
    if (x) x.up.socket?.terminate();
    this.#endClient();
  }

  clientClosed(error: Error | undefined): void {
    if (this.#clientGone) return;
    this.#clientGone = true;
    const conn = this.#conn;
    if (conn.result === null) {
      // Gone before any request got as far as an upstream: counted once, as SOCKS5 counts it.
      const dialing = this.#x?.up.dial != null;
      conn.reason ??= dialing ? "client closed while connecting" : error ? `client error: ${error.message}` : "client closed before a complete request";
      conn.result = dialing ? "timeout" : "protocol_error";
      countConnection(this.#core.stats, conn.label, conn.result);
    }
    this.#dropUpstream();
    this.#conn.relayClosed(this, error);
  }

  abort(): void {
    this.#dropUpstream();
    if (!this.#clientGone) this.#conn.socket.terminate();
  }

  /** @internal Bytes from the current request's upstream. */
  upstreamData(up: Upstream, d: Uint8Array): void {
    const x = this.#x;
    if (!x || x.up !== up || this.#switched) return;
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
        this.#sendClient(encodeForwardResponse(head));
        continue;
      }
      if (head.body.kind === "tunnel") {
        if (upgradeProtocols(x.head.headers).length === 0) return this.#upstreamFailed(x, "upstream switched protocols unasked");
        this.#sendClient(encodeForwardResponse(head));
        return this.#switch(up, buf);
      }
      x.keep = x.keep && head.body.kind !== "close";
      this.#sendClient(encodeForwardResponse(head, { close: !x.keep, keepAlive: x.keep && x.head.version.minor === 0 }));
      x.answered = true;
      x.response = bodyState(head.body, "response");
    }
    const taken = takeBody(x.response, buf);
    if (taken instanceof HttpProtocolError) return this.#upstreamFailed(x, `bad response body: ${taken.message}`);
    x.response = taken[2];
    if (taken[0].length > 0) this.#sendClient(taken[0]);
    if (x.response.kind === "done") this.#responseDone(x);
  }

  /** @internal The upstream can take more. */
  upstreamDrained(up: Upstream): void {
    if (this.#x?.up !== up) return;
    this.#flushUpstream(up);
    if (!up.pending && this.#paused && !this.#closing) {
      this.#paused = false;
      this.#conn.socket.resume();
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
      if (body.length > 0) this.#sendUpstream(x.up, body);
      if ((x.up.pending?.length ?? 0) >= HIGH_WATER) return this.#pauseClient();
      if (x.request.kind !== "done") return;
      break;
    }
    // Pipelined requests wait in #inbuf while a response is under way; do not read without bound.
    if (this.#inbuf.length >= HIGH_WATER) this.#pauseClient();
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
    this.requests++;
    const up = new Upstream(this);
    const x: Exchange = { head, up, request: bodyState(head.body, "request"), responseBuf: null, response: null, answered: false, keep: head.persistent && !this.#clientEof };
    this.#x = x;
    if (t.form === "authority") {
      x.request = { kind: "done" };
      x.keep = false;
    } else {
      up.pending = encodeForwardRequest(head, { close: true });
    }
    up.dial = core.dial(conn, target, t.port, {
      onConnected: (socket) => {
        up.dial = null;
        if (this.#x !== x) return void socket.terminate();
        up.socket = socket;
        socket.data.leg = up;
        if (t.form === "authority") {
          this.#sendClient(encodeConnectEstablished());
          return this.#switch(up, new Uint8Array(0));
        }
        this.#flushUpstream(up);
      },
      onFailed: (kind, reason) => {
        up.dial = null;
        if (this.#x !== x) return;
        this.#failExchange(kind, reason, shown);
      },
    });
  }

  #switch(up: Upstream, toClient: Uint8Array): void {
    const socket = up.socket!;
    this.#switched = true;
    this.#x = null;
    const toTarget = up.pending ? concat(up.pending, this.#inbuf) : this.#inbuf;
    up.pending = null;
    this.#inbuf = new Uint8Array(0);
    // Anything still queued for the client goes first, through the relay's own backpressure.
    const queued = this.#toClient;
    this.#toClient = null;
    this.#core.relay(this.#conn, socket, { toTarget, toClient: queued ? concat(queued, toClient) : toClient });
    if (this.#paused) this.#conn.socket.resume();
  }

  #sendRaw(socket: TargetSocket, up: Upstream): void {
    const buf = up.pending!;
    up.pending = null;
    const n = socket.write(buf);
    if (n > 0) this.#count(n, 0);
    if (n >= 0 && n < buf.length) up.pending = buf.subarray(n); // n < 0: closing; its close event follows
  }

  #responseDone(x: Exchange): void {
    this.#x = null;
    const up = x.up;
    up.socket?.end(); // we asked for close; fires close at once, which is ignored now
    up.socket = null;
    if (!x.keep || x.request.kind !== "done" || this.#clientEof) return this.#endClient();
    if (this.#paused && !this.#toClient) {
      this.#paused = false;
      this.#conn.socket.resume();
    }
    this.#pump();
  }

  /** The upstream broke: a status if the client has seen nothing of the response, else a reset. */
  #upstreamFailed(x: Exchange, reason: string): void {
    this.#conn.reason ??= reason;
    if (!x.answered) return this.#failExchange(Failure.general, reason, undefined);
    this.#x = null;
    this.#dropUpstreamOf(x);
    this.#conn.socket.terminate(); // a truncated body must not look complete
  }

  /** A request that could not be forwarded: the status for `kind`, then close. */
  #failExchange(kind: FailureKind, reason: string, target: string | undefined): void {
    const x = this.#x;
    this.#closing = true;
    if (x) this.#dropUpstreamOf(x);
    this.#x = null;
    const body = kind === Failure.general && target === undefined ? encodeErrorResponse(Status.badGateway, `bad gateway: ${reason}`) : failureResponse(kind, { reason, target });
    this.#finalAnswer(body, kind, reason);
  }

  /** A malformed request: its status, then close. */
  #refuse(status: number, reason: string, kind: FailureKind): void {
    this.#closing = true;
    if (this.#x) this.#dropUpstreamOf(this.#x);
    this.#x = null;
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
    this.#sendClient(response);
    this.#endClient();
  }

  #endClient(): void {
    this.#closing = true;
    if (this.#clientGone) return;
    if (!this.#toClient) this.#conn.socket.end();
  }

  #dropUpstream(): void {
    const x = this.#x;
    this.#x = null;
    if (x) this.#dropUpstreamOf(x);
  }

  #dropUpstreamOf(x: Exchange): void {
    x.up.dial?.cancel();
    x.up.dial = null;
    const s = x.up.socket;
    x.up.socket = null;
    s?.terminate();
  }

  #pauseClient(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#conn.socket.pause();
  }

  #sendUpstream(up: Upstream, d: Uint8Array): void {
    up.pending = up.pending ? concat(up.pending, d) : d;
    if (up.socket) this.#flushUpstream(up);
  }

  #flushUpstream(up: Upstream): void {
    if (!up.socket || !up.pending) return;
    this.#sendRaw(up.socket, up);
  }

  #sendClient(d: Uint8Array): void {
    this.#count(0, d.length);
    if (this.#toClient) {
      this.#toClient = concat(this.#toClient, d);
      return;
    }
    this.#writeClient(d);
  }

  #writeClient(d: Uint8Array): void {
    if (this.#clientGone) return;
    const n = this.#conn.socket.write(d);
    if (n === d.length || n < 0) return;
    this.#toClient = d.subarray(n);
    this.#x?.up.socket?.pause();
  }

  #count(up: number, down: number): void {
    this.bytesClientToTarget += up;
    this.bytesTargetToClient += down;
    this.#counters.bytesClientToTarget += up;
    this.#counters.bytesTargetToClient += down;
    this.#core.stats.bytesClientToTarget += up;
    this.#core.stats.bytesTargetToClient += down;
  }
}
