/**
 * Parses a command's `--help` text (lib/cli/*.ts HELP) into its usage line, prose, preformatted
 * blocks and flags. The man page and the shell completions are made from this, so the help text
 * stays the one place a flag is documented.
 *
 * A flag line is indented and starts with `-x, --long` or `--long`, then optionally one argument
 * word, then two or more spaces and the description; deeper-indented lines after it continue the
 * description. Flags listed after a line `Internal:` are marked internal (not completed).
 */

/** One flag of a command. */
export interface Flag {
  /** `-c`, when the flag has a short form. */
  short?: string;
  /** `--config`. */
  long: string;
  /** The argument word (`FILE`, `ADDR:PORT`, `system|tunnel`), when the flag takes one. */
  arg?: string;
  /** Values the argument can take, from `a|b|c` in the flag line or the usage line. */
  choices?: string[];
  desc: string;
  /** Listed under `Internal:`: for egressd itself, not for people. */
  internal: boolean;
}

/** A run of the help text between flags. */
export type Block =
  | { kind: "para"; text: string }
  | { kind: "pre"; lines: string[] }
  | { kind: "flags"; flags: Flag[] };

/** A parsed help text. */
export interface Help {
  /** The usage line without `Usage: `. */
  usage: string;
  blocks: Block[];
  /** Every flag, in order, plus `-h, --help`. */
  flags: Flag[];
}

const FLAG = /^ {1,8}(?:(-[A-Za-z]), )?(--[a-z][a-z0-9-]*)(?: (\S+))?(?: {2,}(.*))?$/;

/** Parses one HELP text. */
export function parseHelp(text: string): Help {
  const lines = text.replace(/\n+$/, "").split("\n");
  const first = lines.shift() ?? "";
  if (!first.startsWith("Usage: ")) throw new Error(`help text does not start with "Usage: ": ${first}`);
  const usage = first.slice("Usage: ".length);
  // The usage line names arguments the flag lines may leave out: `[--socket PATH]`, `journal|text|json`.
  const usageArgs = new Map([...usage.matchAll(/(--[a-z][a-z0-9-]*) ([A-Z][A-Z_:]*|[a-z0-9]+(?:\|[a-z0-9]+)+)/g)].map((m) => [m[1]!, m[2]!]));
  const blocks: Block[] = [];
  const flags: Flag[] = [];
  let internal = false;
  let last: Block | undefined;
  let lastFlag: Flag | undefined;
  for (const line of lines) {
    if (line.trim() === "") {
      last = undefined;
      lastFlag = undefined;
      continue;
    }
    const m = FLAG.exec(line);
    if (m) {
      const fromUsage = usageArgs.get(m[2]!);
      const arg = m[3] ?? fromUsage;
      const listed = [arg, fromUsage].find((a) => a !== undefined && /^[a-z0-9]+(\|[a-z0-9]+)+$/.test(a));
      const choices = listed?.split("|");
      const flag: Flag = { long: m[2]!, desc: (m[4] ?? "").trim(), internal };
      if (m[1]) flag.short = m[1];
      if (arg) flag.arg = arg;
      if (choices) flag.choices = choices;
      if (last?.kind !== "flags") {
        last = { kind: "flags", flags: [] };
        blocks.push(last);
      }
      last.flags.push(flag);
      flags.push(flag);
      lastFlag = flag;
      continue;
    }
    if (lastFlag && /^ {10,}\S/.test(line)) {
      lastFlag.desc = `${lastFlag.desc} ${line.trim()}`.trim();
      continue;
    }
    lastFlag = undefined;
    if (/^\s/.test(line)) {
      if (last?.kind !== "pre") {
        last = { kind: "pre", lines: [] };
        blocks.push(last);
      }
      last.lines.push(line.replace(/^ {2}/, ""));
      continue;
    }
    if (line === "Internal:") internal = true;
    // A line that ends a sentence, or starts a labelled one ("Exit codes: ..."), is its own paragraph.
    if (last?.kind === "para" && !/^[A-Z][\w ()]*: /.test(line)) last.text += ` ${line}`;
    else {
      last = { kind: "para", text: line };
      blocks.push(last);
    }
  }
  if (!flags.some((f) => f.long === "--help")) flags.push({ short: "-h", long: "--help", desc: "show this help", internal: false });
  return { usage, blocks, flags };
}

/** True when the flag's argument is a path, so the shell should complete file names. */
export function takesFile(flag: Flag): boolean {
  return flag.arg !== undefined && /^(FILE|PATH|DIR)\b/.test(flag.arg);
}
