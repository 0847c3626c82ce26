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
import { isKey } from "../keys/keys.ts";
import { CidrError, formatCidr, formatIp, HostPortError, isWildcard, parseCidr, parseHostPort, parseIp } from "../net/ip.ts";
import { MAX_DURATION_MS, parseDuration } from "./duration.ts";

/** Route tables the kernel reserves: 253 default, 254 main, 255 local (and 0 unspec). */
export const RESERVED_TABLES = [0, 253, 254, 255] as const;

const NOT_A_DURATION = `is not a duration; expected e.g. "10s", "500ms", "2m" or 0`;

/** A duration (`"10s"`, `"500ms"`, `0`, or a number of seconds), parsed to milliseconds. */
const duration = z.union([z.string(), z.number()], { error: NOT_A_DURATION }).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === null) {
    ctx.addIssue({ code: "custom", message: NOT_A_DURATION });
    return z.NEVER;
  }
  if (ms > MAX_DURATION_MS) {
    ctx.addIssue({ code: "custom", message: "is too long; a timer can wait at most 596h (2^31-1 ms)" });
    return z.NEVER;
  }
  return ms;
});

/** A duration that must be above zero: a deadline of 0 would fail every connection at once. */
const positiveDuration = duration.refine((ms) => ms > 0, { message: "must be above 0 (it is a deadline)" });

/** A packet mark: a number or `"0xca6c"`; never 0, which means "unmarked" to the kernel and nft. */
const NOT_A_FWMARK = `is not a 32-bit fwmark; expected e.g. "0xca6c"`;

const fwmark = z.union([z.string(), z.number()], { error: NOT_A_FWMARK }).transform((v, ctx) => {
  const n = typeof v === "number" ? v : /^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    ctx.addIssue({ code: "custom", message: NOT_A_FWMARK });
    return z.NEVER;
  }
  if (n === 0) {
    ctx.addIssue({ code: "custom", message: "is fwmark 0, which means unmarked; choose a non-zero mark such as \"0xca6c\"" });
    return z.NEVER;
  }
  return n;
});

function cidr(opts: { allowHostBits?: boolean } = {}) {
  return z.string().transform((v, ctx) => {
    try {
      const c = parseCidr(v, opts);
      return opts.allowHostBits ? `${formatIp(c)}/${c.prefix}` : formatCidr(c);
    } catch (e) {
      if (!(e instanceof CidrError)) throw e;
      ctx.addIssue({ code: "custom", message: `is not a CIDR prefix: ${e.message}` });
      return z.NEVER;
    }
  });
}

function hostPort(opts: { names: boolean }) {
  return z.string().superRefine((v, ctx) => {
    try {
      parseHostPort(v, opts);
    } catch (e) {
      if (!(e instanceof HostPortError)) throw e;
      ctx.addIssue({ code: "custom", message: `is not ${opts.names ? "host:port" : "ip:port"}: ${e.message}` });
    }
  });
}

const ipAddress = z.string().refine((v) => parseIp(v) !== null, { message: "is not an IP address" });

const wgKey = z.string().refine(isKey, {
  message: "is not a WireGuard key: expected 44 characters of base64 ending in \"=\" (as `wg pubkey` prints)",
});

const port = z.number().int().min(1).max(65535);

/** Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no `/`, whitespace or `:`. */
const ifName = z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, {
  message: "is not an interface name: 1-15 characters of letters, digits, _ . -",
});

const interfaceSchema = z.strictObject({
  /** The WireGuard interface egressd owns. */
  name: ifName.default("wg-egress"),
  /** Private key file. A relative path is looked up in $CREDENTIALS_DIRECTORY, else beside the config. */
  privateKeyFile: z.string().min(1).default("private-key"),
  /** Tunnel addresses of this gateway, as the exit's peer entry allows them. */
  addresses: z.array(cidr({ allowHostBits: true })).min(1, { message: "needs at least one address" }),
  mtu: z.number().int().min(1280).max(9000).default(1420),
  /** `auto` tries the kernel module, then wireguard-go. */
  implementation: z.enum(["auto", "kernel", "userspace"]).default("auto"),
  /** UDP port of the WireGuard socket; null lets the kernel pick one. */
  listenPort: port.nullable().default(null),
});

const exitSchema = z.strictObject({
  /** Friendly name, shown in status and as the `friendly_name` metric label. */
  name: z.string().min(1).max(64).default("exit"),
  publicKey: wgKey,
  /** `host:port` of the exit; a DNS name is re-resolved when handshakes go stale. */
  endpoint: hostPort({ names: true }),
  presharedKeyFile: z.string().min(1).nullable().default(null),
  /** Seconds between keepalives; 0 turns them off. 25 keeps NAT state alive. */
  persistentKeepalive: z.number().int().min(0).max(65535).default(25),
  allowedIps: z.array(cidr()).min(1).default(["0.0.0.0/0", "::/0"]),
});

const routingSchema = z.strictObject({
  /** Mark put on this daemon's own packets; selects the tunnel table. */
  fwmark: fwmark.default(0xca6c),
  /** Mark on the WireGuard socket's own UDP, so it is never routed into its own tunnel. */
  wireguardFwmark: fwmark.default(0xca6d),
  table: z
    .number()
    .int()
    .min(0) // 0 is refused below, as reserved, with one message rather than two
    .max(0xffffffff)
    .refine((t) => !(RESERVED_TABLES as readonly number[]).includes(t), {
      message: "is reserved by the kernel (253 default, 254 main, 255 local); use e.g. 51820",
    })
    .default(51820),
  /** Priority of the first of our two ip rules (suppress, then lookup at +1). */
  rulePriority: z.number().int().min(1).max(32764).default(5000),
  /** Keep `unreachable default` in the table and the nft leak guard, so a dead tunnel fails closed. */
  killSwitch: z.boolean().default(true),
});

