/**
 * What the host should look like: the plain options object lib/host takes, and its validation.
 *
 * The daemon maps its config (lib/config) onto {@link HostSpec}; this module does not import the config
 * module, so the host manager can be driven by tests, the lab and the daemon alike. Validation here is
 * about what the *host* can accept (interface name length, reserved route tables, rule priorities
 * below `main`), not about config syntax.
 */
import { formatIp, parseCidr, parseHostPort, parseIp, type Cidr } from "../net/ip.ts";
import { SpecError, UnsafeUidError } from "./errors.ts";

/** Which WireGuard implementation to use. `auto` tries the kernel module, then wireguard-go. */
export type Implementation = "auto" | "kernel" | "userspace";

/** The WireGuard interface egressd creates and owns. */
export interface InterfaceSpec {
  /** Interface name, at most 15 characters. Example `wg-egress`. */
  name: string;
  /** Absolute path of the file holding the base64 private key. Read by the daemon, passed to `wg` on stdin. */
  privateKeyFile: string;
  /** Tunnel addresses with prefix, e.g. `["10.100.0.2/32", "fd00::2/128"]`. */
  addresses: readonly string[];
  /** Link MTU. Example 1420. */
  mtu: number;
  /** Kernel module, userspace wireguard-go, or auto (kernel first). */
  implementation: Implementation;
  /** UDP listen port; null lets WireGuard pick one. */
  listenPort: number | null;
}

/** The one peer: the VPS exit. */
export interface ExitSpec {
  /** A label for logs and metrics, e.g. `hetzner`. */
  name: string;
  /** The exit's base64 public key. */
  publicKey: string;
  /** `host:port`; host may be a DNS name (re-resolved when the handshake goes stale) or an IP literal. */
  endpoint: string;
  /** Path of the file holding the base64 preshared key, or null. */
  presharedKeyFile: string | null;
  /** Seconds; 0 disables keepalives. */
  persistentKeepalive: number;
  /** Prefixes routed to the exit, e.g. `["0.0.0.0/0", "::/0"]`. */
  allowedIps: readonly string[];
}

/** Policy routing and firewall parameters. */
export interface RoutingSpec {
  /** The mark nftables puts on the daemon's packets; rules send it to {@link table}. Example 0xca6c. */
  fwmark: number;
  /** The mark WireGuard puts on its own UDP socket (trap 4); must differ from {@link fwmark}. Example 0xca6d. */
  wireguardFwmark: number;
  /** Routing table number that holds the tunnel routes. Example 51820. */
  table: number;
  /**
   * First of the five consecutive priorities egressd's rules use (`rulePriority` .. `rulePriority + 4`,
   * see routing.ts): WireGuard's own mark to main, then fwmark and uidrange rules, each a
   * `lookup main suppress_prefixlength 0` (trap 1) followed by `lookup <table>`. All must come before
   * `main` (32766).
   */
  rulePriority: number;
  /** Keep an `unreachable default` in the table and drop marked packets leaving outside the tunnel (trap 3). */
  killSwitch: boolean;
  /** CIDRs that marked traffic may reach outside the tunnel (exempt from the leak guard). */
  allowDestinations: readonly string[];
}

/** One exit of several (failover): the peer, and the WireGuard interface and tunnel addresses of its own. */
export interface ExitInstanceSpec {
  exit: ExitSpec;
  /** This exit's WireGuard interface name (at most 15 characters), e.g. `wg-egress-0`. */
  interfaceName: string;
  /** This exit's tunnel addresses, as its peer entry on the VPS allows them. */
  addresses: readonly string[];
}

/** Everything lib/host needs to build, repair and tear down the host side of egressd. */
export interface HostSpec {
  /**
   * The interface settings. With {@link exits}, `name` and `addresses` are those of the first exit, and
   * the private key, MTU and implementation are shared by every exit's interface.
   */
  interface: InterfaceSpec;
  /** The one exit; with {@link exits}, the first of them. */
  exit: ExitSpec;
  /**
   * Two or more exits, in priority order (exits.ts): each gets its own interface and route table, and
   * the shared table holds the active one's routes. Absent: the one-exit form (`interface` + `exit`).
   */
  exits?: readonly ExitInstanceSpec[];
  routing: RoutingSpec;
  /** The uid whose packets are marked: the daemon's own (`process.getuid()`). 0 is refused. */
  uid: number;
}

/** An interface address, split for comparison with `ip -j addr`. */
export interface IfAddress {
  readonly family: 4 | 6;
  /** The address itself, canonical form. */
  readonly local: string;
  readonly prefixlen: number;
  /** `local/prefixlen`, as given to `ip addr add`. */
  readonly cidr: string;
}

/** A parsed endpoint. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /** True when `host` is a DNS name and must be resolved (and re-resolved). */
  readonly isName: boolean;
}

