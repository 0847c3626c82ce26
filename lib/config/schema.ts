/**
 * The egressd config schema: the single source of truth for field names, types and defaults.
 *
 * Pure: it checks shapes, ranges and cross-field rules, nothing on disk (lib/config/load.ts checks
 * that key files exist and are private). Every object is strict, because a typo in network config
 * ("allowDestination") must not silently fall back to a default.
 *
 * Parsed values are normalised: durations become milliseconds, fwmarks numbers, CIDRs canonical.
 */
import { z } from "zod";
import { cidrContains, formatIp, HostPortError, isWildcard, parseCidr, parseHostPort, parseIp, socketAddressKeyOf } from "../net/ip.ts";
import { authSchema } from "./auth.ts";
import { cidr, duration, fwmark, hostPort, ifName, ipAddress, port, portRange, positiveDuration, RESERVED_TABLES, wgKey } from "./fields.ts";
import { pinProblems } from "./pins.ts";

export { RESERVED_TABLES } from "./fields.ts";

const interfaceSchema = z.strictObject({
  name: ifName.default("wg-egress").describe("The WireGuard interface egressd creates and owns (1-15 characters)."),
  privateKeyFile: z.string().min(1).default("private-key").describe("The gateway's private key file. A relative path is a systemd credential name, looked up in $CREDENTIALS_DIRECTORY, else beside the config file."),
  addresses: z.array(cidr({ allowHostBits: true })).min(1, { message: "needs at least one address" }).optional().describe("The gateway's tunnel addresses, as the exit's peer entry allows them. Required with `exit`; with `exits`, each exit has its own instead."),
  mtu: z.number().int().min(1280).max(9000).default(1420).describe("MTU of the WireGuard interface."),
  implementation: z.enum(["auto", "kernel", "userspace"]).default("auto").describe("`kernel`, `userspace` (wireguard-go), or `auto`: the kernel module first, then wireguard-go."),
  listenPort: port.nullable().default(null).describe("UDP port of the WireGuard socket; null lets the kernel choose one."),
});

const exitSchema = z.strictObject({
  name: z.string().min(1).max(64).default("exit").describe("Friendly name of the exit, shown in status and as the `friendly_name` metric label."),
  publicKey: wgKey.describe("The exit's public key (`wg pubkey` on the VPS)."),
  endpoint: hostPort({ names: true }).describe("`host:port` of the exit. A DNS name is resolved again when handshakes go stale (135 s), as the daemon's user: use a resolver on the gateway itself, since a dead tunnel cannot carry the query."),
  presharedKeyFile: z.string().min(1).nullable().default(null).describe("Optional preshared key file; a relative path is a credential name, as for interface.privateKeyFile."),
  persistentKeepalive: z.number().int().min(0).max(65535).default(25).describe("Seconds between keepalives, which keep the NAT mapping of an idle tunnel alive; 0 turns them off."),
  allowedIps: z.array(cidr()).min(1).default(["0.0.0.0/0", "::/0"]).describe("Destination prefixes routed to the exit."),
});

/** What a failover probe connects to: a TCP port that listens, or a DNS server that answers. */
const probeTargetSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("tcp").describe("Connect to a TCP port beyond the exit."),
    host: ipAddress.describe("The target's IP address (not a name: the probe must not depend on DNS)."),
    port: port.describe("A port that accepts connections."),
  }),
  z.strictObject({
    kind: z.literal("dns").describe("Send a DNS query to a server beyond the exit; any answer counts."),
    server: ipAddress.describe("The DNS server's IP address."),
    port: port.default(53).describe("The DNS server's UDP port."),
    name: z.string().min(1).max(253).default("example.com").describe("The name asked for (NXDOMAIN counts as an answer)."),
  }),
]);

