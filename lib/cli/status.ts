/** `egressd status`: asks the running daemon over its control socket and prints what it says. */
import { controlRequest } from "../daemon/control.ts";
import { type DaemonStatus, renderStatus } from "../daemon/status.ts";
import { type Command, Exit, out, parseFlags } from "./common.ts";
import { controlSocketPath, SOCKET_FLAGS, SOCKET_HELP } from "./socket.ts";

export const HELP = `Usage: egressd status [--json] [--socket PATH | --config FILE]

Shows the running daemon's tunnel (implementation, interface, endpoint, latest handshake, transfer),
its peer as \`wg show\` does, the proxy (listeners, connections, bytes, refusals by reason), routing
and kill-switch state, and the last reconcile with its repairs.
  --json             print the raw status object
${SOCKET_HELP}
Exit codes: 0 shown, 1 the daemon could not be reached, 2 bad flags or config.
`;

/** Runs `egressd status`. */
export const statusCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    json: { type: "boolean" },
    ...SOCKET_FLAGS,
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => Exit.ok);
  const status = (await controlRequest(controlSocketPath(values), "status")) as DaemonStatus;
  await out(values.json ? JSON.stringify(status, null, 2) + "\n" : renderStatus(status));
  return Exit.ok;
};
