/**
 * Which Debian package provides each external tool egressd (and its test lab) runs.
 * Used only to make "not found" errors actionable.
 */

/** Tool name -> Debian package. NixOS users find the same names under `pkgs.*` (iproute2, nftables, ...). */
export const DEBIAN_PACKAGES: Readonly<Record<string, string>> = {
  ip: "iproute2",
  nft: "nftables",
  wg: "wireguard-tools",
  "wireguard-go": "wireguard-go",
  setpriv: "util-linux",
  sysctl: "procps",
  tcpdump: "tcpdump",
  ncat: "ncat",
  curl: "curl",
  socat: "socat",
  python3: "python3",
};

/** The Debian package for `tool` (a bare name or a path), or null when unknown. */
export function debianPackageFor(tool: string): string | null {
  const base = tool.slice(tool.lastIndexOf("/") + 1);
  return DEBIAN_PACKAGES[base] ?? null;
}
