/**
 * What `egressd demo` needs from the host before it builds a lab: Linux, root, the tools (each with
 * its Debian package, so a missing one is named with the command that installs it), /dev/net/tun.
 * {@link missingPrerequisites} is pure; {@link probeHost} looks.
 */
import { existsSync } from "node:fs";
import { DEBIAN_PACKAGES } from "../exec/packages.ts";

/** Tools the demo runs (the lab, the daemon, the client), with their Debian packages. */
export const DEMO_TOOLS: Readonly<Record<string, string>> = {
  ip: DEBIAN_PACKAGES.ip!,
  nft: DEBIAN_PACKAGES.nft!,
  wg: DEBIAN_PACKAGES.wg!,
  // The lab's exit always runs wireguard-go; the gateway uses the kernel module when there is one.
  "wireguard-go": DEBIAN_PACKAGES["wireguard-go"]!,
  setpriv: DEBIAN_PACKAGES.setpriv!,
  nsenter: "util-linux",
  sysctl: DEBIAN_PACKAGES.sysctl!,
  curl: DEBIAN_PACKAGES.curl!,
};

/** What {@link missingPrerequisites} judges; probed by {@link probeHost}. */
export interface HostFacts {
  readonly platform: string;
  /** Effective uid, null where there is none (not POSIX). */
  readonly uid: number | null;
  /** Tool name -> found on PATH. */
  readonly tools: Readonly<Record<string, boolean>>;
  /** /dev/net/tun exists (wireguard-go needs it). */
  readonly tun: boolean;
}

/** Probes this host for {@link missingPrerequisites}. */
export function probeHost(path = process.env.PATH ?? ""): HostFacts {
  const tools: Record<string, boolean> = {};
  for (const t of Object.keys(DEMO_TOOLS)) tools[t] = Bun.which(t, { PATH: path }) !== null;
  return { platform: process.platform, uid: process.getuid?.() ?? null, tools, tun: existsSync("/dev/net/tun") };
}

/**
 * What is missing, as lines for a human, ending with the one command that installs it; an empty
 * list when nothing is. Pure.
 */
export function missingPrerequisites(f: HostFacts): string[] {
  if (f.platform !== "linux") return [`egressd demo needs Linux (network namespaces, nftables, WireGuard); this is ${f.platform}`];
  const lines: string[] = [];
  if (f.uid !== 0) lines.push("egressd demo needs root: it creates network namespaces and runs egressd with CAP_NET_ADMIN (try: sudo egressd demo)");
  const missing = Object.keys(DEMO_TOOLS).filter((t) => !f.tools[t]);
  const packages = [...new Set(missing.map((t) => DEMO_TOOLS[t]!))];
  for (const t of missing) lines.push(`missing: ${t} (Debian package ${DEMO_TOOLS[t]})`);
  if (!f.tun) lines.push("missing: /dev/net/tun, which wireguard-go needs (modprobe tun; in a container, pass the device in)");
  if (packages.length > 0) {
    lines.push(`install with: apt-get install -y --no-install-recommends ${packages.join(" ")}`);
    lines.push("(or run ./scripts/setup.sh in a clone of the egressd repository)");
  }
  return lines;
}
