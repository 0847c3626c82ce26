/**
 * The lab's second VPS (`createLab({ exits: 2 })`): its own wireguard-go in the `exit2` namespace
 * (topology.ts), with its own key, and the gateway's second tunnel addresses as its peer.
 */
import type { ChildHandle, Runner } from "../exec/runner.ts";
import { LAB_ADDRESSES, type LabPlan } from "./topology.ts";
import { waitUntil } from "./wait.ts";

/** One VPS of the lab, as a HostSpec's exit needs it. */
export interface LabExit {
  /** `lab-exit` or `lab-exit2`. */
  readonly name: string;
  /** Its namespace. */
  readonly ns: string;
  /** Its own WireGuard interface (wireguard-go run by the lab). */
  readonly wg: string;
  readonly publicKey: string;
  readonly endpoint: string;
  /** Its public (WAN) IPv4 address: what a process behind it shows up as. */
  readonly wan4: string;
  readonly pid: number;
  /** The gateway's interface name and tunnel addresses for this exit. */
  readonly gatewayWg: string;
  readonly gatewayAddresses: readonly string[];
}

/** Starts the second VPS's WireGuard (`exits: 2`): its own key, port 51820, the gateway's second address as its peer. */
export async function startSecondExit(run: Runner, plan: LabPlan, gwPub: string, children: ChildHandle[], root: Runner): Promise<LabExit> {
  const a = LAB_ADDRESSES;
  const wg = plan.ifs.exit2Wg;
  const key = (await root.run(["wg", "genkey"])).stdout.trim();
  const pub = (await root.run(["wg", "pubkey"], { stdin: key })).stdout.trim();
  const wgo = run.start(["wireguard-go", "-f", wg], { env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1", LOG_LEVEL: "error" } });
  children.push(wgo);
  await waitUntil(async () => (await run.run(["wg", "show", wg, "dump"]).then(() => true, () => false)) || wgo.exitStatus !== null, 5000, "exit2 wireguard-go");
  if (wgo.exitStatus !== null) throw new Error(`exit2 wireguard-go exited: ${wgo.outputTail()}`);
  await run.run(["wg", "set", wg, "private-key", "/dev/stdin", "listen-port", String(plan.exitPort), "peer", gwPub, "allowed-ips", `${a.tunnel2Gw4},${a.tunnel2Gw6}`], { stdin: key + "\n" });
  await run.run(["ip", "address", "add", a.tunnel2Exit4, "dev", wg]);
  await run.run(["ip", "-6", "address", "add", a.tunnel2Exit6, "dev", wg, "nodad"]);
  await run.run(["ip", "link", "set", "dev", wg, "mtu", "1420", "up"]);
  return {
    name: "lab-exit2",
    ns: plan.ns.exit2!,
    wg,
    publicKey: pub,
    endpoint: `${a.exit2Wan4}:${plan.exitPort}`,
    wan4: a.exit2Wan4,
    pid: wgo.pid,
    gatewayWg: plan.ifs.gatewayWg2,
    gatewayAddresses: [a.tunnel2Gw4, a.tunnel2Gw6],
  };
}
