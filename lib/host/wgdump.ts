/**
 * `wg show <if> dump`: the machine form of WireGuard's state, parsed.
 *
 * The dump's first line carries the interface's *private* key. The parser skips that field and never
 * stores it, so a {@link WgDump} is safe to log, export as metrics or hand to another module. Preshared
 * keys are reduced to a boolean for the same reason.
 *
 * Format (tab-separated, see wg(8) "dump"):
 * ```
 * private-key  public-key  listen-port  fwmark
 * public-key   preshared-key  endpoint  allowed-ips  latest-handshake  transfer-rx  transfer-tx  persistent-keepalive
 * ...one line per peer
 * ```
 * `fwmark` is `off` or hex (`0xca6d`); `endpoint` and `allowed-ips` may be `(none)`; `persistent-keepalive` is
 * `off` or seconds; `latest-handshake` is unix seconds, 0 for never.
 */
import type { Runner } from "../exec/runner.ts";
import { runHost } from "./command.ts";

/** The interface line of a dump, without the private key. */
export interface WgInterfaceDump {
  readonly publicKey: string;
  /** UDP port WireGuard listens on (0 when not yet bound). */
  readonly listenPort: number;
  /** The socket's fwmark, or null when off. */
  readonly fwmark: number | null;
}

/** One peer line of a dump. */
export interface WgPeerDump {
  readonly publicKey: string;
  /** Whether a preshared key is set; the key itself is never kept. */
  readonly hasPresharedKey: boolean;
  /** `ip:port` or `[ipv6]:port`, or null when unknown. */
  readonly endpoint: string | null;
  /** Canonical prefixes as wg prints them, e.g. `["0.0.0.0/0", "::/0"]`. */
  readonly allowedIps: readonly string[];
  /** Unix seconds of the latest handshake; 0 means never. */
  readonly latestHandshake: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  /** Seconds, or null when off. */
  readonly persistentKeepalive: number | null;
}

/** A parsed `wg show <if> dump`. */
export interface WgDump {
  readonly interface: WgInterfaceDump;
  readonly peers: readonly WgPeerDump[];
}

/** The dump did not have the expected shape. */
export class WgDumpParseError extends Error {
  override name = "WgDumpParseError";
  /** 1-based line number. */
  readonly line: number;
  constructor(line: number, message: string) {
    super(`wg dump line ${line}: ${message}`);
    this.line = line;
  }
}

/** Parses the output of `wg show <if> dump` (one interface, no interface-name column). Pure. */
export function parseWgDump(text: string): WgDump {
  const lines = text.split("\n").filter((l) => l !== "");
  const head = lines[0];
  if (head === undefined) throw new WgDumpParseError(1, "empty dump");
  const f = head.split("\t");
  if (f.length !== 4) throw new WgDumpParseError(1, `expected 4 fields on the interface line, got ${f.length}`);
  const iface: WgInterfaceDump = {
    publicKey: f[1]!,
    listenPort: uint(f[2]!, 1, "listen-port"),
    fwmark: f[3] === "off" ? null : uint(f[3]!, 1, "fwmark"),
  };
  const peers = lines.slice(1).map((line, i): WgPeerDump => {
    const n = i + 2;
    const p = line.split("\t");
    if (p.length !== 8) throw new WgDumpParseError(n, `expected 8 fields on a peer line, got ${p.length}`);
    return {
      publicKey: p[0]!,
      hasPresharedKey: p[1] !== "(none)",
      endpoint: p[2] === "(none)" ? null : p[2]!,
      allowedIps: p[3] === "(none)" || p[3] === "" ? [] : p[3]!.split(","),
      latestHandshake: uint(p[4]!, n, "latest-handshake"),
      rxBytes: uint(p[5]!, n, "transfer-rx"),
      txBytes: uint(p[6]!, n, "transfer-tx"),
      persistentKeepalive: p[7] === "off" ? null : uint(p[7]!, n, "persistent-keepalive"),
    };
  });
  return { interface: iface, peers };
}

function uint(text: string, line: number, field: string): number {
  const v = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(v)) throw new WgDumpParseError(line, `${field} "${text}" is not a number`);
  return v;
}

/**
 * Runs `wg show <ifname> dump` and parses it. Returns null when the interface does not exist (or its
 * wireguard-go control socket is gone). Throws {@link MissingCapabilityError} without CAP_NET_ADMIN.
 */
export async function readWgDump(runner: Runner, ifname: string): Promise<WgDump | null> {
  const r = await runHost(runner, ["wg", "show", ifname, "dump"], { tolerate: ["wireguardGone"] });
  return r.ok ? parseWgDump(r.stdout) : null;
}
