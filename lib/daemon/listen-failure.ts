/**
 * Turns a listener that could not be bound into an error naming the config field, the address and
 * the cause in words, with the process holding the port when /proc shows it:
 * `proxy.listen[0] 10.1.0.1:1080: address already in use (held by pid 1234 microsocks)`.
 *
 * lib/proxy and lib/metrics each throw their own ListenError with `address` and `code`; this reads
 * those two fields rather than importing either class, so neither module's layout matters here.
 */
import type { Config } from "../config/schema.ts";
import { formatIp, parseHostPort, parseIp } from "../net/ip.ts";
import { findPortHolder, type FindPortHolderOptions, type PortHolder } from "./port-holder.ts";

/** A configured listen address could not be bound. */
export class ListenAddressError extends Error {
  override name = "ListenAddressError";
  /** The config field, e.g. `proxy.listen[0]` or `metrics.listen`; null when no field holds it. */
  readonly field: string | null;
  /** The address, `host:port`. */
  readonly address: string;
  /** The errno code (`EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`, ...), when known. */
  readonly code: string | undefined;
  /** The process holding the port, when it could be seen. */
  readonly holder: PortHolder | null;
  constructor(fields: { field: string | null; address: string; code: string | undefined; holder: PortHolder | null }, options?: ErrorOptions) {
    const what = REASONS[fields.code ?? ""] ?? fields.code ?? "cannot listen";
    const held = fields.holder ? ` (held by pid ${fields.holder.pid} ${fields.holder.command})` : "";
    super(`${fields.field ? `${fields.field} ` : ""}${fields.address}: ${what}${held}`, options);
    this.field = fields.field;
    this.address = fields.address;
    this.code = fields.code;
    this.holder = fields.holder;
  }
}

const REASONS: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "address not available (no interface on this host has it)",
  EACCES: "permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)",
};

/** `host` in the form the config and errors are compared in, or the text itself when it is not an IP. */
function canonical(address: string): string | null {
  try {
    const hp = parseHostPort(address, { names: false });
    return `${formatIp(parseIp(hp.host)!)}|${hp.port}`;
  } catch {
    return null;
  }
}

/** The config fields that listen, with their addresses. */
function listenFields(config: Pick<Config, "proxy" | "metrics">): [string, string][] {
  const fields: [string, string][] = config.proxy.listen.map((a, i) => [`proxy.listen[${i}]`, a]);
  if (config.metrics.listen) fields.push(["metrics.listen", config.metrics.listen]);
  return fields;
}

function isListenError(e: unknown): e is Error & { address: string; code: string | undefined } {
  return e instanceof Error && e.name === "ListenError" && typeof (e as { address?: unknown }).address === "string";
}

/**
 * Explains `error` when it is a failed bind of one of `config`'s listen addresses; any other
 * error comes back as it is.
 */
export function explainListenFailure(error: unknown, config: Pick<Config, "proxy" | "metrics">, opts: FindPortHolderOptions = {}): unknown {
  if (!isListenError(error)) return error;
  const key = canonical(error.address);
  const field = listenFields(config).find(([, a]) => key !== null && canonical(a) === key)?.[0] ?? null;
  let holder: PortHolder | null = null;
  if (error.code === "EADDRINUSE" && key !== null) {
    const hp = parseHostPort(error.address, { names: false });
    holder = findPortHolder(hp.host, hp.port, opts);
  }
  return new ListenAddressError({ field, address: error.address, code: error.code, holder }, { cause: error });
}
