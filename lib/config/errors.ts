/**
 * Turns zod issues into one line per problem, each naming the JSON path, the bad value and what is
 * expected: `proxy.listen[0]: "0.0.0.0:1080" is a wildcard address; set proxy.allowWildcardBind ...`.
 */
import { z } from "zod";

/** One problem found in a config. */
export interface ConfigProblem {
  /**
   * JSON path as the user writes it: `proxy.listen[0]`, or `(root)`; `(file)` for the file itself,
   * `(more)` for the line {@link shownProblems} adds.
   */
  readonly path: string;
  /**
   * The complete one-line message, path first (`(file)` and `(more)` problems leave the path out, as their
   * message follows the file name: `config.json: does not exist`). Print it after {@link ConfigError.file}.
   */
  readonly message: string;
}

/** Most problems printed for one config; a list of 10,000 bad items must not flood the terminal or the journal. */
export const MAX_PROBLEMS_SHOWN = 20;

/**
 * The problems to print: the first `max` (default {@link MAX_PROBLEMS_SHOWN}), then, when there were
 * more, one `(more)` entry saying how many.
 */
export function shownProblems(problems: readonly ConfigProblem[], max = MAX_PROBLEMS_SHOWN): ConfigProblem[] {
  if (problems.length <= max) return [...problems];
  const more = problems.length - max;
  return [...problems.slice(0, max), { path: "(more)", message: `... and ${more} more problem${more === 1 ? "" : "s"} (only the first ${max} are shown)` }];
}

/**
 * A config that cannot be used. `problems` has one entry per field; `message` joins the first
 * {@link MAX_PROBLEMS_SHOWN} of them, as {@link shownProblems} gives them.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** Every problem found, in document order. */
  readonly problems: readonly ConfigProblem[];
  /** The config file, when there is one. */
  readonly file: string | undefined;

  constructor(problems: readonly ConfigProblem[], opts: { file?: string; cause?: unknown } = {}) {
    super(shownProblems(problems).map((p) => p.message).join("\n"), { cause: opts.cause });
    this.problems = problems;
    this.file = opts.file;
  }
}

/** Renders a path as `a.b[0].c`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out === "" ? "(root)" : out;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}

/** Unwraps defaults, nullables, pipes, optionals and list items down to an object schema, if there is one. */
function objectKeys(schema: z.ZodType | undefined, path: readonly PropertyKey[]): string[] | null {
  let s: z.ZodType | undefined = schema;
  for (let i = 0; i <= path.length && s; ) {
    const def = (s as { def?: { type?: string; innerType?: z.ZodType; in?: z.ZodType } }).def;
    if (!def) return null;
    if (def.type === "default" || def.type === "nullable" || def.type === "optional" || def.type === "prefault") {
      s = def.innerType;
      continue;
    }
    if (def.type === "pipe") {
      s = def.in;
      continue;
    }
    if (def.type === "array" && i < path.length && typeof path[i] === "number") {
      s = (def as { element?: z.ZodType }).element;
      i++;
      continue;
    }
    if (def.type !== "object") return null;
    const shape = (s as z.ZodObject).shape as Record<string, z.ZodType>;
    if (i === path.length) return Object.keys(shape);
    s = shape[String(path[i])];
    i++;
  }
  return null;
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
    }
  }
  return d[a.length]![b.length]!;
}

/** `an array`, `an integer`, `a string`: zod's expected-type names as English. */
function expected(type: string): string {
  if (type === "int") return "an integer";
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** True for a message already phrased to follow the value: `is ...`, `must ...`. */
function followsValue(msg: string): boolean {
  return /^(is|must|needs|has) /.test(msg);
}

function describe(issue: z.core.$ZodIssue, input: unknown): string {
  const value = valueAt(input, issue.path);
  const shown = show(value);
  switch (issue.code) {
    case "invalid_type":
      if (value === undefined) return `is required (${issue.expected})`;
      return `${shown} is ${kind(value)}, expected ${expected(issue.expected)}`;
    case "too_small":
      if (issue.origin === "array") return `${shown} needs at least ${issue.minimum} item(s)`;
      if (issue.origin === "string") return `${shown} is too short (at least ${issue.minimum} character(s))`;
      return `${shown} is below the minimum ${issue.minimum}`;
    case "too_big":
      if (issue.origin === "array") return `${shown} has more than ${issue.maximum} item(s)`;
      if (issue.origin === "string") return `${shown} is too long (at most ${issue.maximum} characters)`;
      return `${shown} is above the maximum ${issue.maximum}`;
    case "invalid_value":
      return `${shown} is not one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "invalid_union":
      return followsValue(issue.message) ? `${shown} ${issue.message}` : `${shown} is not valid here`;
    case "not_multiple_of":
      return `${shown} must be a whole number`;
    default: {
      const msg = issue.message;
      // A cross-field issue can name a field the file leaves to its default; the schema passes
      // that default as the issue's input (an explicit `input: undefined` means "show no value").
      let what = shown;
      if (value === undefined) what = issue.input === undefined ? "" : `${show(issue.input)} (the default)`;
      if (what === "") return msg;
      return followsValue(msg) ? `${what} ${msg}` : `${what}: ${msg}`;
    }
  }
}

/**
 * Converts a failed parse into problems, one per field. `schema` is used to list the known keys when
 * a key is unknown (with a "did you mean" for near misses). Parse with `{ reportInput: true }`, so
 * that a cross-field issue about a defaulted field can show the default it is about.
 */
export function problemsFromZod(error: z.ZodError, input: unknown, schema?: z.ZodType): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      const known = objectKeys(schema, issue.path) ?? [];
      for (const key of issue.keys) {
        const path = formatPath([...issue.path, key]);
        const near = known.filter((k) => distance(k, key) <= 2);
        const hint = near.length ? `; did you mean "${near[0]}"?` : known.length ? `; known keys: ${known.join(", ")}` : "";
        out.push({ path, message: `${path}: unknown key${hint}` });
      }
      continue;
    }
    const path = formatPath(issue.path);
    out.push({ path, message: `${path}: ${describe(issue, input)}` });
  }
  return out;
}
