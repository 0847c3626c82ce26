/** `egressd version`: the version and the runtime it was built with. */
import pkg from "../../package.json" with { type: "json" };
import { type Command, Exit, out, parseFlags } from "./common.ts";

/** The egressd version, from package.json at build time. */
export const VERSION: string = pkg.version;

/** The runtime, e.g. `bun 1.4.5`. */
export const RUNTIME = `bun ${Bun.version}`;

export const HELP = `Usage: egressd version [--json]

Prints the egressd version and the runtime it runs on.
`;

/** Runs `egressd version`. */
export const versionCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, { json: { type: "boolean" }, help: { type: "boolean", short: "h" } });
  if (values.help) return out(HELP).then(() => Exit.ok);
  if (values.json) await out(JSON.stringify({ version: VERSION, runtime: RUNTIME }) + "\n");
  else await out(`egressd ${VERSION} (${RUNTIME}, ${process.platform}/${process.arch})\n`);
  return Exit.ok;
};
