/**
 * Parsing `ip -j` rule and route listings into the observed shapes of routing.ts. Pure.
 */
import { formatCidr, parseCidr } from "../net/ip.ts";
import type { Family, ObservedRoute, ObservedRule } from "./routing.ts";

/** Parses `ip -j -N -<family> rule show`, keeping only rules at `priorities`. Pure. */
export function parseRules(json: string, family: Family, priorities: readonly number[]): ObservedRule[] {
  const list = JSON.parse(json || "[]") as Record<string, unknown>[];
  return list
    .filter((r) => priorities.includes(Number(r.priority)))
    .map((r): ObservedRule => {
      const [mark, mask] = typeof r.fwmark === "string" ? r.fwmark.split("/") : [undefined, undefined];
      const fwmask = typeof r.fwmask === "string" ? parseInt(r.fwmask, 16) : mask !== undefined ? parseInt(mask, 16) : null;
      const known = new Set(["priority", "src", "srclen", "fwmark", "fwmask", "uid_start", "uid_end", "table", "suppress_prefixlen", "protocol"]);
      const hasOtherSelectors = Object.keys(r).some((k) => !known.has(k));
      const src = typeof r.src === "string" && r.src !== "all" ? canonicalSource(r.src, r.srclen, family) : null;
      const selector: string[] = ["priority", String(r.priority)];
      if (typeof r.src === "string" && r.src !== "all") selector.push("from", r.srclen !== undefined ? `${r.src}/${r.srclen}` : r.src);
      if (typeof r.dst === "string" && r.dst !== "all") selector.push("to", r.dstlen !== undefined ? `${r.dst}/${r.dstlen}` : r.dst);
      if (typeof r.fwmark === "string") selector.push("fwmark", typeof r.fwmask === "string" ? `${r.fwmark}/${r.fwmask}` : r.fwmark);
      if (r.uid_start !== undefined) selector.push("uidrange", `${r.uid_start}-${r.uid_end}`);
      if (typeof r.table === "string") selector.push("lookup", r.table);
      if (r.suppress_prefixlen !== undefined) selector.push("suppress_prefixlength", String(r.suppress_prefixlen));
      if (typeof r.protocol === "string") selector.push("protocol", r.protocol);
      return {
        family,
        priority: Number(r.priority),
        src,
        fwmark: mark === undefined ? null : parseInt(mark, 16),
        fwmask,
        uidStart: r.uid_start === undefined ? null : Number(r.uid_start),
        uidEnd: r.uid_end === undefined ? null : Number(r.uid_end),
        table: typeof r.table === "string" ? r.table : null,
        suppressPrefixlength: r.suppress_prefixlen === undefined ? null : Number(r.suppress_prefixlen),
        protocol: typeof r.protocol === "string" ? r.protocol : null,
        hasOtherSelectors,
        selector,
      };
    });
}

/** Parses `ip -j -<family> route show table N`. Pure. */
export function parseRoutes(json: string, family: Family): ObservedRoute[] {
  const list = JSON.parse(json || "[]") as Record<string, unknown>[];
  return list.map((r): ObservedRoute => {
    const type = typeof r.type === "string" ? r.type : "unicast";
    const dstText = String(r.dst);
    const dst =
      dstText === "default"
        ? family === 4 ? "0.0.0.0/0" : "::/0"
        : canonicalPrefix(dstText, family);
    const dev = type === "unicast" && typeof r.dev === "string" ? r.dev : null;
    const metric = typeof r.metric === "number" ? r.metric : 0;
    const selector: string[] = [];
    if (type !== "unicast") selector.push(type);
    selector.push(dstText);
    if (typeof r.gateway === "string") selector.push("via", r.gateway);
    if (dev !== null) selector.push("dev", dev);
    selector.push("metric", String(metric));
    return { family, type, dst, dev, metric, protocol: typeof r.protocol === "string" ? r.protocol : null, selector };
  });
}

/** `src` (+ `srclen`) as a host address when it is one (`10.100.0.2`), else `network/len`. */
function canonicalSource(src: string, srclen: unknown, family: Family): string {
  const full = family === 4 ? 32 : 128;
  const len = typeof srclen === "number" ? srclen : full;
  const c = canonicalPrefix(`${src}/${len}`, family);
  return len === full ? c.slice(0, c.lastIndexOf("/")) : c;
}

function canonicalPrefix(text: string, family: Family): string {
  const withLen = text.includes("/") ? text : `${text}/${family === 4 ? 32 : 128}`;
  try {
    return formatCidr(parseCidr(withLen, { allowHostBits: true }));
  } catch {
    return withLen;
  }
}
