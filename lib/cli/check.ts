/**
 * `egressd check`: a health check with nagios plugin exit codes, for monitoring and for humans
 * after a change. One line per check; the exit code is the worst state.
 */
import { controlRequest } from "../daemon/control.ts";
import { CheckState, type DaemonStatus, evaluateHealth, worstState } from "../daemon/status.ts";
import { type Command, Exit, out, parseFlags, UsageError } from "./common.ts";
import { DEFAULT_CONFIG, PROBE_HELP, runProbe } from "./probe.ts";
import { DEFAULT_SOCKET } from "./status.ts";

export const HELP = `Usage: egressd check [--socket PATH] | --probe [--config FILE]

Checks the running daemon: the tunnel interface is up, the latest handshake is recent (warning
after 180 s, critical after 300 s), the policy rules and nft table are in place, and the proxy is
listening. Prints one line per check.
  -s, --socket   control socket (default ${DEFAULT_SOCKET})
${PROBE_HELP}Exit codes (nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the daemon could not be reached).
`;

/** Runs `egressd check`. */
export const checkCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    socket: { type: "string", short: "s" },
    probe: { type: "boolean", short: "p" },
    config: { type: "string", short: "c" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => Exit.ok);
  if (values.probe) return runProbe({ configFile: values.config ?? DEFAULT_CONFIG, socket: values.socket ?? DEFAULT_SOCKET });
  if (values.config !== undefined) throw new UsageError("--config is only for --probe");
  let status: DaemonStatus;
  try {
    status = (await controlRequest(values.socket ?? DEFAULT_SOCKET, "status")) as DaemonStatus;
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
