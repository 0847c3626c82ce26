/**
 * The one runner for `ip`, `nft`, `wg` and `wireguard-go`.
 *
 * - Commands are argv arrays, never shell strings; nothing is ever interpreted by a shell.
 * - Every child gets `LC_ALL=C`, so the stderr we match on is the untranslated text.
 * - Secrets travel on stdin (`nft -f -`, `wg setconf <if> /dev/stdin`), never in argv, and neither
 *   stdin nor stdout is ever logged or put into an error (`wg show dump` prints the private key).
 * - Each command is logged at debug level as `[#] wg set ...`, like wg-quick does.
 * - A non-zero exit throws {@link CommandError} carrying argv, exit code and stderr; a tool that is not
 *   installed throws {@link MissingToolError} naming the Debian package.
 *
 * It does not retry, and it does not know what the commands mean: that is lib/host's business.
 * A `prefix` (e.g. `ip netns exec <ns> setpriv --reuid ...`) lets the test lab run the very same host
 * code inside a network namespace as an unprivileged uid; tools are resolved on PATH *before* the
 * prefix is applied, so a missing tool is reported as such and not as a failure of `ip netns exec`.
 */
import { formatArgv } from "./argv.ts";
import { CommandError, MissingToolError } from "./errors.ts";
import { silentLogger, type Logger } from "../log/logger.ts";

/** Per-call options for {@link Runner.run}. */
export interface RunOptions {
  /** Written to the child's stdin, then stdin is closed. Default: no stdin (`/dev/null`). */
  stdin?: string | Uint8Array;
  /** Kill the command (SIGKILL) after this many milliseconds. Default: the runner's `timeoutMs`. */
  timeoutMs?: number;
  /** Extra environment variables for this call. */
  env?: Readonly<Record<string, string>>;
}

/** What a successful {@link Runner.run} returns. */
export interface RunResult {
  /** The command as requested (without prefix). */
  readonly argv: readonly string[];
  /** Always 0: non-zero exits throw. */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

/** Per-call options for {@link Runner.start}. */
export interface StartOptions {
  /** Extra environment variables for the child. */
  env?: Readonly<Record<string, string>>;
  /** Receives each line the child writes (stdout and stderr). Default: lines are only kept in the tail. */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
}

/** How a started child ended. */
export interface ChildExit {
  /** Exit status; null when killed by a signal. */
  readonly exitCode: number | null;
  /** Signal name, e.g. `SIGTERM`; null on a normal exit. */
  readonly signal: string | null;
}

/** A long-running child started with {@link Runner.start} (used for `wireguard-go -f`). */
export interface ChildHandle {
  /** Process id of the child itself (the prefix programs exec, they do not fork). */
  readonly pid: number;
  /** The command as requested (without prefix). */
  readonly argv: readonly string[];
  /** Resolves once the child has exited and been reaped. Never rejects. */
  readonly exited: Promise<ChildExit>;
  /** How it ended, or null while it runs. */
  readonly exitStatus: ChildExit | null;
  /** Sends a signal (default SIGTERM). A no-op once the child has exited. */
  kill(signal?: NodeJS.Signals): void;
  /** The last lines the child printed (stdout and stderr interleaved), for error messages. */
  outputTail(): string;
}

/** The interface every host module takes. Tests substitute {@link FakeRunner}. */
export interface Runner {
  /** Runs a command to completion. Throws {@link CommandError} on a non-zero exit or timeout. */
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts a long-running child. Throws {@link MissingToolError} if the program is not installed. */
  start(argv: readonly string[], opts?: StartOptions): ChildHandle;
}

/** Options for {@link createRunner}. */
export interface RunnerOptions {
  /**
   * Words put before every command after the tool is resolved, e.g.
   * `["ip", "netns", "exec", "gw", "setpriv", "--reuid", "64000", ...]`. Every word must exec, not fork,
   * so that pids and signals reach the real tool. Default: none.
   */
  prefix?: readonly string[];
  /** PATH used to find tools and given to children. Default: `process.env.PATH`. */
  path?: string;
  /** Environment added to every child (on top of `process.env`). Default: none. */
  env?: Readonly<Record<string, string>>;
  /** Default timeout per {@link Runner.run} call, in ms. Default 10000. */
  timeoutMs?: number;
  /** Where `[#] argv` debug lines go. Default: {@link silentLogger}. */
  log?: Logger;
}

const TAIL_LINES = 40;

/** Creates the real runner. See {@link RunnerOptions} for defaults. */
export function createRunner(opts: RunnerOptions = {}): Runner {
  const prefix = opts.prefix ?? [];
  const path = opts.path ?? process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin";
  const baseEnv = opts.env ?? {};
  const defaultTimeout = opts.timeoutMs ?? 10_000;
  const log = opts.log ?? silentLogger;

  function resolve(argv: readonly string[]): string[] {
    const tool = argv[0];
    if (tool === undefined || tool === "") throw new TypeError("runner: empty argv");
    const found = tool.includes("/") ? tool : Bun.which(tool, { PATH: path });
    if (!found) throw new MissingToolError(tool, path);
    return [...prefix, found, ...argv.slice(1)];
  }

  function environment(extra: Readonly<Record<string, string>> | undefined): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    Object.assign(env, baseEnv, extra ?? {});
    env.PATH = path;
    env.LC_ALL = "C";
    return env;
  }

