/**
 * Outages the failover tests stage in the lab, and how they read a WAN capture. Shared by
 * test/host/exits.netns.test.ts and test/daemon/failover.netns.test.ts.
 */
import type { Lab } from "../../lib/lab/lab.ts";

/** Drops (on) or lets through again (off) all WireGuard UDP arriving at the exit in `ns`, as a provider outage would. */
export async function dropWireguardUdp(lab: Lab, ns: string, on: boolean): Promise<void> {
  if (on) {
    const r = await lab.exec(ns, ["nft", "-f", "-"], { stdin: "table inet lab_outage {\n\tchain input {\n\t\ttype filter hook input priority -10; policy accept;\n\t\tudp dport 51820 drop\n\t}\n}\n" });
    if (r.exitCode !== 0) throw new Error(`could not drop UDP in ${ns}: ${r.stderr}`);
  } else {
    await lab.exec(ns, ["nft", "delete", "table", "inet", "lab_outage"]);
  }
}

/** The capture lines (tcpdump -q) of packets to or from `port`. */
export function linesWithPort(lines: readonly string[], port: number): string[] {
  return lines.filter((l) => l.includes(`.${port}:`) || l.includes(`.${port} `));
}
