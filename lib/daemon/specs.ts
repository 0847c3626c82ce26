/**
 * The config, turned into what each part takes: a HostSpec for lib/host, ProxyServerOptions for
 * lib/proxy. This is the only place that knows both the config's names and the parts' names.
 * Pure, except that {@link proxyOptions} reads the proxy password file (through `readSecret`).
 * {@link missingRouting} judges observed host state against a spec, for `egressd status` and `check`.
 */
import { networkInterfaces } from "node:os";
import { exitInterfaceName, listenAddress, type Config } from "../config/schema.ts";
import { passwordOf, readSecretFile } from "../config/secret-file.ts";
import {
  describeRoute,
  desiredRoutes,
  desiredRules,
  type Family,
  type ObservedRoute,
  type ObservedRule,
  routeMatches,
  ruleAddArgv,
  ruleMatches,
} from "../host/routing.ts";
import type { HostSpec, NormalizedSpec } from "../host/spec.ts";
import { type Cidr, type IpAddr, parseCidr, parseHostPort, parseIp } from "../net/ip.ts";
import type { SourceAddresses } from "../proxy/dial.ts";
import type { ProxyServerOptions } from "../proxy/server.ts";

/** The host side of a config, for a daemon running as `uid`. With `exits`, each exit with its own interface and addresses. */
export function hostSpec(c: Config, uid: number): HostSpec {
  const exits = c.exits?.map((e, i) => ({
    exit: { name: e.name, publicKey: e.publicKey, endpoint: e.endpoint, presharedKeyFile: e.presharedKeyFile, persistentKeepalive: e.persistentKeepalive, allowedIps: e.allowedIps },
    interfaceName: exitInterfaceName(c, e, i),
    addresses: e.addresses,
  }));
  const one = oneExitSpec(c, uid);
  if (!exits) return one;
  return { ...one, interface: { ...one.interface, name: exits[0]!.interfaceName, addresses: exits[0]!.addresses }, exit: exits[0]!.exit, exits };
}

function oneExitSpec(c: Config, uid: number): HostSpec {
  return {
    interface: {
      name: c.interface.name,
      privateKeyFile: c.interface.privateKeyFile,
      addresses: c.interface.addresses,
      mtu: c.interface.mtu,
      implementation: c.interface.implementation,
      listenPort: c.interface.listenPort,
    },
    exit: {
      name: c.exit.name,
      publicKey: c.exit.publicKey,
      endpoint: c.exit.endpoint,
      presharedKeyFile: c.exit.presharedKeyFile,
      persistentKeepalive: c.exit.persistentKeepalive,
      allowedIps: c.exit.allowedIps,
    },
    routing: {
      fwmark: c.routing.fwmark,
      wireguardFwmark: c.routing.wireguardFwmark,
      table: c.routing.table,
      rulePriority: c.routing.rulePriority,
      killSwitch: c.routing.killSwitch,
      allowDestinations: c.proxy.allowDestinations,
    },
    uid,
  };
}

/**
 * The gateway's own addresses, which the proxy refuses as destinations: every address on the
 * host's interfaces (the WAN address included) and the tunnel's own.
 */
export function ownAddresses(c: Config, interfaces = networkInterfaces()): IpAddr[] {
  const out: IpAddr[] = [];
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      const ip = parseIp(a.address.split("%")[0]!);
      if (ip) out.push(ip);
    }
  }
  for (const cidr of [...c.interface.addresses, ...(c.exits ?? []).flatMap((e) => e.addresses)]) {
    const ip = parseIp(cidr.split("/")[0]!);
    if (ip) out.push(ip);
  }
  return out;
}

/** Options for {@link proxyOptions}. */
export interface ProxyOptionsDeps {
  /** Reads a secret file. Default: {@link readSecretFile}, which throws a `SecretFileError` naming the field. */
  readSecret?: (path: string) => Promise<string>;
  /** The gateway's addresses. Default {@link ownAddresses}. */
  own?: IpAddr[];
}

