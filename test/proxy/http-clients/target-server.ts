/**
 * The targets real clients fetch through the proxy: one HTTP and one HTTPS server (Bun.serve) with
 * the same routes, in-process ({@link serveTargets}) or as its own process for a lab namespace:
 *
 *   bun test/proxy/http-clients/target-server.ts --address 203.0.113.2 --http-port 8080 \
 *       --https-port 8443 --cert server.pem --key server.key [--root DIR]
 *
 * which prints `ready http=<port> https=<port>` once both listen (ports may be 0).
 *
 * Routes, on both servers:
 * - `/ip`: the peer's address and a newline, `text/plain`, as the lab's whoami server answers
 *   (lib/lab/whoami.ts), so a test sees which address a request arrived from;
 * - `/hello`: {@link HELLO_BODY};
 * - `/bytes/<n>`: n bytes (up to 64 MiB), for bodies larger than any buffer;
 * - `/echo` (any method): the request body back, with the request's method and Host in headers;
 * - anything else: a file under `root` (the apt repository, the dumb-http git repository), 404 if
 *   absent; `..` cannot leave root.
 * Every request is logged as one line: `http[s] METHOD /path from ADDR`, like whoami's.
 */
import { existsSync, statSync } from "node:fs";
import { join, normalize } from "node:path";
import { parseArgs } from "node:util";
import { formatIp, parseIp } from "../../../lib/net/ip.ts";

/** The body of `/hello`. */
export const HELLO_BODY = "hello from the egressd test target\n";

/** Options for {@link serveTargets}. */
export interface TargetOptions {
  /** The address both servers listen on. Default 127.0.0.1. */
  readonly address?: string;
  /** Default 0 (any free port). */
  readonly httpPort?: number;
  /** Default 0. */
  readonly httpsPort?: number;
  /** PEM paths of the server certificate and key (see tls.ts). */
  readonly certFile: string;
  readonly keyFile: string;
  /** Directory of static files. Default: none (404). */
  readonly root?: string;
  /** Receives one line per request. Default: discard. */
  readonly log?: (line: string) => void;
}

/** Running target servers. */
export interface Targets {
  readonly httpPort: number;
  readonly httpsPort: number;
  stop(): void;
}

function handler(scheme: string, opts: TargetOptions) {
  const log = opts.log ?? (() => {});
  return async (req: Request, server: { requestIP(r: Request): { address: string } | null }): Promise<Response> => {
    const url = new URL(req.url);
    const peer = server.requestIP(req)?.address ?? "unknown";
    const ip = parseIp(peer);
    const shown = ip ? formatIp(ip) : peer;
    log(`${scheme} ${req.method} ${url.pathname} from ${shown}`);
    if (url.pathname === "/ip") return new Response(shown + "\n", { headers: { "content-type": "text/plain" } });
    if (url.pathname === "/hello") return new Response(HELLO_BODY, { headers: { "content-type": "text/plain" } });
    const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname);
    if (bytes) {
      const n = Math.min(Number(bytes[1]), 64 << 20);
      return new Response(new Uint8Array(n).fill(0x61), { headers: { "content-type": "application/octet-stream" } });
    }
    if (url.pathname === "/echo") {
      return new Response(await req.arrayBuffer(), { headers: { "x-method": req.method, "x-host": req.headers.get("host") ?? "" } });
    }
    if (opts.root) {
      const path = normalize(join(opts.root, decodeURIComponent(url.pathname)));
      if (path.startsWith(normalize(opts.root) + "/") && existsSync(path) && statSync(path).isFile()) return new Response(Bun.file(path));
    }
    return new Response("not found\n", { status: 404 });
  };
}

/** Starts the HTTP and HTTPS servers. */
export function serveTargets(opts: TargetOptions): Targets {
  const hostname = opts.address ?? "127.0.0.1";
  const http = Bun.serve({ hostname, port: opts.httpPort ?? 0, fetch: handler("http", opts) });
  const https = Bun.serve({
    hostname,
    port: opts.httpsPort ?? 0,
    tls: { cert: Bun.file(opts.certFile), key: Bun.file(opts.keyFile) },
    fetch: handler("https", opts),
  });
  return {
    httpPort: http.port!,
    httpsPort: https.port!,
    stop() {
      void http.stop(true);
      void https.stop(true);
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      address: { type: "string", default: "127.0.0.1" },
      "http-port": { type: "string", default: "8080" },
      "https-port": { type: "string", default: "8443" },
      cert: { type: "string" },
      key: { type: "string" },
      root: { type: "string" },
    },
  });
  if (!values.cert || !values.key) throw new Error("target-server: --cert and --key are required");
  const t = serveTargets({
    address: values.address,
    httpPort: Number(values["http-port"]),
    httpsPort: Number(values["https-port"]),
    certFile: values.cert,
    keyFile: values.key,
    root: values.root,
    log: (line) => process.stdout.write(line + "\n"),
  });
  process.stdout.write(`ready http=${t.httpPort} https=${t.httpsPort}\n`);
}
