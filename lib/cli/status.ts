/** `egressd status`: asks the running daemon over its control socket and prints what it says. */
import { controlRequest } from "../daemon/control.ts";
import { type DaemonStatus, renderStatus } from "../daemon/status.ts";
import { type Command, Exit, out, parseFlags } from "./common.ts";

/** Where the daemon's control socket is unless `--socket` says otherwise. */
export const DEFAULT_SOCKET = "/run/egressd/control.sock";

export const HELP = `Usage: egressd status [--json] [--socket PATH]

Shows the running daemon's tunnel (implementation, interface, endpoint, latest handshake, transfer),
its peer as \`wg show\` does, the proxy (listeners, connections, bytes, refusals by reason), routing
and kill-switch state, and the last reconcile with its repairs.
  --json         print the raw status object
  -s, --socket   control socket (default ${DEFAULT_SOCKET})
Exit codes: 0 shown, 1 the daemon could not be reached.
`;

/** Runs `egressd status`. */
export const statusCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    json: { type: "boolean" },
    socket: { type: "string", short: "s" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => Exit.ok);
  const status = (await controlRequest(values.socket ?? DEFAULT_SOCKET, "status")) as DaemonStatus;
  await out(values.json ? JSON.stringify(status, null, 2) + "\n" : renderStatus(status));
  return Exit.ok;
};
