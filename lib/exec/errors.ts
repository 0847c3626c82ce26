/**
 * Errors raised by the command runner.
 *
 * They carry what an operator needs to act: the argv that ran (never stdin, which may hold a key),
 * the exit code or signal, and stderr. Callers match on these fields, not on message text.
 */
import { formatArgv } from "./argv.ts";
import { debianPackageFor } from "./packages.ts";

/** Options shared by the runner's errors. */
export interface CommandErrorInit {
  /** The command as run, without any namespace/uid prefix. */
  argv: readonly string[];
  /** Exit status; null when the process was killed by a signal. */
  exitCode: number | null;
  /** Signal name that ended the process, if any (e.g. `SIGKILL` after a timeout). */
  signal: string | null;
  /** Standard error, trimmed. */
  stderr: string;
  /** True when the runner killed the command because it ran past its timeout. */
  timedOut: boolean;
  /** Underlying cause, if the failure came from spawning rather than from the exit status. */
  cause?: unknown;
}

/**
 * A command exited unsuccessfully or ran out of time.
 *
 * `stdout` is deliberately absent: `wg show dump` prints the private key, and errors end up in logs.
 */
export class CommandError extends Error {
  override name = "CommandError";
  /** The command as run, without any namespace/uid prefix. */
  readonly argv: readonly string[];
  /** Exit status; null when killed by a signal. */
  readonly exitCode: number | null;
  /** Signal that ended the process, if any. */
  readonly signal: string | null;
  /** Standard error, trimmed. */
  readonly stderr: string;
  /** True when the runner's timeout killed it. */
  readonly timedOut: boolean;

  constructor(init: CommandErrorInit) {
    const how = init.timedOut
      ? `timed out${init.signal ? ` (killed with ${init.signal})` : ""}`
      : init.exitCode === null
        ? `was killed by ${init.signal ?? "a signal"}`
        : `exited with status ${init.exitCode}`;
    const detail = init.stderr ? `: ${firstLines(init.stderr, 3)}` : "";
    super(`\`${formatArgv(init.argv)}\` ${how}${detail}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.argv = init.argv;
    this.exitCode = init.exitCode;
    this.signal = init.signal;
    this.stderr = init.stderr;
    this.timedOut = init.timedOut;
  }
}

/**
 * A tool the daemon needs is not installed (not found on PATH, or ENOENT when spawning).
 * The message names the Debian package to install.
 */
export class MissingToolError extends Error {
  override name = "MissingToolError";
  /** The executable name, e.g. `nft`. */
  readonly tool: string;
  /** The Debian package that provides it, e.g. `nftables`; null when unknown. */
  readonly package: string | null;
  /** The PATH that was searched. */
  readonly searchedPath: string;

  constructor(tool: string, searchedPath: string, options?: { cause?: unknown }) {
    const pkg = debianPackageFor(tool);
    const hint = pkg ? `; install the Debian package "${pkg}"` : "";
    super(`required tool "${tool}" was not found on PATH (${searchedPath})${hint}`, options);
    this.tool = tool;
    this.package = pkg;
    this.searchedPath = searchedPath;
  }
}

function firstLines(text: string, n: number): string {
  const lines = text.split("\n");
  return lines.length <= n ? text : `${lines.slice(0, n).join(" | ")} (+${lines.length - n} lines)`;
}
