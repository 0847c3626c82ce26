/**
 * The exit's WireGuard configuration: a wg-quick file (`/etc/wireguard/<if>.conf`) and the bare
 * `wg setconf` text (what `wg-quick strip` would print). Pure.
 *
 * The exit's private key is written only when the caller passes it. Otherwise the file carries
 * {@link PRIVATE_KEY_PLACEHOLDER}, which `wg` refuses ("Key is not the correct length or format"),
 * so a file installed without its key fails closed instead of running with a key nobody chose.
 * The same holds for the preshared key.
 */
import type { ExitSpec } from "./spec.ts";
import { NFT_EXIT_TABLE } from "./nft.ts";

/** Stands in for the exit's private key when none was given. Not base64 of 32 bytes, so `wg` refuses it. */
export const PRIVATE_KEY_PLACEHOLDER = "<the exit's private key: egressd genkey>";

/** Stands in for the preshared key when the config names one but it was not given. */
export const PRESHARED_KEY_PLACEHOLDER = "<the preshared key of the gateway's exit.presharedKeyFile>";

/** Key material for the renderers; absent or null means a placeholder. */
export interface ExitSecrets {
  /** The exit's private key, base64. */
  privateKey?: string | null;
  /** The preshared key, base64; used only when the spec says the gateway has one. */
  presharedKey?: string | null;
}

/** Options for {@link renderWgQuick}. */
export interface WgQuickOptions extends ExitSecrets {
  /**
   * Where the nft rendering is installed: wg-quick loads it after the interface is up and deletes
   * egressd's table when it goes down, so the forwarding rules live exactly as long as the tunnel.
   * Default `/etc/wireguard/<interface>.nft`; null leaves the firewall to the host.
   */
  nftFile?: string | null;
}

/** The default path of the nft rendering next to the wg-quick file. */
export function defaultNftFile(spec: ExitSpec): string {
  return `/etc/wireguard/${spec.interfaceName}.nft`;
}

/** Renders `/etc/wireguard/<interface>.conf` for wg-quick on the exit. Pure. */
export function renderWgQuick(spec: ExitSpec, opts: WgQuickOptions = {}): string {
  const nftFile = opts.nftFile === undefined ? defaultNftFile(spec) : opts.nftFile;
  const lines = [
    `# The exit "${spec.name}" of egressd's tunnel "${spec.gateway.interfaceName}": wg-quick config for the exit host,`,
    "# rendered from the gateway's egressd config by `egressd exit-config --format wg-quick`.",
    `# Install as /etc/wireguard/${spec.interfaceName}.conf (mode 0600) and run: systemctl enable --now wg-quick@${spec.interfaceName}`,
  ];
  if (nftFile !== null) lines.push(`# The forwarding rules (\`--format nft\`) must be at ${nftFile}, and forwarding on (\`--format sysctl\`).`);
  lines.push("[Interface]", `PrivateKey = ${secret(opts.privateKey, PRIVATE_KEY_PLACEHOLDER)}`);
  if (spec.addresses.length > 0) lines.push(`Address = ${spec.addresses.join(", ")}`);
  lines.push(`ListenPort = ${spec.listenPort}`, `MTU = ${spec.mtu}`);
  if (nftFile !== null) {
    lines.push(`PostUp = nft -f ${nftFile}`, `PostDown = nft delete table ${NFT_EXIT_TABLE}`);
  }
  lines.push("", ...peerBlock(spec, opts));
  return lines.join("\n") + "\n";
}

/** Renders the `wg setconf` text (no wg-quick keys), for an interface set up by other means. Pure. */
export function renderWgSetconf(spec: ExitSpec, secrets: ExitSecrets = {}): string {
  const lines = [
    `# The exit "${spec.name}" of egressd's tunnel "${spec.gateway.interfaceName}", rendered from the gateway's`,
    "# egressd config. Apply on the exit with: wg setconf <interface> <this file>",
    "[Interface]",
    `PrivateKey = ${secret(secrets.privateKey, PRIVATE_KEY_PLACEHOLDER)}`,
    `ListenPort = ${spec.listenPort}`,
    "",
    ...peerBlock(spec, secrets),
  ];
  return lines.join("\n") + "\n";
}

function peerBlock(spec: ExitSpec, secrets: ExitSecrets): string[] {
  const lines = ["[Peer]", `# the gateway (egressd, tunnel addresses ${spec.gateway.allowedIps.join(", ")})`, `PublicKey = ${spec.gateway.publicKey}`];
  if (spec.presharedKey) lines.push(`PresharedKey = ${secret(secrets.presharedKey, PRESHARED_KEY_PLACEHOLDER)}`);
  // No Endpoint and no keepalive: the gateway is behind the home NAT and always initiates; the
  // exit learns its address from each authenticated packet.
  lines.push(`AllowedIPs = ${spec.gateway.allowedIps.join(", ")}`);
  return lines;
}

function secret(value: string | null | undefined, placeholder: string): string {
  return value ? value.trim() : placeholder;
}
