/**
 * A lean SOCKS5 (and HTTP CONNECT) client for the benchmark, on Bun's native sockets: one connection object whose
 * data and drain callbacks can be swapped after the handshake. Not pipelined (greeting, then
 * request), because microsocks 1.0.3 reads each handshake step with its own recv().
 */
import { parseIp } from "../lib/net/ip.ts";
import { concat } from "../lib/proxy/bytes.ts";
import { AuthMethod, Command, NEED_MORE, Reply } from "../lib/proxy/socks5.ts";
import { encodeGreeting } from "../lib/proxy/socks5-greeting.ts";
import { encodeRequest, parseReply } from "../lib/proxy/socks5-request.ts";

/** An established connection (proxied or direct). */
export class Conn {
  onData: (d: Uint8Array) => void = () => {};
  onDrain: () => void = () => {};
  onEnd: () => void = () => {};
  readonly closed: Promise<void>;
  #closed!: () => void;
  socket!: Bun.Socket<Conn>;
  constructor() {
    this.closed = new Promise((r) => (this.#closed = r));
  }
  /** @internal */
  gone(): void {
    this.#closed();
  }
}

const handlers: Bun.SocketHandler<Conn> = {
  data(s, d) {
    s.data.onData(d);
  },
  drain(s) {
    s.data.onDrain();
  },
  end(s) {
    s.data.onEnd();
    s.end();
  },
  close(s) {
    s.data.gone();
  },
};

/** Connects straight to `port` on 127.0.0.1. */
export async function direct(port: number): Promise<Conn> {
  const conn = new Conn();
  conn.socket = await Bun.connect({ hostname: "127.0.0.1", port, data: conn, socket: handlers });
  conn.socket.setNoDelay(true);
  return conn;
}

/** Resolves once something accepts connections on 127.0.0.1:`port`; throws after about 5 s. */
export async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      (await direct(port)).socket.end();
      return;
    } catch {
      await Bun.sleep(25);
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

const GREETING = encodeGreeting([AuthMethod.noAuth]);
const LOOPBACK = { type: "ip" as const, ip: parseIp("127.0.0.1")! };

/** Connects to `targetPort` on 127.0.0.1 through the SOCKS5 proxy on `proxyPort`. */
export async function viaSocks(proxyPort: number, targetPort: number): Promise<Conn> {
  const conn = await direct(proxyPort);
  const request = encodeRequest(Command.connect, LOOPBACK, targetPort);
  await new Promise<void>((resolve, reject) => {
    let buf: Uint8Array = new Uint8Array(0);
    let stage = 0;
    conn.onEnd = () => reject(new Error("proxy closed during the handshake"));
    conn.onData = (d) => {
      buf = concat(buf, d);
      if (stage === 0) {
        if (buf.length < 2) return;
        if (buf[1] !== AuthMethod.noAuth) return reject(new Error(`method ${buf[1]}`));
        buf = buf.subarray(2);
        stage = 1;
        conn.socket.write(request);
      }
      const r = parseReply(buf);
      if (r === NEED_MORE) return;
      if (r instanceof Error) return reject(r);
      if (r.value.reply !== Reply.succeeded) return reject(new Error(`reply ${r.value.reply}`));
      if (r.consumed !== buf.length) return reject(new Error("unexpected bytes after the reply"));
      resolve();
    };
    conn.socket.write(GREETING);
  });
  conn.onData = () => {};
  conn.onEnd = () => {};
  return conn;
}

const CONNECT_OK = new TextEncoder().encode("HTTP/1.1 200");

/** Connects to `targetPort` on 127.0.0.1 through an HTTP proxy's CONNECT on `proxyPort`. */
export async function viaHttpConnect(proxyPort: number, targetPort: number): Promise<Conn> {
  const conn = await direct(proxyPort);
  const request = new TextEncoder().encode(`CONNECT 127.0.0.1:${targetPort} HTTP/1.1\r\nHost: 127.0.0.1:${targetPort}\r\n\r\n`);
  await new Promise<void>((resolve, reject) => {
    let buf: Uint8Array = new Uint8Array(0);
    conn.onEnd = () => reject(new Error("proxy closed during the handshake"));
    conn.onData = (d) => {
      buf = concat(buf, d);
      const text = new TextDecoder().decode(buf);
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      if (!CONNECT_OK.every((c, i) => buf[i] === c)) return reject(new Error(`CONNECT: ${text.slice(0, text.indexOf("\r\n"))}`));
      if (end + 4 !== buf.length) return reject(new Error("unexpected bytes after the CONNECT response"));
      resolve();
    };
    conn.socket.write(request);
  });
  conn.onData = () => {};
  conn.onEnd = () => {};
  return conn;
}
