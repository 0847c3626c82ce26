/** `egressd version`: the version, the git commit it was built from, and the runtime. */
import pkg from "../../package.json" with { type: "json" };
import { type Command, Exit, out, parseFlags } from "./common.ts";

/** Set by scripts/build.sh (`bun build --define`); absent when run from source or built without it. */
declare const EGRESSD_COMMIT: string | undefined;

/** The egressd version, from package.json at build time. */
export const VERSION: string = pkg.version;

/** The git commit the binary was built from (`-dirty` with uncommitted changes), or `unknown`. */
export const COMMIT: string = typeof EGRESSD_COMMIT === "string" && EGRESSD_COMMIT ? EGRESSD_COMMIT : "unknown";

/** The runtime, e.g. `bun 1.4.5`. */
export const RUNTIME = `bun ${Bun.version}`;

export const HELP = `Usage: egressd version [--json]

Prints the egressd version, the git commit it was built from ("unknown" when built outside a git
checkout, or run from source) and the runtime it runs on.
      --json     print {"version", "commit", "runtime"} as JSON
`;

/** Runs `egressd version`. */
export const versionCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, { json: { type: "boolean" }, help: { type: "boolean", short: "h" } });
  if (values.help) return out(HELP).then(() => Exit.ok);
  if (values.json) await out(JSON.stringify({ version: VERSION, commit: COMMIT, runtime: RUNTIME }) + "\n");
  else await out(`egressd ${VERSION} (commit ${COMMIT}, ${RUNTIME}, ${process.platform}/${process.arch})\n`);
  return Exit.ok;
};
