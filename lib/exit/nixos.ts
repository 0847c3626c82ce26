/**
 * A NixOS module for the exit: `networking.wg-quick` for the interface, an nftables table for the
 * forwarding and masquerade, the sysctl and the firewall port. Pure.
 *
 * Keys are referenced by path only (`privateKeyFile`, `presharedKeyFile`), never inlined: anything
 * in a Nix expression ends up world-readable in the Nix store. The module uses
 * `networking.nftables.tables` (NixOS 23.05+), which needs `networking.nftables.enable`.
 */
import { renderNftBody } from "./nft.ts";
import { type ExitSpec, families } from "./spec.ts";

/** Options for {@link renderNixos}. */
export interface NixosOptions {
  /** Path of the exit's private key on the exit host. Default `/etc/wireguard/<interface>.key`. */
  privateKeyFile?: string;
  /** Path of the preshared key on the exit host. Default `/etc/wireguard/<interface>.psk`. */
  presharedKeyFile?: string;
}

/** Renders the module. Pure. */
export function renderNixos(spec: ExitSpec, opts: NixosOptions = {}): string {
  const keyFile = opts.privateKeyFile ?? `/etc/wireguard/${spec.interfaceName}.key`;
  const pskFile = opts.presharedKeyFile ?? `/etc/wireguard/${spec.interfaceName}.psk`;
  const f = families(spec);
  const sysctl: string[] = [];
  if (f.v4) sysctl.push(`    "net.ipv4.ip_forward" = 1;`);
  if (f.v6) sysctl.push(`    "net.ipv6.conf.all.forwarding" = 1;`);
  const peer = [`        publicKey = ${str(spec.gateway.publicKey)};`];
  if (spec.presharedKey) peer.push(`        presharedKeyFile = ${str(pskFile)};`);
  peer.push(`        allowedIPs = [ ${spec.gateway.allowedIps.map(str).join(" ")} ];`);
  const iface = [`    listenPort = ${spec.listenPort};`, `    mtu = ${spec.mtu};`, `    privateKeyFile = ${str(keyFile)};`];
  if (spec.addresses.length > 0) iface.unshift(`    address = [ ${spec.addresses.map(str).join(" ")} ];`);
  const body = renderNftBody(spec)
    .trimEnd()
    .split("\n")
    .map((l) => `      ${l}`)
    .join("\n");
  return [
    `# The exit "${spec.name}" of egressd's tunnel "${spec.gateway.interfaceName}": a NixOS module for the exit host,`,
    "# rendered by `egressd exit-config --format nixos`. Import it from configuration.nix, and put the",
    `# exit's private key at ${keyFile} (mode 0600, e.g. with agenix or sops-nix); never inline it here.`,
    "{ ... }:",
    "{",
    "  boot.kernel.sysctl = {",
    ...sysctl,
    "  };",
    `  networking.firewall.allowedUDPPorts = [ ${spec.listenPort} ];`,
    "  networking.nftables.enable = true;",
    "  networking.nftables.tables.egressd_exit = {",
    '    family = "inet";',
    "    content = ''",
    indentedString(body),
    "    '';",
    "  };",
    `  networking.wg-quick.interfaces.${attr(spec.interfaceName)} = {`,
    ...iface,
    "    peers = [",
    "      {",
    ...peer,
    "      }",
    "    ];",
    "  };",
    "}",
    "",
  ].join("\n");
}

/** A Nix double-quoted string. */
function str(s: string): string {
  return JSON.stringify(s).replace(/\$\{/g, "\\${");
}

/** An attribute name, quoted unless it is a plain identifier. */
function attr(s: string): string {
  return /^[A-Za-z_][A-Za-z0-9_'-]*$/.test(s) ? s : str(s);
}

/** Escapes the two sequences an indented string ('' ... '') treats specially. */
function indentedString(s: string): string {
  return s.replace(/''/g, "'''").replace(/\$\{/g, "''${");
}
