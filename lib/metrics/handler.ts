/**
 * The HTTP routes, as a pure `Request -> Response` function: `/metrics`, `/healthz`, `/readyz`.
 *
 * It does not bind sockets (server.ts does) and it does not negotiate OpenMetrics or gzip: the
 * exposition is a few kilobytes and Prometheus accepts 0.0.4 text whatever it asks for.
 */
import { silentLogger, type Logger } from "../log/logger.ts";
import { CONTENT_TYPE } from "./exposition.ts";
import type { ReadinessSource } from "./sources.ts";

/** What `/metrics` renders; a {@link Registry} is one. */
export interface Exposition {
  render(): Promise<string>;
}

/** Options for {@link createMetricsHandler}. */
export interface HandlerOptions {
  /** Rendered on every `/metrics` request. */
  registry: Exposition;
  /** Answers `/readyz`. Default: always ready (for tools that only serve metrics). */
  readiness?: ReadinessSource;
  /** Default {@link silentLogger}. */
  log?: Logger;
}

/** Methods every route accepts; `HEAD` answers like `GET` without a body. */
export const ALLOWED_METHODS = "GET, HEAD";

const TEXT = "text/plain; charset=utf-8";
const MAX_REASON = 200;

/** Folds a reason into one short line, so a multi-line error cannot break the 503 body. */
export function oneLine(text: string): string {
  const s = text.replace(/[\r\n\t]+/g, " ").replace(/ {2,}/g, " ").trim();
  return s.length > MAX_REASON ? s.slice(0, MAX_REASON - 1) + "…" : s;
}

function respond(req: Request, status: number, body: string, contentType: string, extra: Record<string, string> = {}): Response {
  const bytes = new TextEncoder().encode(body);
  const headers = {
    "Content-Type": contentType,
    "Cache-Control": "no-store",
    "Content-Length": String(bytes.byteLength),
    ...extra,
  };
  return new Response(req.method === "HEAD" ? null : bytes, { status, headers });
}

/** Builds the route handler. See {@link HandlerOptions} for defaults. */
export function createMetricsHandler(opts: HandlerOptions): (req: Request) => Promise<Response> {
  const log = opts.log ?? silentLogger;
  const routes: Record<string, (req: Request) => Promise<Response>> = {
    "/metrics": async (req) => {
      try {
        return respond(req, 200, await opts.registry.render(), CONTENT_TYPE);
      } catch (err) {
        // Collectors fail individually inside the registry; reaching here is a bug worth a 500.
        log.error("metrics render failed", { err });
        return respond(req, 500, `metrics unavailable: ${oneLine(errorMessage(err))}\n`, TEXT);
      }
    },
    "/healthz": async (req) => respond(req, 200, "ok\n", TEXT),
    "/readyz": async (req) => {
      if (!opts.readiness) return respond(req, 200, "ready\n", TEXT);
      let ready;
      try {
        ready = await opts.readiness.ready();
      } catch (err) {
        log.warn("readiness check failed", { err });
        return respond(req, 503, `not ready: readiness check failed: ${oneLine(errorMessage(err))}\n`, TEXT);
      }
      if (ready.ok) return respond(req, 200, "ready\n", TEXT);
      return respond(req, 503, `not ready: ${oneLine(ready.reason ?? "no reason given")}\n`, TEXT);
    },
  };
  return async (req) => {
    const path = new URL(req.url).pathname;
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (!route) return respond(req, 404, "not found\n", TEXT);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return respond(req, 405, "method not allowed\n", TEXT, { Allow: ALLOWED_METHODS });
    }
    return route(req);
  };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
