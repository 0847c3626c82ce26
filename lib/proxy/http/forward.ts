/**
 * Rewriting heads for forwarding (RFC 9110 §7.6.1): a proxy sends an absolute-form request on in
 * origin form with Host set from the target, and drops the hop-by-hop fields in both directions.
 *
 * What this module does NOT do: it reads no bytes and makes no policy or routing decision. It adds
 * no Via field: egressd exists to make traffic look like it leaves from the exit, and announcing a
 * proxy to every origin (RFC 9110 §7.6.3 asks for Via) is the operator's choice, not a default.
 *
 * Transfer-Encoding is hop-by-hop in principle, but it is kept: bodies pass through byte for byte,
 * so the next hop must frame them exactly as we did. For the same reason a `Connection` option that
 * names Content-Length, Transfer-Encoding or Host is ignored rather than obeyed: removing one of
 * those would make the next hop read the body differently (a smuggling trick).
 */
import type { RequestHead } from "./request.ts";
import type { ResponseHead } from "./response.ts";
import { encodeRequestHead } from "./request.ts";
import { encodeResponseHead } from "./response.ts";
import { type HeaderField, type HeaderList, headerList, headerValues } from "./wire.ts";

/** Fields that apply to one connection only (RFC 9110 §7.6.1, plus Proxy-Connection, a de facto alias of Connection). */
export const HOP_BY_HOP_FIELDS: readonly string[] = [
  "connection",
  "proxy-connection",
  "keep-alive",
  "te",
  "trailer",
  "upgrade",
  "proxy-authorization",
  "proxy-authenticate",
];

const FRAMING_FIELDS = new Set(["content-length", "transfer-encoding", "host"]);

/**
 * The protocols a request asks to upgrade to (RFC 9110 §7.8), or an empty list. An upgrade counts
 * only when `Connection` lists `upgrade`; a stray Upgrade field is hop-by-hop noise and is dropped.
 */
export function upgradeProtocols(headers: HeaderList): string[] {
  const options = headerList(headers, "connection").map((o) => o.toLowerCase());
  if (!options.includes("upgrade")) return [];
  return headerList(headers, "upgrade");
}

/** `headers` without the hop-by-hop fields and without the fields `Connection` names (except framing fields). */
export function removeHopByHop(headers: HeaderList): HeaderField[] {
  const drop = new Set(HOP_BY_HOP_FIELDS);
  for (const o of headerList(headers, "connection")) {
    const name = o.toLowerCase();
    if (!FRAMING_FIELDS.has(name)) drop.add(name);
  }
  return headers.filter(([n]) => !drop.has(n.toLowerCase()));
}

/** How the forwarded head ends its connection handling. */
export interface ForwardOptions {
  /**
   * Ask the next hop to close after this exchange (`Connection: close`). Default false. Ignored when
   * the message is an upgrade, which sends `Connection: upgrade` instead.
   */
  readonly close?: boolean;
  /** Send `Connection: keep-alive`, which an HTTP/1.0 peer needs to keep the connection. Default false. */
  readonly keepAlive?: boolean;
}

function connectionField(upgrade: string[], opts: ForwardOptions): HeaderField[] {
  const out: HeaderField[] = [];
  if (upgrade.length > 0) out.push(["Upgrade", upgrade.join(", ")], ["Connection", "upgrade"]);
  else if (opts.close) out.push(["Connection", "close"]);
  else if (opts.keepAlive) out.push(["Connection", "keep-alive"]);
  return out;
}

/**
 * The head to send upstream for an absolute-form request: `METHOD /path HTTP/1.1`, Host from the
 * target (RFC 9112 §3.2.2: a received Host is replaced), the end-to-end fields in their order, and
 * Upgrade with `Connection: upgrade` when the client asked for one. Throws `TypeError` for a
 * request that is not in absolute form.
 */
export function encodeForwardRequest(head: RequestHead, opts: ForwardOptions = {}): Uint8Array {
  if (head.target.form !== "absolute") throw new TypeError(`only absolute-form requests are forwarded, not ${head.target.form} form`);
  const fields = removeHopByHop(head.headers).filter(([n]) => n.toLowerCase() !== "host");
  return encodeRequestHead({
    method: head.method,
    target: head.target.path,
    headers: [["Host", head.target.authority], ...fields, ...connectionField(upgradeProtocols(head.headers), opts)],
  });
}

/**
 * The head to send the client for an upstream response: the status and reason, the end-to-end
 * fields, and for 101 the Upgrade field with `Connection: upgrade`. Sent as HTTP/1.1 (RFC 9110
 * §6.2: an intermediary sends its own version).
 */
export function encodeForwardResponse(head: ResponseHead, opts: ForwardOptions = {}): Uint8Array {
  const upgrade = head.status === 101 ? headerValues(head.headers, "upgrade").flatMap((v) => v.split(",").map((s) => s.trim())).filter((s) => s !== "") : [];
  return encodeResponseHead({
    status: head.status,
    reason: head.reason,
    headers: [...removeHopByHop(head.headers), ...connectionField(upgrade, opts)],
  });
}
