/**
 * The lab's exit, configured the way a user configures a VPS: from `egressd exit-config` output.
 *
 * The gateway's config for the lab is written as a real egressd config and parsed by the real
 * schema; the exit's wg-quick file and nft rules are rendered from it by lib/exit (the code behind
 * `egressd exit-config`), written to files, and brought up with `wg-quick up` itself in the exit
 * namespace, with wireguard-go as wg-quick's userspace implementation. wg-quick loads the nft rules
 * from its PostUp line, so the masquerade the lab's traffic takes is the rendered one.
 */
import { readFile, readdir, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { configSchema, type Config } from "../config/schema.ts";
import type { Runner } from "../exec/runner.ts";
import { renderNft } from "../exit/nft.ts";
import { type ExitSpec, exitSpecsFromConfig } from "../exit/spec.ts";
import { renderWgQuick } from "../exit/wireguard.ts";
import { LAB_ADDRESSES } from "./topology.ts";

/** What the lab knows about both ends. */
export interface LabExitInput {
  /** The exit's WireGuard interface name (unique per lab). */
  interfaceName: string;
  /** The gateway's WireGuard interface name. */
  gatewayInterface: string;
  /** The gateway's private key file (the config refers to it; nothing here reads it). */
  gatewayPrivateKeyFile: string;
  gatewayPublicKey: string;
  exitPublicKey: string;
  /** `host:port` of the exit as the gateway dials it. */
  endpoint: string;
}

/** The gateway's egressd config for the lab, parsed by the real schema. Pure. */
export function labGatewayConfig(input: LabExitInput): Config {
  return configSchema.parse({
    interface: { name: input.gatewayInterface, privateKeyFile: input.gatewayPrivateKeyFile, addresses: [LAB_ADDRESSES.tunnelGw4, LAB_ADDRESSES.tunnelGw6], mtu: 1420 },
    exit: { name: "lab-exit", publicKey: input.exitPublicKey, endpoint: input.endpoint },
  });
}

/** The lab exit's spec: the gateway's config plus the exit's own tunnel addresses. Pure. */
export function labExitSpec(input: LabExitInput): ExitSpec {
  return exitSpecsFromConfig(labGatewayConfig(input), {
    gatewayPublicKey: input.gatewayPublicKey,
    interfaceName: input.interfaceName,
    addresses: [LAB_ADDRESSES.tunnelExit4, LAB_ADDRESSES.tunnelExit6],
  })[0]!;
}

/** Environment that lets wg-quick fall back to wireguard-go on a kernel without WireGuard. */
export const WG_QUICK_USERSPACE_ENV = {
  WG_QUICK_USERSPACE_IMPLEMENTATION: "wireguard-go",
  WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1",
} as const;

/**
 * Renders the exit's files into `dir` (0600) and runs `wg-quick up` through `exitRunner` (which runs
 * in the exit namespace). Returns the files and the pid of the wireguard-go that wg-quick started.
 */
export async function startLabExit(exitRunner: Runner, o: { input: LabExitInput; privateKey: string; dir: string; ns: string }): Promise<{ wgQuickFile: string; nftFile: string; pid: number }> {
  const spec = labExitSpec(o.input);
  const nftFile = join(o.dir, `${spec.interfaceName}.nft`);
  const wgQuickFile = join(o.dir, `${spec.interfaceName}.conf`); // wg-quick names the interface after the file
  await writeFile(nftFile, renderNft(spec), { mode: 0o600 });
  await writeFile(wgQuickFile, renderWgQuick(spec, { privateKey: o.privateKey, nftFile }), { mode: 0o600 });
  // wireguard-go daemonizes; without LOG_LEVEL its child gets /dev/null, not our pipes.
  await exitRunner.run(["wg-quick", "up", wgQuickFile], { env: WG_QUICK_USERSPACE_ENV, timeoutMs: 20_000 });
  const pid = await wireguardGoPid(exitRunner);
  if (pid === null) throw new Error(`wg-quick up ${wgQuickFile} left no wireguard-go running in ${o.ns}`);
  return { wgQuickFile, nftFile, pid };
}

/** The pid of the one wireguard-go process in the runner's namespace, or null. */
async function wireguardGoPid(nsRunner: Runner): Promise<number | null> {
  // `ip netns pids` needs the name; from inside, /proc's net namespace links tell: compare with ours.
  const self = (await nsRunner.run(["readlink", "/proc/self/ns/net"])).stdout.trim();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await readFile(`/proc/${entry}/comm`, "utf8").catch(() => "");
    if (comm.trim() !== "wireguard-go") continue;
    const ns = await readlink(`/proc/${entry}/ns/net`).catch(() => "");
    if (ns === self) return Number(entry);
  }
  return null;
}
