/**
 * The network-namespace harness for tests: the library lives in lib/lab (so `egressd demo` can build
 * the same topology); this adds what only tests need. Import from here in daemon and e2e tests:
 *
 * ```ts
 * import { createLab, labUnsupported, type Lab } from "../lab/index.ts";
 * const skip = labUnsupported();           // string reason, or null
 * let lab: Lab;
 * beforeAll(async () => { if (!skip) lab = await createLab(); });
 * afterAll(() => lab?.destroy());
 * test.skipIf(skip !== null)("...", async () => { ... lab.exec(lab.ns.gw, ["ncat", ...], { uid: lab.uid }) ... });
 * ```
 */
import { existsSync } from "node:fs";
export { cleanupStaleLabs, createLab, DEFAULT_LAB_UID, nsPrefix } from "../../lib/lab/lab.ts";
export type { AsUser, Capture, ExecOptions, ExecResult, Lab, LabOptions } from "../../lib/lab/lab.ts";
export { LAB_ADDRESSES, planLab } from "../../lib/lab/topology.ts";
export type { LabNamespaces, LabPlan, LabStep } from "../../lib/lab/topology.ts";
export { waitUntil } from "../../lib/lab/wait.ts";

const TOOLS = ["ip", "nft", "wg", "wireguard-go", "setpriv", "tcpdump", "ncat", "sysctl"];

/** Why namespace tests cannot run here (not root, a tool missing), or null when they can. */
export function labUnsupported(): string | null {
  if (process.getuid?.() !== 0) return "namespace tests need root";
  for (const t of TOOLS) if (!Bun.which(t)) return `namespace tests need ${t}`;
  if (!existsSync("/dev/net/tun")) return "namespace tests need /dev/net/tun";
  return null;
}
