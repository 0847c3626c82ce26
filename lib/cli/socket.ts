/**
 * Where the running daemon's control socket is, for the commands that talk to it (status, reload,
 * check): `--socket PATH`, or `control.socket` from `--config FILE`, or the default.
 */
import { ConfigError, shownProblems } from "../config/errors.ts";
import { loadConfig } from "../config/load.ts";
import { UsageError } from "./common.ts";

/** Where the daemon's control socket is unless `--socket` or `--config` says otherwise. */
export const DEFAULT_SOCKET = "/run/egressd/control.sock";

/** The flags that pick the socket, for `parseFlags`. */
export const SOCKET_FLAGS = {
  socket: { type: "string", short: "s" },
  config: { type: "string", short: "c" },
} as const;

/** Their `--help` lines. */
export const SOCKET_HELP = `  -s, --socket PATH  control socket (default ${DEFAULT_SOCKET})
  -c, --config FILE  use control.socket from the daemon's config file instead`;

/**
 * The socket path the flags name. With `--config`, the config is loaded without its secret files
 * (whoever runs status may not be able to read the key). Throws {@link UsageError} for both flags
 * at once or for a config that does not load, naming the file and the field.
 */
export function controlSocketPath(flags: { socket?: string; config?: string }): string {
  if (flags.socket !== undefined && flags.config !== undefined) throw new UsageError("--socket and --config both name the socket; give one");
  if (flags.config === undefined) return flags.socket ?? DEFAULT_SOCKET;
  try {
    return loadConfig(flags.config, { checkFiles: false }).control.socket;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const lines = shownProblems(e.problems).map((p) => `${e.file ?? flags.config}: ${p.message}`);
    throw new UsageError(lines.join("\n"), { cause: e });
  }
}
