/**
 * One HTTP/1.1 GET, spoken over a socket the caller connected (directly, or through a SOCKS5 proxy
 * with socks-client.ts), with TLS on top for `https:` (node:tls over that socket, verifying the
 * server's certificate for the URL's host). Reads `Content-Length`, chunked, or close-delimited
 * bodies, up to {@link MAX_BODY} bytes: a what-is-my-IP answer is a line.
 *
 * It does not follow redirects, reuse connections or decode compressed bodies (it asks for none).
 */
import { connect as netConnect, type Socket } from "node:net";
import { rootCertificates, connect as tlsConnect } from "node:tls";

/** The largest response (head and body) read, bytes. */
export const MAX_BODY = 64 * 1024;

/** The request failed; `stage` says where. */
export class HttpGetError extends Error {
  override name = "HttpGetError";
  constructor(
    readonly stage: "connect" | "tls" | "response",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A response. */
export interface HttpResponse {
  readonly status: number;
  readonly body: string;
}

/** Options for {@link httpGet}. */
export interface HttpGetOptions {
  /**
   * Opens the TCP connection to `host:port` (e.g. through the proxy). Default: a direct
   * connection with node:net.
   */
  open?: (host: string, port: number) => Promise<Socket>;
  /** Deadline for the whole exchange, ms. Default 10000. */
  timeoutMs?: number;
  /** Extra CA certificates (PEM) for https, besides the system's. Default none. */
  ca?: string[];
}

/** The port of a URL, with the scheme's default. */
export function urlPort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
}

/** GETs `url` (http or https). Throws {@link HttpGetError}. */
export async function httpGet(url: URL, opts: HttpGetOptions = {}): Promise<HttpResponse> {
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`httpGet: ${url.protocol} is not http: or https:`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = urlPort(url);
  const deadline = Date.now() + timeoutMs;
  const open = opts.open ?? directConnect(timeoutMs);
  let socket: Socket = await open(host, port);
  try {
    if (url.protocol === "https:") socket = await startTls(socket, host, opts.ca, deadline);
    const path = `${url.pathname || "/"}${url.search}`;
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: egressd-test\r\nAccept: text/plain\r\nConnection: close\r\n\r\n`);
    const raw = await readAll(socket, deadline);
    return parseResponse(raw);
  } finally {
    socket.destroy();
  }
}

function directConnect(timeoutMs: number) {
  return (host: string, port: number) =>
    new Promise<Socket>((resolve, reject) => {
      const s = netConnect({ host, port });
      const t = setTimeout(() => {
        s.destroy();
        reject(new HttpGetError("connect", `no connection to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(t);
        resolve(s);
      });
      s.once("error", (e) => {
        clearTimeout(t);
        reject(new HttpGetError("connect", `cannot connect to ${host}:${port}: ${e.message}`, { cause: e }));
      });
    });
}

function startTls(socket: Socket, host: string, ca: string[] | undefined, deadline: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const servername = /^[\d.]+$|:/.test(host) ? undefined : host;
    const tls = tlsConnect({ socket, servername, host, ca: ca && ca.length ? [...rootCertificates, ...ca] : undefined });
    const t = setTimeout(() => {
      tls.destroy();
      reject(new HttpGetError("tls", `no TLS handshake with ${host} in time`));
    }, Math.max(0, deadline - Date.now()));
    tls.once("secureConnect", () => {
      clearTimeout(t);
      resolve(tls);
    });
    tls.once("error", (e) => {
      clearTimeout(t);
      reject(new HttpGetError("tls", `TLS with ${host} failed: ${e.message}`, { cause: e }));
    });
    socket.resume();
  });
}

function readAll(socket: Socket, deadline: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const t = setTimeout(() => {
      socket.destroy();
      reject(new HttpGetError("response", "no complete response in time"));
    }, Math.max(0, deadline - Date.now()));
    socket.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        clearTimeout(t);
        socket.destroy();
        reject(new HttpGetError("response", `the response is over ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(c);
      // Stop at a complete Content-Length body, in case the server keeps the connection open.
      const all = Buffer.concat(chunks);
      if (complete(all)) {
        clearTimeout(t);
        resolve(all);
      }
    });
    socket.once("end", () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks));
    });
    socket.once("error", (e) => {
      clearTimeout(t);
      reject(new HttpGetError("response", `the connection failed: ${e.message}`, { cause: e }));
    });
    socket.resume();
  });
}

function complete(all: Buffer): boolean {
  const end = all.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(all.subarray(0, end).toString("latin1"));
  return m !== null && all.length - end - 4 >= Number(m[1]);
}

/** Parses a complete HTTP/1.x response. Pure; throws {@link HttpGetError}. */
export function parseResponse(raw: Buffer): HttpResponse {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) throw new HttpGetError("response", raw.length === 0 ? "the server closed without a response" : "the response has no end of headers");
  const head = raw.subarray(0, end).toString("latin1").split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? "");
  if (!status) throw new HttpGetError("response", `not an HTTP response: ${JSON.stringify((head[0] ?? "").slice(0, 60))}`);
  const headers = new Map(head.slice(1).map((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()] as const));
  let body = raw.subarray(end + 4);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) body = dechunk(body);
  else if (headers.has("content-length")) body = body.subarray(0, Number(headers.get("content-length")));
  return { status: Number(status[1]), body: body.toString("utf8") };
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = b.indexOf("\r\n", at);
    if (eol < 0) throw new HttpGetError("response", "a chunked body ends early");
    const size = parseInt(b.subarray(at, eol).toString("latin1"), 16);
    if (!Number.isFinite(size)) throw new HttpGetError("response", "a chunk size is not hexadecimal");
    if (size === 0) return Buffer.concat(out);
    out.push(b.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}