/**
 * The `routing` section's defaults (fwmark 0xca6c, wireguardFwmark 0xca6d, table 51820, rulePriority 5000,
 * killSwitch on), parsed from the schema itself: the one source the lab and the tests build specs from.
 */
export const ROUTING_DEFAULTS: Readonly<z.output<typeof routingSchema>> = Object.freeze(routingSchema.parse({}));

const authSchema = z.strictObject({
  username: z.string().min(1).max(255),
  /** File holding the password (RFC 1929 allows 1-255 bytes). Relative: $CREDENTIALS_DIRECTORY. */
  passwordFile: z.string().min(1),
});

const dnsSchema = z.strictObject({
  /** `tunnel`: the daemon queries `servers` itself, so the queries are marked into the tunnel. */
  mode: z.enum(["tunnel", "system"]).default("tunnel"),
  servers: z.array(ipAddress).default(["9.9.9.9", "149.112.112.112"]),
  timeout: duration.default(5000),
});

const proxySchema = z.strictObject({
  listen: z.array(hostPort({ names: false })).min(1).default(["127.0.0.1:1080"]),
  /** Allow `0.0.0.0`/`::` in `listen`. Off: a wildcard bind would expose the proxy on the WAN. */
  allowWildcardBind: z.boolean().default(false),
  /** Client prefixes allowed to connect; others are closed before any byte is read. */
  allowClients: z.array(cidr()).default(["127.0.0.0/8", "::1/128"]),
  auth: authSchema.nullable().default(null),
  /** Prefixes exempt from the private/loopback/link-local deny list (and from the leak guard). */
  allowDestinations: z.array(cidr()).default([]),
  dns: dnsSchema.default({ mode: "tunnel", servers: ["9.9.9.9", "149.112.112.112"], timeout: 5000 }),
  /** 0: never close an idle connection (the IRC-bot case). */
  idleTimeout: duration.default(0),
  connectTimeout: positiveDuration.default(10_000),
  /** Deadline for the SOCKS greeting and request, against slowloris. */
  handshakeTimeout: positiveDuration.default(10_000),
  maxConnections: z.number().int().min(1).max(1_000_000).default(20_000),
  /**
   * TCP keepalive on both legs: idle time before the first probe; 0 turns keepalive off. With the
   * interval and count below, a silent peer is found after idle + interval x count, and an idle
   * connection survives any outage of the path shorter than interval x count.
   */
  keepaliveIdle: duration
    .refine((ms) => ms === 0 || (ms >= 1000 && ms <= 32_767_000 && ms % 1000 === 0), { message: "must be 0 (off) or whole seconds, 1s to 32767s" })
    .default(60_000),
  /** Time between unanswered keepalive probes (TCP_KEEPINTVL). */
  keepaliveInterval: duration
    .refine((ms) => ms >= 1000 && ms <= 32_767_000 && ms % 1000 === 0, { message: "must be whole seconds, 1s to 32767s" })
    .default(15_000),
  /** Unanswered keepalive probes before the connection is reset (TCP_KEEPCNT). */
  keepaliveCount: z.number().int().min(1).max(127).default(8),
});

/**
 * The `proxy` section with every default filled in. The proxy library and `egressd proxy` take
 * their defaults from here, so that a default is written once.
 */
export const PROXY_DEFAULTS: z.output<typeof proxySchema> = proxySchema.parse({});

const metricsSchema = z.strictObject({
  /** Address of the Prometheus endpoint (9586 is the WireGuard exporter's port); null turns it off. */
  listen: hostPort({ names: false }).nullable().default("127.0.0.1:9586"),
  allowWildcardBind: z.boolean().default(false),
  /** Export `wireguard_latest_handshake_delay_seconds`, as the exporter's `-d` flag does. */
  latestHandshakeDelay: z.boolean().default(true),
});

const controlSchema = z.strictObject({
  socket: z
    .string()
    .refine((p) => p.startsWith("/"), { message: "must be an absolute path, e.g. \"/run/egressd/control.sock\"" })
    .default("/run/egressd/control.sock"),
});

const daemonSchema = z.strictObject({
  /** How often observed host state is compared with the desired state. */
  reconcileInterval: duration
    .refine((ms) => ms >= 100, { message: "must be at least 100ms; 0 would run reconcile passes back to back" })
    .default(2000),
  /** On SIGTERM, remove the interface, rules, routes and nft table. */
  teardownOnStop: z.boolean().default(true),
  /** How long live connections may finish after SIGTERM before they are closed. */
  drainTimeout: duration.default(10_000),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
});

/** The whole config file. */
export const configSchema = z
  .strictObject({
    interface: interfaceSchema,
    exit: exitSchema,
    routing: routingSchema.default(() => routingSchema.parse({})),
    proxy: proxySchema.default(() => proxySchema.parse({})),
    metrics: metricsSchema.default(() => metricsSchema.parse({})),
    control: controlSchema.default(() => controlSchema.parse({})),
    daemon: daemonSchema.default(() => daemonSchema.parse({})),
  })
  .superRefine((c, ctx) => {
    const bound: { key: string; where: string; addr: string; family: 4 | 6; port: number; wildcard: boolean }[] = [];
    const listeners: [string, string][] = c.proxy.listen.map((l, i) => [l, `proxy.listen[${i}]`]);
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
export type ConfigInput = z.input<typeof configSchema>;
/** The validated config, with defaults filled in and values normalised. */
export type Config = z.output<typeof configSchema>;
