/**
 * What every subcommand shares: exit codes, usage errors and argv parsing that turns a bad flag into
 * exit code 2 with a message naming the flag.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Process exit codes, as documented in `egressd --help` and the README. */
export const Exit = {
  /** Success. */
  ok: 0,
  /** A runtime failure: the host, the network or a peer did not cooperate. */
  failure: 1,
  /** Bad usage or a bad config: fix the command line or the file. */
  usage: 2,
} as const;

/** A command line the command cannot use. Printed with the command's usage hint; exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A subcommand: takes its own argv (after the subcommand name), returns an exit code. */
export type Command = (argv: string[]) => Promise<number>;

/**
 * Parses argv strictly with `node:util` parseArgs; unknown flags and missing values become a
 * {@link UsageError} naming the flag.
 */
export function parseFlags<T extends ParseArgsConfig["options"]>(argv: string[], options: T, opts: { positionals?: boolean } = {}) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: opts.positionals ?? false });
  } catch (e) {
    if (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS")) {
      throw new UsageError(e.message, { cause: e });
    }
    throw e;
  }
}

/** Writes to stdout and waits until it is flushed, so that exit codes follow complete output. */
export async function out(text: string): Promise<void> {
  await new Promise<void>((resolve, reject) => process.stdout.write(text, (err) => (err ? reject(err) : resolve())));
}

/** Writes one line to stderr. */
export function err(text: string): void {
  process.stderr.write(text.endsWith("\n") ? text : text + "\n");
}
