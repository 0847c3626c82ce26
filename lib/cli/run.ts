/** `egressd run --config FILE`: the daemon. */
import { ConfigError } from "../config/errors.ts";
import { loadConfig } from "../config/load.ts";
import { type Command, err, Exit, out, parseFlags, UsageError } from "./common.ts";

export const HELP = `Usage: egressd run --config FILE [--log-format journal|text|json] [--log-level LEVEL]

Runs the daemon.
`;

/** Runs `egressd run`. */
export const runCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    config: { type: "string", short: "c" },
    "log-format": { type: "string" },
    "log-level": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => Exit.ok);
  if (!values.config) throw new UsageError("--config FILE is required");
  try {
    loadConfig(values.config, { warn: (m) => err(`warning: ${m}`) });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) err(`${e.file ?? "config"}: ${p.message}`);
    return Exit.usage;
  }
  return Exit.ok;
};