/** One exit of several: a peer with its own interface and tunnel addresses. */
const exitsEntrySchema = exitSchema.extend({
  name: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9_.-]+$/, { message: "must be letters, digits, _ . - (it is a metric label and a log field)" })
    .describe("The exit's name: in logs, status, the `exit` and `friendly_name` metric labels, and the pins (proxy.pinnedListeners, an exit of proxy.auth)."),
  addresses: z.array(cidr({ allowHostBits: true })).min(1, { message: "needs at least one address" }).describe("The gateway's tunnel addresses for this exit, as its VPS's peer entry allows them; distinct from every other exit's."),
  interface: ifName.optional().describe("This exit's WireGuard interface. Default: interface.name + \"-\" + the exit's index (wg-egress-0, wg-egress-1, ...)."),
  probe: probeTargetSchema.optional().describe("What this exit's health probe connects to. Default: failover.probe.target."),
});

const failoverSchema = z.strictObject({
  probe: z
    .strictObject({
      interval: positiveDuration.default(3000).describe("Time between two probes of one exit."),
      timeout: positiveDuration.default(2000).describe("A probe without an answer within this long is a miss."),
      target: probeTargetSchema
        .default({ kind: "dns", server: "9.9.9.9", port: 53, name: "example.com" })
        .describe("What every exit's probe connects to, through that exit's tunnel. Default: a DNS query to 9.9.9.9."),
    })
    .default({ interval: 3000, timeout: 2000, target: { kind: "dns", server: "9.9.9.9", port: 53, name: "example.com" } })
    .describe("The active health probe sent through each exit's tunnel."),
  downAfter: z.number().int().min(1).max(100).default(3).describe("Consecutive misses that take an exit down (defaults: down within about 11 s)."),
  upAfter: z.number().int().min(1).max(100).default(3).describe("Consecutive successes that bring an exit back up."),
  staleHandshake: positiveDuration.default(300_000).describe("A handshake older than this is a miss, whatever the probe says."),
  failback: z.enum(["preempt", "stay"]).default("preempt").describe("When a higher-priority exit is healthy again: return to it (`preempt`), or stay on the current one while it is up (`stay`)."),
});

const routingSchema = z.strictObject({
  fwmark: fwmark.default(0xca6c).describe("The mark on egressd's own packets; it selects the tunnel's route table."),
  wireguardFwmark: fwmark.default(0xca6d).describe("The mark on the WireGuard socket's own UDP, so that it never enters its own tunnel; must differ from routing.fwmark."),
  table: z
    .number()
    .int()
    .min(0) // 0 is refused below, as reserved, with one message rather than two
    .max(0xffffffff)
    .refine((t) => !(RESERVED_TABLES as readonly number[]).includes(t), {
      message: "is reserved by the kernel (253 default, 254 main, 255 local); use e.g. 51820",
    })
    .default(51820)
    .describe("The route table with the tunnel route and the kill switch (not 0 or 253-255)."),
  rulePriority: z.number().int().min(1).max(32760).default(5000).describe("Priority of the first of egressd's ip rules, which take this and the next 5 (6 with `exits`), all before main's 32766."),
  killSwitch: z.boolean().default(true).describe("Keep `unreachable default` in the table and the nftables leak guard, so that a dead tunnel fails closed."),
});

/**
 * The `routing` section's defaults (fwmark 0xca6c, wireguardFwmark 0xca6d, table 51820, rulePriority 5000,
 * killSwitch on), parsed from the schema itself: the one source the lab and the tests build specs from.
 */
export const ROUTING_DEFAULTS: Readonly<z.output<typeof routingSchema>> = Object.freeze(routingSchema.parse({}));

const dnsSchema = z.strictObject({
  mode: z.enum(["tunnel", "system"]).default("tunnel").describe("`tunnel`: the daemon asks `servers` itself, so the queries go through the tunnel; `system`: the host's resolver."),
  servers: z.array(ipAddress).default(["9.9.9.9", "149.112.112.112"]).describe("Resolvers for tunnel mode."),
  timeout: duration.default(5000).describe("How long to wait for an answer to a name."),
});

/** What a proxy listener can speak; both, told apart by the first byte, unless a listener says otherwise. */
export const PROXY_PROTOCOL_NAMES = ["socks5", "http"] as const;

