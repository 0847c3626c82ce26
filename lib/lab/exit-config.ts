/**
 * The exit's side of the tunnel, rendered from the gateway's egressd config: the text `wg setconf`
 * takes on the VPS. `egressd demo` configures its exit with it, so the two ends of the demo's tunnel
 * come from one source and cannot disagree.
 *
 * It renders WireGuard's own configuration only (`[Interface]` key and port, `[Peer]` for the
 * gateway). It does not give the exit its tunnel address, forwarding or masquerade: those are the
 * exit host's business (`wg-quick`'s `Address =` and `PostUp =`, or the lab's plan).
 */
import type { Config } from "../config/schema.ts";
import { formatIp, parseCidr, parseHostPort } from "../net/ip.ts";

/** What the gateway's config does not hold: key material. */
export interface ExitKeys {
  /** The exit's private key (base64), as `egressd genkey` prints it. */
  exitPrivateKey: string;
  /** The gateway's public key: `egressd pubkey < <interface.privateKeyFile>`. */
  gatewayPublicKey: string;
  /** The contents of `exit.presharedKeyFile`, when the config names one. Default: none. */
  presharedKey?: string | null;
}

/**
 * Renders the exit's `wg setconf` text. Pure.
 *
 * - `ListenPort` is the port of the gateway's `exit.endpoint`.
 * - The gateway is the one peer. Its `AllowedIPs` are the gateway's tunnel addresses
 *   (`interface.addresses`) as host routes (`/32`, `/128`): those are the only source addresses the
 *   exit accepts from it, whatever prefix length the gateway's side gives them.
 * - `PresharedKey` appears when the gateway's config names a preshared key file; then the key is
 *   required.
 */
export function renderExitConfig(config: Config, keys: ExitKeys): string {
  const { port } = parseHostPort(config.exit.endpoint, { names: true });
  const allowed = config.interface.addresses.map((a) => {
    const c = parseCidr(a, { allowHostBits: true });
    return `${formatIp(c)}/${c.family === 4 ? 32 : 128}`;
  });
  if (config.exit.presharedKeyFile !== null && !keys.presharedKey) {
    throw new TypeError(`renderExitConfig: the gateway's config names exit.presharedKeyFile; pass its key as presharedKey`);
  }
  const lines = [
    `# The exit's side of egressd's tunnel "${config.interface.name}" (exit "${config.exit.name}"), rendered from the`,
    "# gateway's egressd config. Apply on the exit with: wg setconf <interface> <this file>",
    "[Interface]",
    `PrivateKey = ${keys.exitPrivateKey.trim()}`,
    `ListenPort = ${port}`,
    "",
    "[Peer]",
    `# the gateway (egressd, tunnel addresses ${config.interface.addresses.join(", ")})`,
    `PublicKey = ${keys.gatewayPublicKey.trim()}`,
  ];
  if (config.exit.presharedKeyFile !== null) lines.push(`PresharedKey = ${keys.presharedKey!.trim()}`);
  lines.push(`AllowedIPs = ${allowed.join(", ")}`, "");
  return lines.join("\n");
}
