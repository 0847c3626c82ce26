/**
 * Name resolution for domain targets (`socks5h://`), in one of two modes:
 *
 * - `system`: the OS resolver (`getaddrinfo(3)`: /etc/hosts, nsswitch, /etc/resolv.conf). Queries
 *   leave however the host's own DNS traffic leaves, i.e. by the home connection.
 * - `tunnel`: the daemon itself sends A and AAAA queries to the configured servers (c-ares through
 *   `node:dns`). Those packets belong to the daemon's uid, so nftables marks them into the tunnel
 *   like every other outbound packet of the proxy (docs/design.md, trap 5). /etc/hosts is not consulted.
 *
 * Does not apply the destination policy (the core checks every returned address) and does not
 * cache: c-ares and nscd/systemd-resolved do that better, and a stale answer is worse than a query.
 */
import { lookup } from "node:dns/promises";
import { Resolver } from "node:dns/promises";
import { PROXY_DEFAULTS } from "../config/schema.ts";
import { formatHostPort, parseHostPort, parseIp, type IpAddr } from "../net/ip.ts";
import { errorCode, ProxyConfigError, ResolveError } from "./errors.ts";

/** Resolves a DNS name to addresses, or rejects with {@link ResolveError}. */
export type Resolve = (hostname: string) => Promise<IpAddr[]>;

/** How the proxy resolves names. */
export type DnsMode = "system" | "tunnel";

/** Options for {@link createResolver}. */
export interface DnsOptions {
  /** Default `system`. */
  readonly mode?: DnsMode;
  /**
   * Servers for `tunnel` mode (required there, ignored by `system`): IP literals, optionally with a
   * port: `9.9.9.9`, `127.0.0.1:5353`, `[2620:fe::fe]:53`.
   */
  readonly servers?: readonly string[];
  /** Give up on a name after this long, in milliseconds. Default 5000. */
  readonly timeoutMs?: number;
}

/**
 * RFC 8305 §3 "Resolution Delay": once one family has answered, wait this long for the other
 * before going on without it.
 */
export const RESOLUTION_DELAY_MS = 50;

/** Default for {@link DnsOptions.timeoutMs}: the config schema's `proxy.dns.timeout`. */
export const DEFAULT_DNS_TIMEOUT_MS: number = PROXY_DEFAULTS.dns.timeout;

/** Validates tunnel-mode servers and returns them in the form `Resolver.setServers` takes. */
export function normalizeDnsServers(servers: readonly string[]): string[] {
  return servers.map((s, i) => {
    const ip = parseIp(s);
    if (ip) return s;
    try {
      const hp = parseHostPort(s, { names: false });
      return formatHostPort(hp);
    } catch (err) {
      throw new ProxyConfigError(`dns.servers[${i}]`, `"${s}" is not an IP address or IP:port`, { cause: err });
    }
  });
}

/** Creates a resolver for `options`. Throws {@link ProxyConfigError} for unusable options. */
export function createResolver(options: DnsOptions = {}): Resolve {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DNS_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new ProxyConfigError("dns.timeoutMs", `must be positive, not ${timeoutMs}`);
  const mode = options.mode ?? "system";
  if (mode === "system") return (name) => withDeadline(name, timeoutMs, systemLookup(name));
  if (mode !== "tunnel") throw new ProxyConfigError("dns.mode", `must be "system" or "tunnel", not "${mode}"`);
  const servers = normalizeDnsServers(options.servers ?? []);
  if (servers.length === 0) throw new ProxyConfigError("dns.servers", `tunnel mode needs at least one server`);
  // c-ares retries each server; split the budget so that the last try still fits in timeoutMs.
  const resolver = new Resolver({ timeout: Math.max(100, Math.floor(timeoutMs / (2 * servers.length))), tries: 2 });
  resolver.setServers(servers);
  return (name) => withDeadline(name, timeoutMs, tunnelLookup(resolver, name));
}

/** The resolver's error code, or `EFAIL` for an error without one. */
function resolverCode(err: unknown): string {
  return errorCode(err) ?? "EFAIL";
}

async function systemLookup(name: string): Promise<IpAddr[]> {
  let answers: { address: string }[];
  try {
    answers = await lookup(name, { all: true, order: "verbatim" });
  } catch (err) {
    throw new ResolveError(name, resolverCode(err), { cause: err });
  }
  const out = parseAll(answers.map((a) => a.address));
  if (out.length === 0) throw new ResolveError(name, "ENODATA");
  return out;
}

function parseAll(texts: readonly string[]): IpAddr[] {
  const out: IpAddr[] = [];
  for (const t of texts) {
    const ip = parseIp(t);
    if (ip) out.push(ip);
  }
  return out;
}

/**
 * Asks for AAAA and A at once (RFC 8305 §3). When one family answers first, the other gets
 * {@link RESOLUTION_DELAY_MS} more; then we go on with what we have. (§3 would start connecting
 * to IPv6 addresses before A arrives; waiting at most 50 ms for it keeps dialing simple.)
 */
function tunnelLookup(resolver: Resolver, name: string): Promise<IpAddr[]> {
  return new Promise((resolve, reject) => {
    const got: { 4?: IpAddr[]; 6?: IpAddr[] } = {};
    const errors: unknown[] = [];
    let waiting = 2;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      const all = [...(got[6] ?? []), ...(got[4] ?? [])];
      if (all.length > 0) return resolve(all);
      // Prefer the more telling error: "no such name" or a timeout over "no records of this type".
      const codes = errors.map(resolverCode);
      const code = codes.find((c) => c !== "ENODATA") ?? codes[0] ?? "ENODATA";
      reject(new ResolveError(name, code, { cause: errors[0] }));
    };
    const settle = (family: 4 | 6, p: Promise<string[]>) => {
      p.then(
        (addrs) => { got[family] = parseAll(addrs); },
        (err) => { errors.push(err); },
      ).finally(() => {
        waiting--;
        if (waiting === 0) return finish();
        if ((got[4]?.length ?? 0) + (got[6]?.length ?? 0) > 0 && !timer) timer = setTimeout(finish, RESOLUTION_DELAY_MS);
      });
    };
    settle(6, resolver.resolve6(name));
    settle(4, resolver.resolve4(name));
  });
}

function withDeadline(name: string, ms: number, p: Promise<IpAddr[]>): Promise<IpAddr[]> {
  return new Promise((resolve, reject) => {
    // getaddrinfo(3) cannot be cancelled; on a timeout we stop waiting and let it finish unseen.
    const timer = setTimeout(() => reject(new ResolveError(name, "ETIMEOUT")), ms);
    p.then(
      (v) => { clearTimeout(timer); resolve(v); },
      (e) => { clearTimeout(timer); reject(e); },
    );
  });
}