/** `"10.1.0.1:1080"`, or `{ "address": "10.1.0.1:1080", "protocols": ["http"] }` to speak only some protocols. */
const listenEntry = z.union([
  hostPort({ names: false }),
  z.strictObject({
    address: hostPort({ names: false }),
    protocols: z
      .array(
        // A refinement rather than z.enum: inside the union an enum error would surface only as
        // "Invalid input"; this names the allowed values.
        z.string().refine((p): p is (typeof PROXY_PROTOCOL_NAMES)[number] => (PROXY_PROTOCOL_NAMES as readonly string[]).includes(p), {
          message: `is not a protocol; use ${PROXY_PROTOCOL_NAMES.map((n) => `"${n}"`).join(" or ")}`,
        }),
      )
      .min(1)
      .refine((l) => new Set(l).size === l.length, { message: "names a protocol twice" })
      .default([...PROXY_PROTOCOL_NAMES]),
  }),
]);

/** The address of a `proxy.listen` entry. */
export function listenAddress(entry: z.output<typeof listenEntry>): string {
  return typeof entry === "string" ? entry : entry.address;
}

/** SOCKS5 UDP ASSOCIATE (RFC 1928 §7): relaying datagrams through the tunnel. */
const udpSchema = z.strictObject({
  enabled: z.boolean().default(true).describe("Answer UDP ASSOCIATE; false: \"command not supported\" (0x07)."),
  listeners: z.array(hostPort({ names: false })).nullable().default(null).describe("The proxy.listen entries that answer UDP ASSOCIATE; null: all of them. The others answer \"command not supported\"."),
  idleTimeout: duration.default(0).describe("End an association after this long without a datagram either way, and close its TCP connection; 0: it ends with its TCP connection only."),
  maxAssociations: z.number().int().min(1).max(1_000_000).default(1024).describe("Associations open at once; the one over gets \"general failure\". Each holds up to three sockets (the relay, one outbound per family)."),
  maxDestinations: z.number().int().min(1).max(65536).default(256).describe("Distinct destinations (address and port) one association may send to; datagrams to more are dropped and counted."),
  portRange: portRange.nullable().default(null).describe("Bind relay sockets from this range, e.g. \"40000-40100\" (for a firewall rule on the LAN side); null: ephemeral ports."),
});

const proxySchema = z.strictObject({
  listen: z
    .array(listenEntry)
    .min(1)
    .default(["127.0.0.1:1080"])
    .describe("Listen addresses (`ip:port`), each speaking SOCKS5 and HTTP; `{ \"address\": ..., \"protocols\": [\"http\"] }` limits one to `socks5` or `http`. A wildcard needs proxy.allowWildcardBind."),
  allowWildcardBind: z.boolean().default(false).describe("Allow 0.0.0.0 or :: in proxy.listen. Off by default: a wildcard bind would expose the proxy on the WAN."),
  allowClients: z.array(cidr()).default(["127.0.0.0/8", "::1/128"]).describe("Client prefixes allowed to connect; others are closed before a byte is read."),
  auth: authSchema.nullable().default(null).describe("Require username/password authentication (RFC 1929 for SOCKS5, Basic for HTTP): `{ \"username\": ..., \"passwordFile\": ... }`, or several accounts as `{ \"users\": [...] }`, each optionally pinned to an exit."),
  pinnedListeners: z
    .record(z.string(), z.string())
    .optional()
    .describe("With `exits`: listeners whose connections leave only by one exit, `{ \"<proxy.listen entry>\": \"<exit name>\" }`. They fail while that exit is down, and never use another exit."),
  allowDestinations: z.array(cidr()).default([]).describe("Prefixes exempt from the private, loopback and link-local deny list and from the leak guard."),
  dns: dnsSchema.default({ mode: "tunnel", servers: ["9.9.9.9", "149.112.112.112"], timeout: 5000 }).describe("How names sent by clients (`socks5h://`, HTTP proxying) are resolved."),
  idleTimeout: duration.default(0).describe("Close a connection idle this long; 0 never closes an idle connection."),
  connectTimeout: positiveDuration.default(10_000).describe("Deadline per CONNECT, across all addresses tried (Happy Eyeballs, RFC 8305)."),
  handshakeTimeout: positiveDuration.default(10_000).describe("Deadline for the SOCKS greeting and request, or the first HTTP request head, against slowloris."),
  maxConnections: z.number().int().min(1).max(1_000_000).default(20_000).describe("Open connections at most; the excess is closed at accept and counted."),
  keepaliveIdle: duration
    .refine((ms) => ms === 0 || (ms >= 1000 && ms <= 32_767_000 && ms % 1000 === 0), { message: "must be 0 (off) or whole seconds, 1s to 32767s" })
    .default(60_000).describe("TCP keepalive on both legs after this much idle time (whole seconds, 1s to 32767s); 0 turns keepalive off."),
  keepaliveInterval: duration
    .refine((ms) => ms >= 1000 && ms <= 32_767_000 && ms % 1000 === 0, { message: "must be whole seconds, 1s to 32767s" })
    .default(15_000).describe("Time between unanswered keepalive probes (TCP_KEEPINTVL)."),
  keepaliveCount: z.number().int().min(1).max(127).default(8).describe("Unanswered probes before the connection is reset (TCP_KEEPCNT). A dead peer is found after idle + interval x count, and an idle connection outlives any path outage shorter than interval x count."),
  udp: udpSchema.default(() => udpSchema.parse({})).describe("SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): datagrams relayed through the tunnel under the CONNECT policy."),
});