/** A validated {@link HostSpec} with its strings parsed. Produced by {@link validateSpec}. */
export interface NormalizedSpec {
  readonly spec: HostSpec;
  readonly ifname: string;
  readonly addresses: readonly IfAddress[];
  /** Families the tunnel has an address in: only those get tunnel routes. */
  readonly families: readonly (4 | 6)[];
  readonly allowedIps: readonly Cidr[];
  readonly allowDestinations: readonly Cidr[];
  readonly endpoint: Endpoint;
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
/** Tables the kernel reserves: unspec, default, main, local. */
const RESERVED_TABLES = new Set([0, 253, 254, 255]);
/** The priority of the `main` rule; ours must come before it. */
export const MAIN_RULE_PRIORITY = 32766;

/** How many consecutive priorities egressd's rules use with one exit, starting at `rulePriority` (routing.ts). */
export const RULE_COUNT = 6;

/**
 * Checks a spec (its one-exit form: `interface` + `exit`) and parses its strings. `ruleCount` is how
 * many priorities from `rulePriority` the rules take (default {@link RULE_COUNT}; exits.ts passes the failover count). Throws {@link UnsafeUidError} for uid 0 (marking uid 0 would
 * route every root process into the tunnel) and {@link SpecError} listing every other problem.
 */
export function validateSpec(spec: HostSpec, opts: { ruleCount?: number } = {}): NormalizedSpec {
  const ruleCount = opts.ruleCount ?? RULE_COUNT;
  if (spec.uid === 0) throw new UnsafeUidError(0);
  const problems: string[] = [];
  const bad = (path: string, msg: string) => problems.push(`${path}: ${msg}`);

  if (!Number.isInteger(spec.uid) || spec.uid < 0 || spec.uid > 0xfffffffe) bad("uid", `must be a uid, got ${spec.uid}`);

  const i = spec.interface;
  if (!IFNAME.test(i.name) || i.name === "." || i.name === "..") {
    bad("interface.name", `"${i.name}" must be 1-15 characters of [A-Za-z0-9_.-]`);
  }
  if (!i.privateKeyFile.startsWith("/")) bad("interface.privateKeyFile", "must be an absolute path");
  const addresses: IfAddress[] = [];
  if (i.addresses.length === 0) bad("interface.addresses", "at least one address is required");
  i.addresses.forEach((text, n) => {
    try {
      const c = parseCidr(text, { allowHostBits: true });
      const local = formatIp(c);
      addresses.push({ family: c.family, local, prefixlen: c.prefix, cidr: `${local}/${c.prefix}` });
    } catch (err) {
      bad(`interface.addresses[${n}]`, (err as Error).message);
    }
  });
  const families = ([4, 6] as const).filter((f) => addresses.some((a) => a.family === f));
  const minMtu = families.includes(6) ? 1280 : 576;
  if (!Number.isInteger(i.mtu) || i.mtu < minMtu || i.mtu > 65535) bad("interface.mtu", `must be ${minMtu}..65535, got ${i.mtu}`);
  if (!["auto", "kernel", "userspace"].includes(i.implementation)) bad("interface.implementation", `unknown "${i.implementation}"`);
  if (i.listenPort !== null && !isPort(i.listenPort)) bad("interface.listenPort", `must be 1..65535 or null, got ${i.listenPort}`);

  const e = spec.exit;
  if (!WG_KEY.test(e.publicKey)) bad("exit.publicKey", "must be a base64 WireGuard key (44 characters)");
  let endpoint: Endpoint = { host: "", port: 0, isName: false };
  try {
    const hp = parseHostPort(e.endpoint);
    endpoint = { host: hp.host, port: hp.port, isName: parseIp(hp.host) === null };
  } catch (err) {
    bad("exit.endpoint", (err as Error).message);
  }
  if (e.presharedKeyFile !== null && !e.presharedKeyFile.startsWith("/")) bad("exit.presharedKeyFile", "must be an absolute path");
  if (!Number.isInteger(e.persistentKeepalive) || e.persistentKeepalive < 0 || e.persistentKeepalive > 65535) {
    bad("exit.persistentKeepalive", `must be 0..65535, got ${e.persistentKeepalive}`);
  }
  const allowedIps = parseCidrs(e.allowedIps, "exit.allowedIps", bad);
  if (e.allowedIps.length === 0) bad("exit.allowedIps", "at least one prefix is required");

  const r = spec.routing;
  for (const key of ["fwmark", "wireguardFwmark"] as const) {
    if (!Number.isInteger(r[key]) || r[key] < 1 || r[key] > 0xffffffff) bad(`routing.${key}`, `must be 1..0xffffffff, got ${r[key]}`);
  }
  if (r.fwmark === r.wireguardFwmark) bad("routing.wireguardFwmark", "must differ from routing.fwmark, or WireGuard's own packets would be routed into its tunnel");
  if (!Number.isInteger(r.table) || r.table < 1 || r.table > 0xffffffff || RESERVED_TABLES.has(r.table)) {
    bad("routing.table", `must be 1..4294967295 and not a reserved table (253 default, 254 main, 255 local), got ${r.table}`);
  }
  if (!Number.isInteger(r.rulePriority) || r.rulePriority < 1 || r.rulePriority + ruleCount - 1 >= MAIN_RULE_PRIORITY) {
    const words = `all ${ruleCount} rules`;
    bad("routing.rulePriority", `must be 1..${MAIN_RULE_PRIORITY - ruleCount} so ${words} come before main, got ${r.rulePriority}`);
  }
  const allowDestinations = parseCidrs(r.allowDestinations, "routing.allowDestinations", bad);

  if (problems.length > 0) throw new SpecError(problems);
  return { spec, ifname: i.name, addresses, families, allowedIps, allowDestinations, endpoint };
}

function parseCidrs(list: readonly string[], path: string, bad: (p: string, m: string) => void): Cidr[] {
  const out: Cidr[] = [];
  list.forEach((text, n) => {
    try {
      out.push(parseCidr(text));
    } catch (err) {
      bad(`${path}[${n}]`, (err as Error).message);
    }
  });
  return out;
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** Formats a mark the way `ip rule` prints it: `0xca6c`. */
export function formatMark(mark: number): string {
  return `0x${mark.toString(16)}`;
}
