/**
 * The control socket: line-delimited JSON over a Unix stream socket (default
 * `/run/egressd/control.sock`, mode 0660).
 *
 *   request:  {"id": 1, "cmd": "status"}\n
 *   response: {"id": 1, "ok": true, "result": {...}}\n   or   {"id": 1, "ok": false, "error": "..."}\n
 *
 * Commands are whatever handlers the daemon registers (status, reload, reconcile, stop). Access
 * control is the file mode: the owner (the daemon's user) and its group. It does not authenticate
 * peers beyond that.
 */
import { chmodSync, existsSync, lstatSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { type Logger, silentLogger } from "../log/logger.ts";

/** Longest request line accepted; a longer one closes the connection. */
export const MAX_LINE = 64 * 1024;

/** A command handler; gets the whole request object, and its result is sent back as `result`. */
export type ControlHandler = (request: Record<string, unknown>) => Promise<unknown> | unknown;

/** The control socket could not be set up. */
export class ControlSocketError extends Error {
  override name = "ControlSocketError";
  readonly path: string;
  constructor(message: string, path: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.path = path;
  }
}

/** Options for {@link ControlServer}. */
export interface ControlServerOptions {
  /** File mode of the socket. Default 0o660. */
  mode?: number;
  log?: Logger;
}

/** Is something accepting connections on `path`? */
function probe(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Serves the control protocol on a Unix socket. */
export class ControlServer {
  readonly #path: string;
  readonly #handlers: Map<string, ControlHandler>;
  readonly #mode: number;
  readonly #log: Logger;
  #server: Server | null = null;
  readonly #clients = new Set<Socket>();

  constructor(path: string, handlers: Record<string, ControlHandler>, opts: ControlServerOptions = {}) {
    this.#path = path;
    this.#handlers = new Map(Object.entries(handlers));
    this.#mode = opts.mode ?? 0o660;
    this.#log = opts.log ?? silentLogger;
  }

  /** The socket path. */
  get path(): string {
    return this.#path;
  }

  /**
   * Binds the socket. A stale socket file left by a crash is removed; a live one (another egressd)
   * is an error, as is a non-socket file at the path.
   */
  async start(): Promise<void> {
    if (existsSync(this.#path)) {
      if (!lstatSync(this.#path).isSocket()) {
        throw new ControlSocketError(`${this.#path} exists and is not a socket; refusing to replace it`, this.#path);
      }
      if (await probe(this.#path)) {
        throw new ControlSocketError(`${this.#path} is in use: is another egressd running?`, this.#path);
      }
      unlinkSync(this.#path);
    }
    const server = createServer((socket) => this.#serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e) => reject(new ControlSocketError(`cannot listen on ${this.#path}: ${e.message}`, this.#path, { cause: e })));
      server.listen(this.#path, () => resolve());
    });
    chmodSync(this.#path, this.#mode);
    server.on("error", (e) => this.#log.error("control socket error", { error: e }));
    this.#server = server;
  }

  #serve(socket: Socket): void {
    this.#clients.add(socket);
    socket.on("close", () => this.#clients.delete(socket));
    socket.on("error", () => socket.destroy());
    let buffer = "";
    let queue = Promise.resolve();
    let refused = false;
    // A line over the limit ends the connection, whether or not its newline came in the same chunk:
    // requests before it are still answered, nothing after it is read.
    const refuse = () => {
      refused = true;
      buffer = "";
      queue = queue.then(() => {
        if (!socket.destroyed) socket.end(JSON.stringify({ ok: false, error: `request longer than ${MAX_LINE} bytes` }) + "\n");
      });
    };
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      if (refused) return;
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const raw = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (raw.length > MAX_LINE) return refuse();
        const line = raw.trim();
        if (line === "") continue;
        // Answer in order, one request at a time per connection.
        queue = queue.then(() => this.#answer(line)).then((reply) => {
          if (!socket.destroyed && socket.writable) socket.write(JSON.stringify(reply) + "\n");
        });
      }
      if (buffer.length > MAX_LINE) refuse();
    });
  }

  async #answer(line: string): Promise<Record<string, unknown>> {
    let req: { id?: unknown; cmd?: unknown };
    try {
      req = JSON.parse(line);
    } catch {
      return { ok: false, error: "request is not JSON" };
    }
    const id = req?.id ?? null;
    const handler = typeof req?.cmd === "string" ? this.#handlers.get(req.cmd) : undefined;
    if (!handler) {
      return { id, ok: false, error: `unknown command ${JSON.stringify(req?.cmd)}; known: ${[...this.#handlers.keys()].join(", ")}` };
    }
    try {
      return { id, ok: true, result: (await handler(req as Record<string, unknown>)) ?? null };
    } catch (e) {
      this.#log.warn("control command failed", { cmd: req.cmd, error: e });
      return { id, ok: false, error: e instanceof Error ? e.message : String(e) };
    }
  }

  /** Closes the socket and removes its file. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    for (const c of this.#clients) c.end();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      unlinkSync(this.#path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
}

/** The daemon answered a control request with an error, or could not be reached. */
export class ControlClientError extends Error {
  override name = "ControlClientError";
  readonly path: string;
  constructor(message: string, path: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.path = path;
  }
}

/** Sends one command to the daemon and returns its result. Times out after `timeoutMs` (default 10 s). */
export function controlRequest(path: string, cmd: string, opts: { timeoutMs?: number; args?: Record<string, unknown> } = {}): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buffer = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ControlClientError(`no answer from ${path} within ${opts.timeoutMs ?? 10_000} ms`, path));
    }, opts.timeoutMs ?? 10_000);
    socket.setEncoding("utf8");
    socket.once("connect", () => socket.write(JSON.stringify({ ...opts.args, id: 1, cmd }) + "\n"));
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      let reply: { ok?: boolean; result?: unknown; error?: string };
      try {
        reply = JSON.parse(buffer.slice(0, nl));
      } catch (e) {
        reject(new ControlClientError(`bad answer from ${path}`, path, { cause: e }));
        return;
      }
      if (reply.ok) resolve(reply.result);
      else reject(new ControlClientError(reply.error ?? "the daemon refused the command", path));
    });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        e.code === "ENOENT" ? "does not exist: is egressd running?"
        : e.code === "ECONNREFUSED" ? "refuses connections: egressd is not running (stale socket)"
        : e.code === "EACCES" ? "is not accessible: run as root or as a member of the egressd group"
        : e.message;
      reject(new ControlClientError(`control socket ${path} ${why}`, path, { cause: e }));
    });
  });
}
