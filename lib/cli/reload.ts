/**
 * `egressd reload`: asks the running daemon to re-read its config over the control socket and
 * waits for the outcome. Unlike `systemctl reload` (SIGHUP, Type=notify-reload), whose protocol has
 * no way to report a refused reload, it exits 1 and says why when the daemon keeps the old config.
 */
import type { ReloadOutcome } from "../daemon/reload.ts";
import { controlRequest } from "../daemon/control.ts";
import { type Command, err, Exit, out, parseFlags } from "./common.ts";
import { controlSocketPath, SOCKET_FLAGS, SOCKET_HELP } from "./socket.ts";

export const HELP = `Usage: egressd reload [--socket PATH | --config FILE]

Makes the running daemon re-read its config file and apply the difference, as SIGHUP does, and
waits for the result. Live connections are kept. Settings that would rebuild the tunnel (interface,
exit, routing, proxy.allowDestinations, control) are refused with their names: restart for those.
${SOCKET_HELP}
Exit codes: 0 reloaded, 1 refused (the old config stays in force) or the daemon could not be reached,
2 bad flags or config.
`;

/** Runs `egressd reload`. */
export const reloadCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    ...SOCKET_FLAGS,
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => Exit.ok);
  const outcome = (await controlRequest(controlSocketPath(values), "reload")) as ReloadOutcome;
  if (!outcome.ok) {
    err(`egressd reload: refused, the old config stays in force: ${outcome.error ?? "no reason given"}`);
    return Exit.failure;
  }
  await out(`reloaded${outcome.changed?.length ? `: ${outcome.changed.join(", ")}` : ""}\n`);
  return Exit.ok;
};
