/**
 * The exit's firewall and forwarding, rendered for nftables and sysctl. Pure.
 *
 * The rules live in a table of their own ({@link NFT_EXIT_TABLE}) and touch only the tunnel: what
 * arrives on the exit's WireGuard interface from the gateway's tunnel addresses is forwarded and
 * masqueraded out of whatever interface the route picks; replies come back; anything else entering
 * or leaving through the tunnel is dropped and counted. Other forwarding on the host is left to the
 * host's own tables (a base chain of ours with policy accept does not override another table's drop).
 * TCP MSS is clamped to the route's MTU in both directions, because the tunnel's MTU is smaller than
 * the WAN's and PMTU discovery through a NAT is often broken.
 *
 * It does not open the WireGuard port in a host firewall (ufw, firewalld) that may drop it.
 */
import { type ExitSpec, families } from "./spec.ts";

/** Family and name of egressd's table on the exit. */
export const NFT_EXIT_TABLE = "inet egressd_exit";

/** The chains of the exit's table, without the `table ... { }` around them (NixOS wants the body). Pure. */
export function renderNftBody(spec: ExitSpec): string {
  const wg = JSON.stringify(spec.interfaceName);
  const f = families(spec);
  const v4 = spec.gateway.allowedIps.filter((a) => !a.includes(":")).map(stripHostPrefix);
  const v6 = spec.gateway.allowedIps.filter((a) => a.includes(":")).map(stripHostPrefix);
  const forward = [
    "chain forward {",
    "\ttype filter hook forward priority filter; policy accept;",
    `\tiifname ${wg} tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu`,
    `\toifname ${wg} tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu`,
  ];
  if (f.v4) forward.push(`\tiifname ${wg} ip saddr { ${v4.join(", ")} } accept`);
  if (f.v6) forward.push(`\tiifname ${wg} ip6 saddr { ${v6.join(", ")} } accept`);
  forward.push(`\toifname ${wg} ct state established,related accept`, `\tiifname ${wg} counter drop`, `\toifname ${wg} counter drop`, "}");
  const nat = ["chain postrouting {", "\ttype nat hook postrouting priority srcnat; policy accept;"];
  if (f.v4) nat.push(`\tip saddr { ${v4.join(", ")} } oifname != ${wg} masquerade`);
  if (f.v6) nat.push(`\tip6 saddr { ${v6.join(", ")} } oifname != ${wg} masquerade`);
  nat.push("}");
  return [...forward, ...nat].join("\n") + "\n";
}

/** Renders the whole nft script; loading it again replaces the table atomically. Pure. */
export function renderNft(spec: ExitSpec): string {
  const body = renderNftBody(spec)
    .split("\n")
    .map((l) => (l === "" ? l : `\t${l}`))
    .join("\n");
  return [
    "#!/usr/sbin/nft -f",
    `# The exit "${spec.name}" of egressd's tunnel: forward and masquerade what the gateway sends through`,
    `# ${spec.interfaceName}, nothing else. Rendered by \`egressd exit-config --format nft\`.`,
    `# Load: nft -f <this file>. Remove: nft delete table ${NFT_EXIT_TABLE}. Needs forwarding (--format sysctl):`,
    ...sysctlLines(spec).map((l) => `#   ${l}`),
    // Creating the table first makes the delete succeed when it does not exist yet; the three
    // statements are one transaction, so the rules are never half replaced.
    `table ${NFT_EXIT_TABLE}`,
    `delete table ${NFT_EXIT_TABLE}`,
    `table ${NFT_EXIT_TABLE} {`,
    body.trimEnd(),
    "}",
    "",
  ].join("\n");
}

/** The sysctl settings the exit needs, as `key = value` lines. Pure. */
export function sysctlLines(spec: ExitSpec): string[] {
  const f = families(spec);
  const lines: string[] = [];
  if (f.v4) lines.push("net.ipv4.ip_forward = 1");
  if (f.v6) lines.push("net.ipv6.conf.all.forwarding = 1");
  return lines;
}

/** Renders `/etc/sysctl.d/99-egressd-exit.conf`. Pure. */
export function renderSysctl(spec: ExitSpec): string {
  const lines = [`# Forwarding for egressd's exit "${spec.name}" (rendered by \`egressd exit-config --format sysctl\`).`];
  lines.push(...sysctlLines(spec));
  if (families(spec).v6) {
    // With forwarding on, the kernel ignores router advertisements unless accept_ra is 2.
    lines.push("# If this host gets its IPv6 address from router advertisements, also set", "# net.ipv6.conf.<wan interface>.accept_ra = 2");
  }
  return lines.join("\n") + "\n";
}

/** The sysctl drop-in's path. */
export const SYSCTL_FILE = "/etc/sysctl.d/99-egressd-exit.conf";

function stripHostPrefix(cidr: string): string {
  return cidr.replace(/\/(32|128)$/, "");
}