  function spawnOrExplain<T>(argv: readonly string[], spawn: () => T): T {
    try {
      return spawn();
    } catch (err) {
      if (isEnoent(err)) throw new MissingToolError(argv[0] ?? "", path, { cause: err });
      throw err;
    }
  }

  return {
    async run(argv, runOpts = {}) {
      const cmd = resolve(argv);
      if (log.debugEnabled) log.debug(`[#] ${formatArgv(argv)}`);
      const started = performance.now();
      const stdin = runOpts.stdin === undefined ? "ignore" : typeof runOpts.stdin === "string" ? new TextEncoder().encode(runOpts.stdin) : runOpts.stdin;
      const proc = spawnOrExplain(argv, () =>
        Bun.spawn(cmd, { stdin, stdout: "pipe", stderr: "pipe", env: environment(runOpts.env) }),
      );
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        proc.kill("SIGKILL");
      }, runOpts.timeoutMs ?? defaultTimeout);
      try {
        const [stdout, stderr, exitCode] = await Promise.all([
          new Response(proc.stdout).text(),
          new Response(proc.stderr).text(),
          proc.exited,
        ]);
        const signal = signalName(proc.signalCode);
        if (timedOut || exitCode !== 0 || signal !== null) {
          throw new CommandError({ argv, exitCode: signal === null ? exitCode : null, signal, stderr: stderr.trim(), timedOut });
        }
        return { argv, exitCode, stdout, stderr, durationMs: performance.now() - started };
      } finally {
        clearTimeout(timer);
      }
    },

    start(argv, startOpts = {}) {
      const cmd = resolve(argv);
      if (log.debugEnabled) log.debug(`[#] ${formatArgv(argv)} &`);
      const proc = spawnOrExplain(argv, () =>
        Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: environment(startOpts.env) }),
      );
      const tail: string[] = [];
      const onLine = (line: string, stream: "stdout" | "stderr") => {
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        startOpts.onLine?.(line, stream);
      };
      const drained = Promise.all([pumpLines(proc.stdout, (l) => onLine(l, "stdout")), pumpLines(proc.stderr, (l) => onLine(l, "stderr"))]);
      let status: ChildExit | null = null;
      const exited = (async (): Promise<ChildExit> => {
        const code = await proc.exited;
        await drained.catch(() => undefined);
        const signal = signalName(proc.signalCode);
        const exit: ChildExit = { exitCode: signal === null ? code : null, signal };
        status = exit;
        return exit;
      })();
      return {
        pid: proc.pid,
        argv,
        exited,
        get exitStatus() {
          return status;
        },
        kill(signal: NodeJS.Signals = "SIGTERM") {
          if (status === null && proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
        },
        outputTail: () => tail.join("\n"),
      };
    },
  };
}

async function pumpLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  buf += decoder.decode();
  if (buf !== "") onLine(buf);
}

function signalName(code: NodeJS.Signals | number | null | undefined): string | null {
  if (code === null || code === undefined) return null;
  return typeof code === "number" ? `signal ${code}` : code;
}

function isEnoent(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "ENOENT";
}
