/**
 * Malformed configs, each an otherwise valid minimal config with one mistake, and the one line that
 * must report it. schema.test.ts checks them in process; check-config.test.ts through the CLI.
 */
import { minimalConfig } from "./fixtures.ts";

/** One malformed config and the one problem it must produce. */
export interface MalformedRow {
  readonly name: string;
  /** Puts the mistake into a fresh minimal config. */
  readonly mutate: (c: Record<string, any>) => void;
  /** The field the problem names. */
  readonly path: string;
  /** The whole problem line (without the file name the CLI puts before it). */
  readonly message: string;
}

const DURATION = `is not a duration; expected e.g. "10s", "500ms", "2m" or 0`;
const RESERVED = "is reserved by the kernel (253 default, 254 main, 255 local); use e.g. 51820";
const KEY = 'is not a WireGuard key: expected 44 characters of base64 ending in "=" (as `wg pubkey` prints)';

/** The table. Every "Done when" category of issue 2 has at least one row. */
export const MALFORMED: readonly MalformedRow[] = [
  // wrong types
  { name: "mtu as a string", mutate: (c) => (c.interface.mtu = "1420"), path: "interface.mtu", message: `interface.mtu: "1420" is a string, expected a number` },
  { name: "mtu not an integer", mutate: (c) => (c.interface.mtu = 1420.5), path: "interface.mtu", message: "interface.mtu: 1420.5 is a number, expected an integer" },
  { name: "listen as a string, not a list", mutate: (c) => (c.proxy = { listen: "127.0.0.1:1080" }), path: "proxy.listen", message: `proxy.listen: "127.0.0.1:1080" is a string, expected an array` },
  { name: "killSwitch as a string", mutate: (c) => (c.routing = { killSwitch: "yes" }), path: "routing.killSwitch", message: `routing.killSwitch: "yes" is a string, expected a boolean` },
  { name: "a section as a number", mutate: (c) => (c.routing = 5), path: "routing", message: "routing: 5 is a number, expected an object" },
  { name: "fwmark as a boolean", mutate: (c) => (c.routing = { fwmark: true }), path: "routing.fwmark", message: `routing.fwmark: true is not a 32-bit fwmark; expected e.g. "0xca6c"` },
  { name: "a duration as a boolean", mutate: (c) => (c.proxy = { idleTimeout: true }), path: "proxy.idleTimeout", message: `proxy.idleTimeout: true ${DURATION}` },
  { name: "a missing required section", mutate: (c) => delete c.exit, path: "exit", message: "exit: is required (object)" },
  { name: "a missing required field", mutate: (c) => delete c.exit.publicKey, path: "exit.publicKey", message: "exit.publicKey: is required (string)" },
  { name: "an enum value that is not one", mutate: (c) => (c.interface.implementation = "kmod"), path: "interface.implementation", message: `interface.implementation: "kmod" is not one of "auto", "kernel", "userspace"` },

  // unknown keys
  { name: "a misspelt key, with a suggestion", mutate: (c) => (c.proxy = { allowDestination: [] }), path: "proxy.allowDestination", message: `proxy.allowDestination: unknown key; did you mean "allowDestinations"?` },
  { name: "a misspelt section", mutate: (c) => (c.proxi = {}), path: "proxi", message: `proxi: unknown key; did you mean "proxy"?` },
  { name: "a misspelt key in a nested section", mutate: (c) => (c.proxy = { dns: { server: ["9.9.9.9"] } }), path: "proxy.dns.server", message: `proxy.dns.server: unknown key; did you mean "servers"?` },
  { name: "an unknown key far from any known one", mutate: (c) => (c.interface.colour = "blue"), path: "interface.colour", message: "interface.colour: unknown key; known keys: name, privateKeyFile, addresses, mtu, implementation, listenPort" },

  // wildcard binds
  { name: "a listener protocol that does not exist", mutate: (c) => (c.proxy = { listen: [{ address: "127.0.0.1:1080", protocols: ["socks4"] }] }), path: "proxy.listen[0].protocols[0]", message: `proxy.listen[0].protocols[0]: "socks4" is not a protocol; use "socks5" or "http"` },
  { name: "a wildcard listener given as an object", mutate: (c) => (c.proxy = { listen: [{ address: "0.0.0.0:1080" }] }), path: "proxy.listen[0].address", message: `proxy.listen[0].address: "0.0.0.0:1080" is a wildcard address; set proxy.allowWildcardBind to true to allow it` },
  { name: "a wildcard proxy bind", mutate: (c) => (c.proxy = { listen: ["0.0.0.0:1080"] }), path: "proxy.listen[0]", message: `proxy.listen[0]: "0.0.0.0:1080" is a wildcard address; set proxy.allowWildcardBind to true to allow it` },
  { name: "an IPv6 wildcard proxy bind", mutate: (c) => (c.proxy = { listen: ["127.0.0.1:1080", "[::]:1081"] }), path: "proxy.listen[1]", message: `proxy.listen[1]: "[::]:1081" is a wildcard address; set proxy.allowWildcardBind to true to allow it` },
  { name: "a wildcard metrics bind", mutate: (c) => (c.metrics = { listen: "0.0.0.0:9586" }), path: "metrics.listen", message: `metrics.listen: "0.0.0.0:9586" is a wildcard address; set metrics.allowWildcardBind to true to allow it` },
  { name: "a wildcard proxy bind allowed only for metrics", mutate: (c) => ((c.proxy = { listen: ["0.0.0.0:1080"] }), (c.metrics = { allowWildcardBind: true })), path: "proxy.listen[0]", message: `proxy.listen[0]: "0.0.0.0:1080" is a wildcard address; set proxy.allowWildcardBind to true to allow it` },

  // bad CIDRs
  { name: "a client prefix with host bits", mutate: (c) => (c.proxy = { allowClients: ["10.1.0.1/24"] }), path: "proxy.allowClients[0]", message: `proxy.allowClients[0]: "10.1.0.1/24" is not a CIDR prefix: host bits are set; did you mean 10.1.0.0/24?` },
  { name: "a prefix length over 32", mutate: (c) => (c.proxy = { allowDestinations: ["10.0.0.0/33"] }), path: "proxy.allowDestinations[0]", message: `proxy.allowDestinations[0]: "10.0.0.0/33" is not a CIDR prefix: prefix length "/33" must be 0..32` },
  { name: "an interface address that is not an IP", mutate: (c) => (c.interface.addresses = ["10.100.0.300/32"]), path: "interface.addresses[0]", message: `interface.addresses[0]: "10.100.0.300/32" is not a CIDR prefix: "10.100.0.300" is not an IP address` },
  { name: "an allowed-IPs entry that is a name", mutate: (c) => (c.exit.allowedIps = ["example.com/0"]), path: "exit.allowedIps[0]", message: `exit.allowedIps[0]: "example.com/0" is not a CIDR prefix: "example.com" is not an IP address` },

  // bad base64 keys
  { name: "a public key that is not base64", mutate: (c) => (c.exit.publicKey = "not-a-key"), path: "exit.publicKey", message: `exit.publicKey: "not-a-key" ${KEY}` },
  { name: "a public key of 33 bytes", mutate: (c) => (c.exit.publicKey = Buffer.alloc(33, 1).toString("base64")), path: "exit.publicKey", message: `exit.publicKey: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB" ${KEY}` },
  { name: "a public key with nonzero padding bits", mutate: (c) => (c.exit.publicKey = "A".repeat(42) + "B="), path: "exit.publicKey", message: `exit.publicKey: "${"A".repeat(42)}B=" ${KEY}` },

  // ports out of range
  { name: "a proxy port over 65535", mutate: (c) => (c.proxy = { listen: ["127.0.0.1:70000"] }), path: "proxy.listen[0]", message: `proxy.listen[0]: "127.0.0.1:70000" is not ip:port: port 70000 is out of range 1..65535` },
  { name: "proxy port 0", mutate: (c) => (c.proxy = { listen: ["127.0.0.1:0"] }), path: "proxy.listen[0]", message: `proxy.listen[0]: "127.0.0.1:0" is not ip:port: port 0 is out of range 1..65535` },
  { name: "a metrics port over 65535", mutate: (c) => (c.metrics = { listen: "127.0.0.1:65536" }), path: "metrics.listen", message: `metrics.listen: "127.0.0.1:65536" is not ip:port: port 65536 is out of range 1..65535` },
  { name: "a WireGuard listen port over 65535", mutate: (c) => (c.interface.listenPort = 70000), path: "interface.listenPort", message: "interface.listenPort: 70000 is above the maximum 65535" },
  { name: "an endpoint port over 65535", mutate: (c) => (c.exit.endpoint = "vps.example.net:99999"), path: "exit.endpoint", message: `exit.endpoint: "vps.example.net:99999" is not host:port: port 99999 is out of range 1..65535` },
  // Regression: the cross-field check parsed every listen address again and crashed on these (exit 1).
  { name: "a proxy listen address that is a name", mutate: (c) => (c.proxy = { listen: ["localhost:1080"] }), path: "proxy.listen[0]", message: `proxy.listen[0]: "localhost:1080" is not ip:port: "localhost" is not an IP address` },
  { name: "a metrics listen address without a port", mutate: (c) => (c.metrics = { listen: "9586" }), path: "metrics.listen", message: `metrics.listen: "9586" is not ip:port: expected "host:port"` },

  // duplicate listeners
  { name: "the same proxy listener twice", mutate: (c) => (c.proxy = { listen: ["127.0.0.1:1080", "127.0.0.1:1080"] }), path: "proxy.listen[1]", message: `proxy.listen[1]: "127.0.0.1:1080" is a duplicate listener; proxy.listen[0] binds it already` },
  { name: "[::1]:1080 written two ways", mutate: (c) => (c.proxy = { listen: ["[::1]:1080", "[0:0:0:0:0:0:0:1]:1080"] }), path: "proxy.listen[1]", message: `proxy.listen[1]: "[0:0:0:0:0:0:0:1]:1080" is a duplicate listener; proxy.listen[0] binds it already` },
  // Regression: these passed check-config and failed with EADDRINUSE when the daemon started.
  { name: "a wildcard before a specific address on the same port", mutate: (c) => (c.proxy = { allowWildcardBind: true, listen: ["0.0.0.0:1080", "10.1.0.1:1080"] }), path: "proxy.listen[1]", message: `proxy.listen[1]: "10.1.0.1:1080" is already covered by proxy.listen[0] ("0.0.0.0:1080"), which takes port 1080 on every IPv4 address; drop one of them` },
  { name: "a specific address before a wildcard on the same port", mutate: (c) => (c.proxy = { allowWildcardBind: true, listen: ["[fd00::1]:1080", "[::]:1080"] }), path: "proxy.listen[1]", message: `proxy.listen[1]: "[::]:1080" is a wildcard that takes port 1080 on every IPv6 address, including proxy.listen[0] ("[fd00::1]:1080"); drop one of them` },
  { name: "a wildcard metrics listener on the proxy's port", mutate: (c) => ((c.proxy = { listen: ["127.0.0.1:9586"] }), (c.metrics = { allowWildcardBind: true, listen: "0.0.0.0:9586" })), path: "metrics.listen", message: `metrics.listen: "0.0.0.0:9586" is a wildcard that takes port 9586 on every IPv4 address, including proxy.listen[0] ("127.0.0.1:9586"); drop one of them` },
  { name: "proxy and metrics on the same address", mutate: (c) => ((c.proxy = { listen: ["10.1.0.1:1080"] }), (c.metrics = { listen: "10.1.0.1:1080" })), path: "metrics.listen", message: `metrics.listen: "10.1.0.1:1080" is a duplicate listener; proxy.listen[0] binds it already` },
  { name: "a proxy listener on the default metrics address", mutate: (c) => (c.proxy = { listen: ["127.0.0.1:9586"] }), path: "metrics.listen", message: `metrics.listen: "127.0.0.1:9586" (the default) is a duplicate listener; proxy.listen[0] binds it already` },

  // fwmarks
  { name: "fwmark 0", mutate: (c) => (c.routing = { fwmark: 0 }), path: "routing.fwmark", message: `routing.fwmark: 0 is fwmark 0, which means unmarked; choose a non-zero mark such as "0xca6c"` },
  { name: "fwmark \"0x0\"", mutate: (c) => (c.routing = { fwmark: "0x0" }), path: "routing.fwmark", message: `routing.fwmark: "0x0" is fwmark 0, which means unmarked; choose a non-zero mark such as "0xca6c"` },
  { name: "wireguardFwmark 0", mutate: (c) => (c.routing = { wireguardFwmark: 0 }), path: "routing.wireguardFwmark", message: `routing.wireguardFwmark: 0 is fwmark 0, which means unmarked; choose a non-zero mark such as "0xca6c"` },
  { name: "a fwmark over 32 bits", mutate: (c) => (c.routing = { fwmark: "0x100000000" }), path: "routing.fwmark", message: `routing.fwmark: "0x100000000" is not a 32-bit fwmark; expected e.g. "0xca6c"` },
  { name: "fwmark equal to wireguardFwmark", mutate: (c) => (c.routing = { fwmark: "0x1", wireguardFwmark: 1 }), path: "routing.wireguardFwmark", message: "routing.wireguardFwmark: 1 must differ from routing.fwmark, or WireGuard's own UDP would be routed into its tunnel" },
  { name: "fwmark equal to the default wireguardFwmark", mutate: (c) => (c.routing = { fwmark: "0xca6d" }), path: "routing.wireguardFwmark", message: `routing.wireguardFwmark: "0xca6d" (the default) must differ from routing.fwmark, or WireGuard's own UDP would be routed into its tunnel` },

  // deadlines of zero, and paths that must be absolute
  { name: "a connect timeout of 0", mutate: (c) => (c.proxy = { connectTimeout: 0 }), path: "proxy.connectTimeout", message: "proxy.connectTimeout: 0 must be above 0 (it is a deadline)" },
  { name: "a handshake timeout of \"0\"", mutate: (c) => (c.proxy = { handshakeTimeout: "0" }), path: "proxy.handshakeTimeout", message: `proxy.handshakeTimeout: "0" must be above 0 (it is a deadline)` },
  { name: "a relative control socket path", mutate: (c) => (c.control = { socket: "control.sock" }), path: "control.socket", message: `control.socket: "control.sock" must be an absolute path, e.g. "/run/egressd/control.sock"` },

  { name: "a reconcile interval of 0", mutate: (c) => (c.daemon = { reconcileInterval: 0 }), path: "daemon.reconcileInterval", message: "daemon.reconcileInterval: 0 must be at least 100ms; 0 would run reconcile passes back to back" },

  { name: "a keepalive idle time below a second", mutate: (c) => (c.proxy = { keepaliveIdle: "500ms" }), path: "proxy.keepaliveIdle", message: `proxy.keepaliveIdle: "500ms" must be 0 (off) or whole seconds, 1s to 32767s` },
  { name: "a keepalive idle time above the kernel's limit", mutate: (c) => (c.proxy = { keepaliveIdle: "10h" }), path: "proxy.keepaliveIdle", message: `proxy.keepaliveIdle: "10h" must be 0 (off) or whole seconds, 1s to 32767s` },
  { name: "a keepalive interval of 0", mutate: (c) => (c.proxy = { keepaliveInterval: 0 }), path: "proxy.keepaliveInterval", message: `proxy.keepaliveInterval: 0 must be whole seconds, 1s to 32767s` },
  { name: "128 keepalive probes", mutate: (c) => (c.proxy = { keepaliveCount: 128 }), path: "proxy.keepaliveCount", message: `proxy.keepaliveCount: 128 is above the maximum 127` },

  // route tables
  ...[0, 253, 254, 255].map((t) => ({ name: `route table ${t}`, mutate: (c: Record<string, any>) => (c.routing = { table: t }), path: "routing.table", message: `routing.table: ${t} ${RESERVED}` })),
  { name: "a negative route table", mutate: (c) => (c.routing = { table: -1 }), path: "routing.table", message: "routing.table: -1 is below the minimum 0" },

  // DNS
  { name: "a UDP port range backwards", mutate: (c) => (c.proxy = { udp: { portRange: "40100-40000" } }), path: "proxy.udp.portRange", message: `proxy.udp.portRange: "40100-40000" is not a port range; expected e.g. "40000-40100": ports 1-65535, first not above last` },
  { name: "a UDP port range that is one port", mutate: (c) => (c.proxy = { udp: { portRange: "40000" } }), path: "proxy.udp.portRange", message: `proxy.udp.portRange: "40000" is not a port range; expected e.g. "40000-40100"` },
  { name: "a UDP port range above 65535", mutate: (c) => (c.proxy = { udp: { portRange: "65000-70000" } }), path: "proxy.udp.portRange", message: `proxy.udp.portRange: "65000-70000" is not a port range; expected e.g. "40000-40100": ports 1-65535, first not above last` },
  { name: "a UDP port range as a number", mutate: (c) => (c.proxy = { udp: { portRange: 40000 } }), path: "proxy.udp.portRange", message: `proxy.udp.portRange: 40000 is a number, expected a string` },
  { name: "zero UDP associations", mutate: (c) => (c.proxy = { udp: { maxAssociations: 0 } }), path: "proxy.udp.maxAssociations", message: `proxy.udp.maxAssociations: 0 is below the minimum 1` },
  { name: "a UDP idle timeout in words", mutate: (c) => (c.proxy = { udp: { idleTimeout: "a minute" } }), path: "proxy.udp.idleTimeout", message: `proxy.udp.idleTimeout: "a minute" ${DURATION}` },
  { name: "a UDP listener that is not a proxy listener", mutate: (c) => (c.proxy = { listen: ["127.0.0.1:1080"], udp: { listeners: ["127.0.0.1:1081"] } }), path: "proxy.udp.listeners[0]", message: `proxy.udp.listeners[0]: "127.0.0.1:1081" is not one of proxy.listen` },
  { name: "UDP on as a string", mutate: (c) => (c.proxy = { udp: { enabled: "yes" } }), path: "proxy.udp.enabled", message: `proxy.udp.enabled: "yes" is a string, expected a boolean` },
  { name: "tunnel DNS with no servers", mutate: (c) => (c.proxy = { dns: { mode: "tunnel", servers: [] } }), path: "proxy.dns.servers", message: "proxy.dns.servers: [] is empty; tunnel DNS mode needs at least one server" },
  { name: "a DNS server that is a name", mutate: (c) => (c.proxy = { dns: { servers: ["dns.quad9.net"] } }), path: "proxy.dns.servers[0]", message: `proxy.dns.servers[0]: "dns.quad9.net" is not an IP address` },

  // durations
  { name: "a duration in words", mutate: (c) => (c.proxy = { connectTimeout: "10 seconds" }), path: "proxy.connectTimeout", message: `proxy.connectTimeout: "10 seconds" ${DURATION}` },
  { name: "a duration string without a unit", mutate: (c) => (c.proxy = { connectTimeout: "10" }), path: "proxy.connectTimeout", message: `proxy.connectTimeout: "10" ${DURATION}` },
  { name: "a negative duration", mutate: (c) => (c.daemon = { drainTimeout: -1 }), path: "daemon.drainTimeout", message: `daemon.drainTimeout: -1 ${DURATION}` },
  { name: "a duration in days", mutate: (c) => (c.proxy = { dns: { timeout: "1d" } }), path: "proxy.dns.timeout", message: `proxy.dns.timeout: "1d" ${DURATION}` },
  // Regression: a duration over 2^31-1 ms made timers fire after 1 ms.
  { name: "a duration longer than a timer can hold", mutate: (c) => (c.proxy = { idleTimeout: "1000h" }), path: "proxy.idleTimeout", message: `proxy.idleTimeout: "1000h" is too long; a timer can wait at most 596h (2^31-1 ms)` },

  // other ranges
  { name: "mtu below IPv6's minimum", mutate: (c) => (c.interface.mtu = 1000), path: "interface.mtu", message: "interface.mtu: 1000 is below the minimum 1280" },
  { name: "an interface name over 15 bytes", mutate: (c) => (c.interface.name = "wg-egress-too-long"), path: "interface.name", message: `interface.name: "wg-egress-too-long" is not an interface name: 1-15 characters of letters, digits, _ . -` },
  { name: "no tunnel addresses", mutate: (c) => (c.interface.addresses = []), path: "interface.addresses", message: "interface.addresses: [] needs at least 1 item(s)" },
];

/** A fresh config with the row's mistake in it. */
export function malformedConfig(row: MalformedRow): Record<string, any> {
  const c = minimalConfig();
  row.mutate(c);
  return c;
}