/** The proxy side of a config. Reads the password file when auth is on. */
export async function proxyOptions(c: Config, deps: ProxyOptionsDeps = {}): Promise<ProxyServerOptions> {
  // The rule check-config applies (a regular file others cannot read), again at the moment of use:
  // the file may have been swapped since the config was loaded, and a FIFO would hang the reload.
  const read = deps.readSecret ?? (async (p: string) => readSecretFile(p, { field: "proxy.auth.passwordFile", kind: "password" }));
  const cidrs = (list: readonly string[]): Cidr[] => list.map((s) => parseCidr(s));
  const p = c.proxy;
  return {
    listeners: p.listen.map((l) => ({ ...parseHostPort(listenAddress(l), { names: false }), ...(typeof l === "string" ? {} : { protocols: l.protocols }) })),
    allowWildcardBind: p.allowWildcardBind,
    allowClients: cidrs(p.allowClients),
    allowDestinations: cidrs(p.allowDestinations),
    ownAddresses: deps.own ?? ownAddresses(c),
    auth: p.auth ? { username: p.auth.username, password: passwordOf(await read(p.auth.passwordFile)) } : null,
    dns: { mode: p.dns.mode, servers: p.dns.servers, timeoutMs: p.dns.timeout },
    connectTimeoutMs: p.connectTimeout,
    handshakeTimeoutMs: p.handshakeTimeout,
    idleTimeoutMs: p.idleTimeout,
    maxConnections: p.maxConnections,
    udp: {
      enabled: p.udp.enabled,
      listeners: p.udp.listeners?.map((l) => parseHostPort(l, { names: false })) ?? null,
      idleTimeoutMs: p.udp.idleTimeout,
      maxAssociations: p.udp.maxAssociations,
      maxDestinations: p.udp.maxDestinations,
      portRange: p.udp.portRange,
    },
    keepalive: p.keepaliveIdle === 0 ? { enabled: false } : { enabled: true, idleMs: p.keepaliveIdle, intervalMs: p.keepaliveInterval, count: p.keepaliveCount },
    ...(p.pinnedListeners ? { pinned: new Map(Object.entries(p.pinnedListeners).map(([listen, exit]) => [listen, exitSources(c).get(exit)!])) } : {}),
  };
}

/**
 * Each exit's tunnel addresses by family, without prefix length: what a socket pinned to the exit
 * binds (the first of each family), by exit name. With one exit, that exit's.
 */
export function exitSources(c: Config): Map<string, SourceAddresses> {
  const list = c.exits ?? [{ name: c.exit.name, addresses: c.interface.addresses }];
  return new Map(
    list.map((e) => {
      const hosts = e.addresses.map((a) => a.split("/")[0]!);
      const v4 = hosts.find((h) => parseIp(h)?.family === 4);
      const v6 = hosts.find((h) => parseIp(h)?.family === 6);
      return [e.name, { ...(v4 ? { 4: v4 } : {}), ...(v6 ? { 6: v6 } : {}) }];
    }),
  );
}

/**
 * The config fields whose change alters the host state, as config paths (`exit.endpoint`,
 * `proxy.allowDestinations`, ...); empty when a reload need not touch the host.
 */
export function hostChanges(a: Config, b: Config): string[] {
  const ha = hostSpec(a, 0);
  const hb = hostSpec(b, 0);
  const out: string[] = [];
  // Exits are all or nothing for now: adding or removing one changes the rule block and the tables.
  if (JSON.stringify(ha.exits ?? null) !== JSON.stringify(hb.exits ?? null)) out.push("exits");
  for (const section of ["interface", "exit", "routing"] as const) {
    const sa: Record<string, unknown> = { ...ha[section] };
    const sb: Record<string, unknown> = { ...hb[section] };
    for (const key of new Set([...Object.keys(sa), ...Object.keys(sb)])) {
      if (JSON.stringify(sa[key]) === JSON.stringify(sb[key])) continue;
      // The leak guard's allow list comes from the proxy section of the config.
      out.push(section === "routing" && key === "allowDestinations" ? "proxy.allowDestinations" : `${section}.${key}`);
    }
  }
  return out;
}

/**
 * Why a reload from `a` to `b` must be refused, or null when it can be applied in place. The control
 * socket cannot move under its clients. Host changes ({@link hostChanges}: tunnel, exit, routing)
 * would take the rules, routes and nft table down and bring new ones up, and in between the proxy's
 * packets would leave by the WAN (seen in the lab); lib/host would first need to move to a new spec
 * without that gap. A restart applies either safely: no proxy runs while the host state is down.
 */
export function reloadRefusal(a: Config, b: Config): string | null {
  if (b.control.socket !== a.control.socket) return "control.socket cannot change on reload; restart egressd";
  const fields = hostChanges(a, b);
  if (fields.length === 0) return null;
  return `${fields.join(", ")} cannot change on reload without taking the tunnel's rules and kill switch down; restart egressd to apply ${fields.length === 1 ? "it" : "them"}`;
}

/**
 * What of the policy routing `n` wants is not on the host: each of our rules and each route of our
 * table (the kill switch's `unreachable default` among them) that has no exact match in `observed`,
 * as `IPv4 rule priority 5000 fwmark 0xca6d lookup main` or `IPv4 route unreachable default metric
 * 4294967295`. Empty when everything is in place. Extra rules or routes are not reported; the
 * reconcile loop removes them.
 */
export function missingRouting(
  n: NormalizedSpec,
  families: readonly Family[],
  observed: { readonly rules: readonly ObservedRule[]; readonly routes: readonly ObservedRoute[] },
): string[] {
  const out: string[] = [];
  for (const f of families) {
    for (const d of desiredRules(n, [f])) {
      // `ip -4 rule add <words> protocol 212` -> `<words>`
      if (!observed.rules.some((o) => ruleMatches(o, d))) out.push(`IPv${f} rule ${ruleAddArgv(d).slice(4, -2).join(" ")}`);
    }
    for (const d of desiredRoutes(n, f)) {
      if (!observed.routes.some((o) => routeMatches(o, d))) out.push(`IPv${f} route ${describeRoute(d)}`);
    }
  }
  return out;
}
