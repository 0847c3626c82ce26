/**
 * `egressd check-config --config FILE`: validates a config, checks its secret files, and prints the
 * effective config (defaults filled in, secret paths resolved). Exit 0 when valid, 2 when not.
 */
import { effectiveConfig } from "../config/effective.ts";
import { ConfigError, MAX_PROBLEMS_SHOWN, shownProblems } from "../config/errors.ts";
import { MAX_DEPTH, MAX_ITEMS, MAX_MEMBERS } from "../config/json-limits.ts";
import { loadConfig, MAX_CONFIG_BYTES } from "../config/load.ts";
import { type Command, err, Exit, out, parseFlags, UsageError } from "./common.ts";

export const HELP = `Usage: egressd check-config --config FILE [--quiet]

Validates FILE and the secret files it names (they must exist, hold a WireGuard key, and not be
readable by others), then prints the effective config with every default filled in. Secret values
are never printed; the config only refers to them by path.
  -c, --config FILE  the config file (JSON)
  -q, --quiet        print nothing when the config is valid
FILE must be a regular file of at most ${MAX_CONFIG_BYTES / 1024 ** 2} MiB of UTF-8 JSON, nested at most ${MAX_DEPTH} levels deep, with
at most ${MAX_ITEMS} items in a list and ${MAX_MEMBERS} members in an object. At most ${MAX_PROBLEMS_SHOWN} problems are printed,
then how many more there were.
Exit codes: 0 valid, 2 invalid (one line per problem on stderr, naming the field).
`;

/** Runs `egressd check-config`. */
export const checkConfigCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    config: { type: "string", short: "c" },
    quiet: { type: "boolean", short: "q" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => Exit.ok);
  if (!values.config) throw new UsageError("--config FILE is required");
  try {
    const config = loadConfig(values.config, { warn: (m) => err(`warning: ${m}`) });
    if (!values.quiet) await out(JSON.stringify(effectiveConfig(config), null, 2) + "\n");
    return Exit.ok;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of shownProblems(e.problems)) err(`${e.file ?? "config"}: ${p.message}`);
    return Exit.usage;
  }
};
