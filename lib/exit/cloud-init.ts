/**
 * `#cloud-config` user-data that turns a fresh Debian (12+) or Ubuntu (22.04+) VPS into the exit:
 * it installs wireguard-tools and nftables, writes the wg-quick file, the nft rules and the sysctl
 * drop-in with their modes, and starts `wg-quick@<interface>`. Pure.
 *
 * Validated with `cloud-init schema --config-file` in the tests. It does not open the WireGuard port
 * in a provider's firewall, and it carries the exit's private key only when the caller passes it:
 * user-data is readable by the provider's metadata service, so many prefer to copy the key by hand.
 */
import { renderNft, renderSysctl, SYSCTL_FILE } from "./nft.ts";
import type { ExitSpec } from "./spec.ts";
import { defaultNftFile, type ExitSecrets, renderWgQuick } from "./wireguard.ts";

/** Renders the user-data. Pure. */
export function renderCloudInit(spec: ExitSpec, secrets: ExitSecrets = {}): string {
  const wgFile = `/etc/wireguard/${spec.interfaceName}.conf`;
  const nftFile = defaultNftFile(spec);
  const files: { path: string; permissions: string; content: string }[] = [
    { path: wgFile, permissions: "0600", content: renderWgQuick(spec, { ...secrets, nftFile }) },
    { path: nftFile, permissions: "0600", content: renderNft(spec) },
    { path: SYSCTL_FILE, permissions: "0644", content: renderSysctl(spec) },
  ];
  const out = [
    "#cloud-config",
    `# The exit "${spec.name}" of egressd's tunnel "${spec.gateway.interfaceName}", for a fresh Debian or Ubuntu VPS.`,
    "# Rendered by `egressd exit-config --format cloud-init`.",
  ];
  if (!secrets.privateKey) out.push(`# Replace the PrivateKey placeholder in ${wgFile} (wg-quick refuses to start until then).`);
  out.push(`# Open UDP port ${spec.listenPort} in the provider's firewall.`, "package_update: true", "packages:", "  - wireguard-tools", "  - nftables", "write_files:");
  for (const f of files) {
    out.push(`  - path: ${f.path}`, "    owner: root:root", `    permissions: "${f.permissions}"`, "    content: |");
    for (const line of f.content.trimEnd().split("\n")) out.push(line === "" ? "" : `      ${line}`);
  }
  out.push(
    "runcmd:",
    "  - [sysctl, --system]",
    `  - [systemctl, enable, --now, "wg-quick@${spec.interfaceName}"]`,
    "",
  );
  return out.join("\n");
}
