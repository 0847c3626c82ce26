/**
 * `egressd check`: a health check with nagios plugin exit codes, for monitoring and for humans
 * after a change. One line per check; the exit code is the worst state.
 */
import { controlRequest } from "../daemon/control.ts";
import { CheckState, type DaemonStatus, evaluateHealth, worstState } from "../daemon/status.ts";
import { type Command, Exit, out, parseFlags } from "./common.ts";
import { DEFAULT_CONFIG, PROBE_HELP, runProbe } from "./probe.ts";
import { controlSocketPath, DEFAULT_SOCKET, SOCKET_FLAGS, SOCKET_HELP } from "./socket.ts";

export const HELP = `Usage: egressd check [--socket PATH | --config FILE] [--probe]

Checks the running daemon: the tunnel interface is up, the latest handshake is recent (warning
after 180 s, critical after 300 s), the policy rules and nft table are in place, and the proxy is
listening. Prints one line per check.
${SOCKET_HELP}
${PROBE_HELP}Exit codes (nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the daemon could not be reached, or
--config names a config that does not load).
`;

/** Runs `egressd check`. */
export const checkCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, { ...SOCKET_FLAGS, probe: { type: "boolean", short: "p" }, help: { type: "boolean", short: "h" } });
  if (values.help) return out(HELP).then(() => Exit.ok);
  if (values.probe) {
    // The probe reads the gateway's key from the config, and asks the daemon whether a session is live.
    const socket = values.socket ?? (values.config === undefined ? DEFAULT_SOCKET : controlSocketPath({ config: values.config }));
    return runProbe({ configFile: values.config ?? DEFAULT_CONFIG, socket });
  }
  let status: DaemonStatus;
  try {
    status = (await controlRequest(controlSocketPath(values), "status")) as DaemonStatus;
  } catch (e) {
    await out(`UNKNOWN: ${e instanceof Error ? e.message : String(e)}\n`);
    return CheckState.unknown;
  }
  const results = evaluateHealth(status);
  const worst = worstState(results);
  let text = "";
  for (const r of results) text += `${r.state.toUpperCase()}: ${r.name}: ${r.message}\n`;
  await out(text);
  return CheckState[worst];
};
