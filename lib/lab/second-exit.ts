/**
 * The lab's second and third VPS (`createLab({ exits: 2 })`, `exits: 3`): each its own wireguard-go in
 * its own namespace (`exit2`, `exit3`; topology.ts), with its own key, and the gateway's tunnel
 * addresses for that exit as its peer.
 */
import type { ChildHandle, Runner } from "../exec/runner.ts";
import { LAB_ADDRESSES, type LabPlan } from "./topology.ts";
import { waitUntil } from "./wait.ts";

/** One VPS of the lab, as a HostSpec's exit needs it. */
export interface LabExit {
  /** `lab-exit`, `lab-exit2` or `lab-exit3`. */
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

/** Where the second and third VPS live and what their tunnels' two ends are. */
function extraExit(plan: LabPlan, nth: 2 | 3) {
  const a = LAB_ADDRESSES;
  return nth === 2
    ? { ns: plan.ns.exit2, wg: plan.ifs.exit2Wg, gatewayWg: plan.ifs.gatewayWg2, wan4: a.exit2Wan4, gw: [a.tunnel2Gw4, a.tunnel2Gw6], exit: [a.tunnel2Exit4, a.tunnel2Exit6] }
    : { ns: plan.ns.exit3, wg: plan.ifs.exit3Wg, gatewayWg: plan.ifs.gatewayWg3, wan4: a.exit3Wan4, gw: [a.tunnel3Gw4, a.tunnel3Gw6], exit: [a.tunnel3Exit4, a.tunnel3Exit6] };
}

/**
 * Starts the `nth` VPS's WireGuard (`exits: 2` or 3) in its namespace, which `run` runs in: its own
 * key, port `plan.exitPort`, the gateway's addresses for this exit as its peer.
 */
export async function startExtraExit(run: Runner, plan: LabPlan, opts: { gwPub: string; children: ChildHandle[]; root: Runner; nth: 2 | 3 }): Promise<LabExit> {
  const x = extraExit(plan, opts.nth);
  if (x.ns === undefined) throw new Error(`the lab plan has no exit${opts.nth} namespace`);
  const key = (await opts.root.run(["wg", "genkey"])).stdout.trim();
  const pub = (await opts.root.run(["wg", "pubkey"], { stdin: key })).stdout.trim();
  const wgo = run.start(["wireguard-go", "-f", x.wg], { env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1", LOG_LEVEL: "error" } });
  opts.children.push(wgo);
  const what = `exit${opts.nth} wireguard-go`;
  await waitUntil(async () => (await run.run(["wg", "show", x.wg, "dump"]).then(() => true, () => false)) || wgo.exitStatus !== null, 5000, what);
  if (wgo.exitStatus !== null) throw new Error(`${what} exited: ${wgo.outputTail()}`);
  await run.run(["wg", "set", x.wg, "private-key", "/dev/stdin", "listen-port", String(plan.exitPort), "peer", opts.gwPub, "allowed-ips", x.gw.join(",")], { stdin: key + "\n" });
  await run.run(["ip", "address", "add", x.exit[0]!, "dev", x.wg]);
  await run.run(["ip", "-6", "address", "add", x.exit[1]!, "dev", x.wg, "nodad"]);
  await run.run(["ip", "link", "set", "dev", x.wg, "mtu", "1420", "up"]);
  return {
    name: `lab-exit${opts.nth}`,
    ns: x.ns,
    wg: x.wg,
    publicKey: pub,
    endpoint: `${x.wan4}:${plan.exitPort}`,
    wan4: x.wan4,
    pid: wgo.pid,
    gatewayWg: x.gatewayWg,
    gatewayAddresses: x.gw,
  };
}
