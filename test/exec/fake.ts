/**
 * A fake {@link Runner} for unit tests: it records every argv (and stdin) and answers from scripted
 * replies instead of running anything. Golden tests pin `fake.lines()`.
 *
 * It does not simulate a host; a test scripts the outputs that matter (observations) and lets every
 * other command succeed silently.
 */
import { formatArgv } from "../../lib/exec/argv.ts";
import { CommandError, MissingToolError } from "../../lib/exec/errors.ts";
import type { ChildExit, ChildHandle, RunOptions, RunResult, Runner, StartOptions } from "../../lib/exec/runner.ts";

/** One recorded command. */
export interface FakeCall {
  readonly kind: "run" | "start";
  readonly argv: readonly string[];
  /** stdin as text, or null when none was given. */
  readonly stdin: string | null;
  readonly env: Readonly<Record<string, string>> | undefined;
}

/** A scripted outcome: output (exit 0 unless `exitCode` says otherwise), or an error to throw. */
export type FakeReply = { stdout?: string; stderr?: string; exitCode?: number } | Error;

/** Which calls a reply applies to: an argv prefix (words), a regexp over the formatted line, or a predicate. */
export type FakeMatch = string | RegExp | ((argv: readonly string[]) => boolean);

/** Options for {@link FakeRunner}. */
export interface FakeRunnerOptions {
  /** What unmatched commands do: succeed with empty output (default) or throw. */
  unmatched?: "succeed" | "throw";
}

/** A controllable fake child returned by {@link FakeRunner.start}. */
export interface FakeChild extends ChildHandle {
  /** Makes the child exit as if it had ended on its own. */
  finish(exit?: Partial<ChildExit>): void;
  /** Signals sent with `kill()`. */
  readonly signals: readonly string[];
}

interface Rule {
  match: FakeMatch;
  reply: FakeReply | ((call: FakeCall) => FakeReply);
  once: boolean;
}

/** The fake runner. See the module comment. */
export class FakeRunner implements Runner {
  /** Every call, in order. */
  readonly calls: FakeCall[] = [];
  /** Children started, in order. */
  readonly children: FakeChild[] = [];
  #rules: Rule[] = [];
  #missing = new Set<string>();
  #unmatched: "succeed" | "throw";
  #nextPid = 4000;

  constructor(opts: FakeRunnerOptions = {}) {
    this.#unmatched = opts.unmatched ?? "succeed";
  }

  /** Scripts a reply. Later rules win over earlier ones, so a test can override a fixture. */
  on(match: FakeMatch, reply: FakeReply | ((call: FakeCall) => FakeReply)): this {
    this.#rules.unshift({ match, reply, once: false });
    return this;
  }

  /** Like {@link on}, but the rule is used for one call only. */
  once(match: FakeMatch, reply: FakeReply | ((call: FakeCall) => FakeReply)): this {
    this.#rules.unshift({ match, reply, once: true });
    return this;
  }

  /** Pretends `tool` is not installed: calls to it throw {@link MissingToolError}. */
  missing(tool: string): this {
    this.#missing.add(tool);
    return this;
  }

  /** Forgets recorded calls (not the rules). */
  clear(): void {
    this.calls.length = 0;
  }

  /** Recorded commands as shell-like lines; `start`ed ones end with ` &`, stdin is summarised. */
  lines(filter?: (call: FakeCall) => boolean): string[] {
    return this.calls.filter(filter ?? (() => true)).map((c) => {
      let line = formatArgv(c.argv);
      if (c.stdin !== null) line += `  <stdin ${c.stdin.length} bytes>`;
      if (c.kind === "start") line += " &";
      return line;
    });
  }

  /** Recorded commands that change the host (everything except reads: show/list/dump/--version/pubkey). */
  mutations(): string[] {
    return this.lines((c) => !isReadOnly(c.argv));
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const stdin = opts.stdin === undefined ? null : typeof opts.stdin === "string" ? opts.stdin : new TextDecoder().decode(opts.stdin);
    const call: FakeCall = { kind: "run", argv: [...argv], stdin, env: opts.env };
    const tool = argv[0] ?? "";
    if (this.#missing.has(tool)) throw new MissingToolError(tool, "/fake/bin");
    this.calls.push(call);
    const reply = this.#reply(call);
    if (reply instanceof Error) throw reply;
    const exitCode = reply.exitCode ?? 0;
    if (exitCode !== 0) {
      throw new CommandError({ argv, exitCode, signal: null, stderr: (reply.stderr ?? "").trim(), timedOut: false });
    }
    return { argv, exitCode: 0, stdout: reply.stdout ?? "", stderr: reply.stderr ?? "", durationMs: 0 };
  }

  start(argv: readonly string[], opts: StartOptions = {}): FakeChild {
    const tool = argv[0] ?? "";
    if (this.#missing.has(tool)) throw new MissingToolError(tool, "/fake/bin");
    const call: FakeCall = { kind: "start", argv: [...argv], stdin: null, env: opts.env };
    this.calls.push(call);
    const reply = this.#reply(call);
    if (reply instanceof Error) throw reply;
    let resolveExit!: (e: ChildExit) => void;
    const exited = new Promise<ChildExit>((r) => (resolveExit = r));
    let status: ChildExit | null = null;
    const signals: string[] = [];
    const finish = (exit: Partial<ChildExit> = {}) => {
      if (status) return;
      status = { exitCode: exit.exitCode ?? (exit.signal ? null : 0), signal: exit.signal ?? null };
      resolveExit(status);
    };
    const child: FakeChild = {
      pid: this.#nextPid++,
      argv,
      exited,
      get exitStatus() {
        return status;
      },
      kill(signal: NodeJS.Signals = "SIGTERM") {
        if (status) return;
        signals.push(signal);
        finish({ signal });
      },
      outputTail: () => reply.stderr ?? "",
      finish,
      signals,
    };
    this.children.push(child);
    return child;
  }

  #reply(call: FakeCall): Exclude<FakeReply, Error> | Error {
    const idx = this.#rules.findIndex((r) => matches(r.match, call.argv));
    if (idx < 0) {
      if (this.#unmatched === "throw") return new Error(`FakeRunner: no reply scripted for \`${formatArgv(call.argv)}\``);
      return {};
    }
    const rule = this.#rules[idx]!;
    if (rule.once) this.#rules.splice(idx, 1);
    return typeof rule.reply === "function" ? rule.reply(call) : rule.reply;
  }
}

function matches(match: FakeMatch, argv: readonly string[]): boolean {
  if (typeof match === "function") return match(argv);
  const line = formatArgv(argv);
  if (match instanceof RegExp) return match.test(line);
  return line === match || line.startsWith(match + " ");
}

const READ_WORDS = new Set(["show", "list", "dump", "--version", "-V", "pubkey", "-n"]);

function isReadOnly(argv: readonly string[]): boolean {
  if (argv[0] === "sysctl") return argv[1] === "-n";
  return argv.some((w) => READ_WORDS.has(w));
}