/**
 * The `proxy` section with every default filled in. The proxy library and `egressd proxy` take
 * their defaults from here, so that a default is written once.
 */
export const PROXY_DEFAULTS: z.output<typeof proxySchema> = proxySchema.parse({});

const metricsSchema = z.strictObject({
  listen: hostPort({ names: false }).nullable().default("127.0.0.1:9586").describe("Address of the Prometheus endpoint (/metrics, /healthz, /readyz); null turns it off."),
  allowWildcardBind: z.boolean().default(false).describe("Allow 0.0.0.0 or :: in metrics.listen."),
  latestHandshakeDelay: z.boolean().default(true).describe("Export `wireguard_latest_handshake_delay_seconds`, as the WireGuard exporter's -d flag does."),
});

const controlSchema = z.strictObject({
  socket: z
    .string()
    .refine((p) => p.startsWith("/"), { message: "must be an absolute path, e.g. \"/run/egressd/control.sock\"" })
    .default("/run/egressd/control.sock").describe("The control socket for `egressd status`, `check` and `reload` (mode 0660)."),
});

const daemonSchema = z.strictObject({
  reconcileInterval: duration
    .refine((ms) => ms >= 100, { message: "must be at least 100ms; 0 would run reconcile passes back to back" })
    .default(2000).describe("How often the host is compared with the desired state and repaired."),
  teardownOnStop: z.boolean().default(true).describe("Remove the interface, rules, routes and nft table on SIGTERM."),
  drainTimeout: duration.default(10_000).describe("How long live connections may finish after SIGTERM before they are closed."),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info").describe("`debug` adds one line per connection step and every host command."),
});

