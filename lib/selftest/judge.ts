/**
 * The verdict of `egressd test`, from what the two requests answered. Pure, so every combination
 * is a table row in the tests.
 */
import { formatIp, parseIp } from "../net/ip.ts";

/** One request's outcome: the address it reported, or why there is none. */
export type Answer = { ok: true; address: string } | { ok: false; error: string };

/** What {@link judgeEgress} weighs. */
export interface EgressFacts {
  /** Through the daemon's proxy. */
  proxied: Answer;
  /** Directly from this host. */
  direct: Answer;
  /** The exit's addresses, where known, and where they came from (`--expect`, `exit.endpoint`). */
  expected: { addresses: string[]; source: string } | null;
  /** How the URL's host was resolved: by the proxy (a name sent as socks5h) and in which DNS mode. */
  dns: { name: string; mode: "tunnel" | "system"; servers: string[] } | null;
}

/** Nagios states, in order. */
export type State = "ok" | "warning" | "critical";

/** One line of the verdict. */
export interface Finding {
  readonly state: State;
  readonly name: string;
  readonly message: string;
}

/** Extracts the address from a what-is-my-IP body (a bare address, maybe with a newline). Pure. */
export function addressFromBody(body: string): string | null {
  const text = body.trim();
  const ip = parseIp(text);
  return ip ? formatIp(ip) : null;
}

/** Judges the facts: one finding per check. Pure. */
export function judgeEgress(f: EgressFacts): Finding[] {
  const out: Finding[] = [];
  if (!f.proxied.ok) {
    out.push({ state: "critical", name: "proxied", message: `the request through the proxy failed: ${f.proxied.error}` });
  } else {
    out.push({ state: "ok", name: "proxied", message: `answered ${f.proxied.address}` });
  }
  if (!f.direct.ok) out.push({ state: "warning", name: "direct", message: `the direct request failed, so the two cannot be compared: ${f.direct.error}` });
  else out.push({ state: "ok", name: "direct", message: `answered ${f.direct.address}` });

  if (f.proxied.ok && f.direct.ok) {
    if (same(f.proxied.address, f.direct.address)) {
      out.push({ state: "critical", name: "differ", message: `the proxied answer is this host's own direct address ${f.direct.address}: traffic does not leave through the exit` });
    } else out.push({ state: "ok", name: "differ", message: "the proxied and direct answers differ" });
  }
  if (f.proxied.ok) {
    if (f.expected === null || f.expected.addresses.length === 0) {
      out.push({ state: "warning", name: "exit", message: "the exit's address is not known (exit.endpoint is a name that did not resolve); pass --expect ADDRESS" });
    } else if (f.expected.addresses.some((a) => same(a, f.proxied.ok ? f.proxied.address : ""))) {
      out.push({ state: "ok", name: "exit", message: `${f.proxied.address} is the exit's address (${f.expected.source})` });
    } else {
      out.push({ state: "critical", name: "exit", message: `the proxied answer ${f.proxied.address} is not the exit's address ${f.expected.addresses.join(" or ")} (${f.expected.source})` });
    }
  }
  if (f.dns === null) {
    out.push({ state: "warning", name: "dns", message: "the URL's host is an address, so name resolution through the tunnel was not tried; use a URL with a name" });
  } else if (!f.proxied.ok) {
    out.push({ state: "critical", name: "dns", message: `${f.dns.name} was sent to the proxy to resolve (socks5h), but the request failed` });
  } else if (f.dns.mode === "tunnel") {
    out.push({ state: "ok", name: "dns", message: `${f.dns.name} was resolved by egressd (socks5h), which queries ${f.dns.servers.join(", ")} from its own marked uid, so through the tunnel (the kill switch drops those queries otherwise)` });
  } else {
    out.push({ state: "warning", name: "dns", message: `${f.dns.name} was resolved by egressd with the system resolver (proxy.dns.mode "system"): that query left outside the tunnel` });
  }
  return out;
}

function same(a: string, b: string): boolean {
  const x = parseIp(a);
  const y = parseIp(b);
  return x !== null && y !== null && formatIp(x) === formatIp(y);
}
