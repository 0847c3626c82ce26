/**
 * `egressd demo`: flags, help and exit codes. The scenario itself (the lab, the daemon run as the
 * unit runs it, the checks and the teardown) is lib/lab/demo.ts; the prerequisites are
 * lib/lab/prerequisites.ts.
 */
import { DEFAULT_LAB_UID } from "../lab/lab.ts";
import { runDemo, WHOAMI_NAME } from "../lab/demo.ts";
import { missingPrerequisites, probeHost } from "../lab/prerequisites.ts";
import { LAB_ADDRESSES } from "../lab/topology.ts";
import { serveWhoami } from "../lab/whoami.ts";
import { type Command, err, Exit, out, parseFlags, UsageError } from "./common.ts";

export const HELP = `Usage: egressd demo [--once | --keep] [--uid N]

Runs the whole path on this machine, in a throwaway lab of network namespaces:
  client  a pod-like client on the LAN, ${LAB_ADDRESSES.clientLan}
  gw      the home gateway: this egressd binary as \`egressd run\`, as uid 64000 with ambient
          CAP_NET_ADMIN only, as the systemd unit runs it; its WAN (home) address is ${LAB_ADDRESSES.gwWan4}
  exit    the VPS: WireGuard and masquerade, configured with \`wg setconf\` from a config
          rendered from the gateway's egressd config; its address is ${LAB_ADDRESSES.exitWan4}
  inet    the internet: "what is my IP" on http://${LAB_ADDRESSES.host4}/, DNS for whoami.example
Keys come from \`egressd genkey\`. It prints the client's address as the internet sees it through
the proxy (the exit's) and directly (the home address), the curl lines to try by hand, and
\`egressd status\`. Every namespace, interface and process it made is removed when it exits,
also after an error or Ctrl-C.

  --once      print the results, then tear down (the default)
  --keep      stay up until Ctrl-C, to try it by hand
  --uid N     the daemon's uid (default ${DEFAULT_LAB_UID}); egressd marks this uid's traffic, so not 0
Internal:
  --serve-whoami ADDR   the internet host's HTTP and DNS servers, run by the demo in its lab

Needs root on Linux, with ip, nft, wg, wireguard-go, setpriv, nsenter, curl and /dev/net/tun
(Debian: apt-get install -y wireguard-tools wireguard-go nftables iproute2 util-linux curl).
Exit codes: 0 the client's proxied request left with the exit's address; 1 it did not, or the
lab or the daemon failed (the daemon's log is shown); 2 bad flags or a missing prerequisite.
`;

/** Runs `egressd demo`. */
export const demoCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    once: { type: "boolean" },
    keep: { type: "boolean" },
    uid: { type: "string" },
    "serve-whoami": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => Exit.ok);
  if (values["serve-whoami"] !== undefined) return serveWhoamiForever(values["serve-whoami"]);
  if (values.once && values.keep) throw new UsageError("--once and --keep exclude each other");
  const uid = values.uid === undefined ? DEFAULT_LAB_UID : Number(values.uid);
  if (!Number.isInteger(uid) || uid <= 0 || uid > 0xfffffffe) {
    throw new UsageError(`--uid must be a uid above 0 (egressd refuses to mark uid 0's traffic), not "${values.uid}"`);
  }
  const problems = missingPrerequisites(probeHost());
  if (problems.length > 0) {
    for (const line of problems) err(`egressd demo: ${line}`);
    return Exit.usage;
  }
  const ok = await runDemo({ keep: values.keep ?? false, uid });
  await out(""); // flush what the demo wrote before the caller exits
  return ok ? Exit.ok : Exit.failure;
};

/** `--serve-whoami ADDR`: the internet host's servers, until killed. */
async function serveWhoamiForever(address: string): Promise<number> {
  await serveWhoami({ address, names: { [WHOAMI_NAME]: address } });
  await out("ready\n");
  await new Promise(() => {}); // serve until the lab stops us
  return Exit.ok;
}