/** The whole config file, as written: `exit` or `exits`, checked by its refinements. */
const configObject = z
  .strictObject({
    interface: interfaceSchema.describe("The WireGuard interface on the gateway."),
    exit: exitSchema.optional().describe("The exit host: the WireGuard peer whose address the proxied traffic leaves by. Several: `exits` instead."),
    exits: z.array(exitsEntrySchema).max(16).optional().describe("Two or more exits, in priority order, each with its own tunnel addresses: new connections leave by the first healthy one (failover)."),
    failover: failoverSchema.optional().describe("Health probing and failover between `exits`."),
    routing: routingSchema.default(() => routingSchema.parse({})).describe("Policy routing for the daemon's own uid, and the kill switch."),
    proxy: proxySchema.default(() => proxySchema.parse({})).describe("The SOCKS5 proxy."),
    metrics: metricsSchema.default(() => metricsSchema.parse({})).describe("The Prometheus endpoint."),
    control: controlSchema.default(() => controlSchema.parse({})).describe("The local control socket."),
    daemon: daemonSchema.default(() => daemonSchema.parse({})).describe("The daemon's own behaviour."),
  })
  .superRefine((c, ctx) => {
    const bound: { key: string; where: string; addr: string; family: 4 | 6; port: number; wildcard: boolean }[] = [];
    const listeners: [string, string][] = c.proxy.listen.map((l, i) => [listenAddress(l), typeof l === "string" ? `proxy.listen[${i}]` : `proxy.listen[${i}].address`]);
    if (c.metrics.listen) listeners.push([c.metrics.listen, "metrics.listen"]);
    for (const [addr, where] of listeners) {
      // zod runs this refinement even when a field inside failed a non-fatal check, so an address
      // that does not parse is already reported by its own field and is skipped here.
      let hp;
      try {
        hp = parseHostPort(addr, { names: false });
      } catch (e) {
        if (e instanceof HostPortError) continue;
        throw e;
      }
      const ip = parseIp(hp.host)!;
      const key = `${formatIp(ip)}:${hp.port}`;
      const path = where.replace(/\[(\d+)\]/, ".$1").split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : p));
      const first = bound.find((b) => b.key === key)?.where;
      const family = ip.family;
      const wildcard = isWildcard(hp.host);
      // Linux refuses a wildcard and a specific address of one family on one port (EADDRINUSE at
      // bind time, after the rest of the config was applied); IPv6 listeners are v6-only, so
      // [::] and 0.0.0.0 do not collide.
      const overlap = first ? undefined : bound.find((b) => b.port === hp.port && b.family === family && (b.wildcard || wildcard));
      if (first) ctx.addIssue({ code: "custom", path, input: addr, message: `is a duplicate listener; ${first} binds it already` });
      else if (overlap) {
        const message = overlap.wildcard
          ? `is already covered by ${overlap.where} ("${overlap.addr}"), which takes port ${hp.port} on every IPv${family} address; drop one of them`
          : `is a wildcard that takes port ${hp.port} on every IPv${family} address, including ${overlap.where} ("${overlap.addr}"); drop one of them`;
        ctx.addIssue({ code: "custom", path, input: addr, message });
      }
      bound.push({ key, where, addr, family, port: hp.port, wildcard });
      const section = where.startsWith("proxy") ? c.proxy : c.metrics;
      const sectionName = where.startsWith("proxy") ? "proxy" : "metrics";
      if (wildcard && !section.allowWildcardBind) {
        ctx.addIssue({
          code: "custom",
          path,
          input: addr,
          message: `is a wildcard address; set ${sectionName}.allowWildcardBind to true to allow it`,
        });
      }
    }
    if (c.routing.fwmark === c.routing.wireguardFwmark) {
      ctx.addIssue({
        code: "custom",
        path: ["routing", "wireguardFwmark"],
        input: `0x${c.routing.wireguardFwmark.toString(16)}`,
        message: "must differ from routing.fwmark, or WireGuard's own UDP would be routed into its tunnel",
      });
    }
    (c.proxy.udp.listeners ?? []).forEach((l, i) => {
      const key = socketAddressKeyOf(l);
      if (key !== null && !c.proxy.listen.some((x) => socketAddressKeyOf(listenAddress(x)) === key)) {
        ctx.addIssue({ code: "custom", path: ["proxy", "udp", "listeners", i], input: l, message: "is not one of proxy.listen" });
      }
    });
    exitFormProblems(c, ctx);
    pinProblems(c, (path, input, message) => ctx.addIssue({ code: "custom", path, input, message }));
    if (c.proxy.dns.mode === "tunnel" && c.proxy.dns.servers.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["proxy", "dns", "servers"],
        input: c.proxy.dns.servers,
        message: "is empty; tunnel DNS mode needs at least one server",
      });
    }
  });

/** The config as written (before defaults). */
export type ConfigInput = z.input<typeof configObject>;
type Parsed = z.output<typeof configObject>;
/** The `failover` section, defaults filled in. */
export type FailoverConfig = z.output<typeof failoverSchema>;
/**
 * The validated config, with defaults filled in and values normalised. `exit` is always there: with
 * `exits` it is the first of them (the primary), so code that knows one exit keeps working; the
 * tunnel addresses likewise. {@link finishConfig} makes a schema result one.
 */
export type Config = Omit<Parsed, "exit" | "interface"> & {
  exit: z.output<typeof exitSchema>;
  interface: Omit<Parsed["interface"], "addresses"> & { addresses: string[] };
};

/** The `failover` section's defaults. */
export const FAILOVER_DEFAULTS: FailoverConfig = failoverSchema.parse({});

