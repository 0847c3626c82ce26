/**
 * A minimal SOCKS5 client (RFC 1928, RFC 1929 for username/password): opens a TCP connection to a
 * proxy and asks it to CONNECT to a host by name or address, then hands back the socket, so that
 * the caller speaks HTTP (or TLS) through it. The wire format is lib/proxy/socks5*.ts's.
 *
 * It does not do BIND, UDP ASSOCIATE or GSSAPI; `egressd test` needs only CONNECT.
 */
import { connect, type Socket } from "node:net";
import { parseIp } from "../net/ip.ts";
import {
  AuthMethod,
  AuthStatus,
  Command,
  NEED_MORE,
  type ParseResult,
  Reply,
  Socks5ProtocolError,
} from "../proxy/socks5.ts";
import {
  encodeAuthRequest,
  encodeGreeting,
  parseAuthReply,
  parseMethodSelection,
} from "../proxy/socks5-greeting.ts";
import { encodeRequest, parseReply } from "../proxy/socks5-request.ts";

/** Where the handshake failed. */
export type SocksStage = "connect" | "greeting" | "auth" | "request";

/** The proxy could not be used; `stage` says where, `reply` is the SOCKS reply code if one came. */
export class SocksClientError extends Error {
  override name = "SocksClientError";
  constructor(
    readonly stage: SocksStage,
    message: string,
    readonly reply: number | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Options for {@link socksConnect}. */
export interface SocksConnectOptions {
  /** RFC 1929 credentials; default none (method "no authentication"). */
  auth?: { username: string; password: string } | null;
  /** Deadline for the TCP connection and the whole handshake, ms. Default 10000. */
  timeoutMs?: number;
}

const REPLY_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Reply).map(([k, v]) => [v, k]));

/**
 * Connects to `proxy` and asks it to CONNECT to `target`. A host that is not an IP address is sent
 * as a domain name (ATYP 3): the proxy resolves it, as `socks5h://` does. Resolves to the socket,
 * ready for the target's protocol; throws {@link SocksClientError}.
 */
export async function socksConnect(proxy: { host: string; port: number }, target: { host: string; port: number }, opts: SocksConnectOptions = {}): Promise<Socket> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const socket = connect({ host: proxy.host, port: proxy.port });
  let stage: SocksStage = "connect";
  let buffered = new Uint8Array(0);
  let waiting: (() => void) | null = null;
  let failure: Error | null = null;
  const wake = () => {
    const w = waiting;
    waiting = null;
    w?.();
  };
  socket.on("data", (chunk: Buffer) => {
    const next = new Uint8Array(buffered.length + chunk.length);
    next.set(buffered);
    next.set(chunk, buffered.length);
    buffered = next;
    wake();
  });
  socket.on("error", (e) => {
    failure = e;
    wake();
  });
  socket.on("close", () => {
    failure ??= new Error("the proxy closed the connection");
    wake();
  });
  const timer = setTimeout(() => {
    failure = new Error(`no answer within ${timeoutMs} ms`);
    wake();
  }, timeoutMs);

  async function read<T>(parse: (b: Uint8Array) => ParseResult<T>): Promise<T> {
    for (;;) {
      const r = parse(buffered);
      if (r instanceof Socks5ProtocolError) throw new SocksClientError(stage, `the proxy's ${stage} reply is malformed: ${r.message}`, null, { cause: r });
      if (r !== NEED_MORE) {
        buffered = buffered.subarray(r.consumed);
        return r.value;
      }
      if (failure) throw new SocksClientError(stage, `${stage}: ${failure.message}`, null, { cause: failure });
      await new Promise<void>((resolve) => (waiting = resolve));
    }
  }

  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      socket.once("connect", () => {
        clearTimeout(t);
        resolve();
      });
      socket.once("error", (e) => {
        clearTimeout(t);
        reject(e);
      });
    }).catch((e: Error) => {
      throw new SocksClientError("connect", `cannot connect to the proxy ${proxy.host}:${proxy.port}: ${e.message}`, null, { cause: e });
    });
    stage = "greeting";
    const method = opts.auth ? AuthMethod.usernamePassword : AuthMethod.noAuth;
    socket.write(encodeGreeting([method]));
    const chosen = await read(parseMethodSelection);
    if (chosen !== method) {
      throw new SocksClientError("greeting", opts.auth ? "the proxy did not accept username/password authentication" : "the proxy requires authentication (configure proxy.auth, or pass it)");
    }
    if (opts.auth) {
      stage = "auth";
      socket.write(encodeAuthRequest(opts.auth.username, opts.auth.password));
      const status = await read(parseAuthReply);
      if (status !== AuthStatus.success) throw new SocksClientError("auth", `the proxy refused the username and password (status ${status})`);
    }
    stage = "request";
    const ip = parseIp(target.host.replace(/^\[(.*)\]$/, "$1"));
    socket.write(encodeRequest(Command.connect, ip ? { type: "ip", ip } : { type: "domain", name: target.host }, target.port));
    const reply = await read(parseReply);
    if (reply.reply !== Reply.succeeded) {
      throw new SocksClientError("request", `the proxy could not connect to ${target.host}:${target.port}: SOCKS5 reply ${reply.reply} (${REPLY_NAMES[reply.reply] ?? "unknown"})`, reply.reply);
    }
    // Hand the socket over paused, with any bytes of the target's that came with the reply.
    socket.pause();
    if (buffered.length > 0) socket.unshift(Buffer.from(buffered));
    socket.removeAllListeners("data");
    socket.removeAllListeners("close");
    socket.removeAllListeners("error");
    return socket;
  } catch (e) {
    socket.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