/** The interface name of exit `index` of `exits` (its own, or `interface.name` + "-" + index). */
export function exitInterfaceName(c: { interface: { name: string } }, entry: { interface?: string }, index: number): string {
  return entry.interface ?? `${c.interface.name}-${index}`;
}

/** Turns a schema result (checked by its refinements) into a {@link Config}: `exit` and the addresses from `exits[0]`. */
function finishConfig(p: Parsed): Config {
  if (p.exit && p.interface.addresses) return p as Config;
  const first = p.exits![0]!;
  const { addresses, interface: _if, probe: _probe, ...exit } = first;
  return { ...p, exit, interface: { ...p.interface, addresses: p.interface.addresses ?? [...addresses] } };
}

/**
 * The whole config file. Its output is a {@link Config}: with `exits`, `exit` and
 * `interface.addresses` are filled in from the first exit ({@link finishConfig}). `.in.shape` is the
 * object schema, for walking known keys.
 */
export const configSchema = configObject.transform((p): Config => finishConfig(p));

/** The one-exit form (`exit` + `interface.addresses`) or the several-exit form (`exits`), never a mix. */
function exitFormProblems(c: Parsed, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], input: unknown, message: string) => ctx.addIssue({ code: "custom", path, input, message });
  if (c.exits === undefined) {
    if (c.exit === undefined) issue(["exit"], undefined, "is required (object)"); // as zod words it: the one-exit form stays as it was
    else if (c.interface.addresses === undefined) issue(["interface", "addresses"], undefined, "is missing; the tunnel needs at least one address");
    if (c.failover !== undefined) issue(["failover"], c.failover, "needs \"exits\" (two or more); with one exit there is nothing to fail over to");
    return;
  }
  if (c.exits.length < 2) issue(["exits"], c.exits, "needs two or more exits; one exit is written as \"exit\"");
  if (c.exit !== undefined) issue(["exit"], c.exit, "is not allowed together with \"exits\"; move it into the list");
  if (c.interface.addresses !== undefined) issue(["interface", "addresses"], c.interface.addresses, "is not allowed with \"exits\"; each exit has its own \"addresses\"");
  if (c.interface.listenPort !== null) issue(["interface", "listenPort"], c.interface.listenPort, "must be null with \"exits\": each exit's interface needs a port of its own");
  const names = new Map<string, number>();
  const ifs = new Map<string, number>();
  const addrs: { cidr: ReturnType<typeof parseCidr>; text: string; at: number }[] = [];
  c.exits.forEach((e, i) => {
    const n = names.get(e.name);
    if (n !== undefined) issue(["exits", i, "name"], e.name, `is already the name of exits[${n}]`);
    else names.set(e.name, i);
    const ifname = exitInterfaceName(c, e, i);
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(ifname)) {
      issue(["exits", i, "interface"], ifname, `is longer than 15 characters (interface.name + "-${i}"); set exits[${i}].interface or a shorter interface.name`);
    }
    const f = ifs.get(ifname);
    if (f !== undefined) issue(["exits", i, "interface"], ifname, `is already the interface of exits[${f}]`);
    else ifs.set(ifname, i);
    for (const [j, text] of e.addresses.entries()) {
      const cidr = parseCidr(text, { allowHostBits: true });
      const other = addrs.find((a) => a.at !== i && (cidrContains(a.cidr, cidr) || cidrContains(cidr, a.cidr)));
      if (other) issue(["exits", i, "addresses", j], text, `must not overlap ${other.text} of exits[${other.at}]: each exit needs tunnel addresses of its own`);
      addrs.push({ cidr, text, at: i });
    }
  });
  const tables = c.exits.map((_, i) => c.routing.table + 1 + i);
  const bad = tables.find((t) => t > 0xffffffff || (RESERVED_TABLES as readonly number[]).includes(t));
  if (bad !== undefined) issue(["routing", "table"], c.routing.table, `leaves no room for the exits' own tables (${c.routing.table + 1}..${c.routing.table + c.exits.length}): ${bad} is reserved or out of range`);
  if (c.routing.rulePriority + 6 >= 32766) issue(["routing", "rulePriority"], c.routing.rulePriority, `must be at most 32759 with "exits": the 7 rules must come before main (32766)`);
}
