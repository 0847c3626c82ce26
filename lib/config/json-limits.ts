/**
 * Bounds on a config's JSON, checked before the schema sees it: how deep it nests (on the text,
 * before JSON.parse, whose recursion a 100k-deep document exhausts), how long a list or an object
 * is, and numbers JSON.parse turns into Infinity.
 *
 * The text scanner is deliberately lax: it follows strings, brackets, commas and colons to know
 * where it is, and leaves grammar to JSON.parse and json-position.ts. It never recurses.
 */
import { type ConfigProblem, formatPath } from "./errors.ts";
import { positionOf } from "./json-position.ts";

/** Deepest nesting of objects and arrays accepted (the schema needs 4). */
export const MAX_DEPTH = 64;
/** Most items in one list; it keeps the schema's work (and its error list) bounded. */
export const MAX_ITEMS = 10_000;
/**
 * Most members in one object. The schema's objects have at most 15 keys, and each unknown one costs
 * a "did you mean" search, so this is lower than {@link MAX_ITEMS}.
 */
export const MAX_MEMBERS = 1000;

type Key = string | number;

/** Where {@link scan} stopped. */
interface Stop {
  readonly offset: number;
  readonly path: Key[];
  readonly tooDeep: boolean;
}

interface Frame {
  readonly array: boolean;
  key: Key | null;
  awaitingKey: boolean;
}

function pathOf(frames: readonly Frame[]): Key[] {
  const out: Key[] = [];
  for (const f of frames) if (f.key !== null) out.push(f.key);
  return out;
}

/** Walks `text` until `stopAt` or until nesting passes `maxDepth`; null when neither happens. */
function scan(text: string, maxDepth: number, stopAt: number): Stop | null {
  const frames: Frame[] = [];
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) j += 2;
        else if (d === 0x22) break;
        else j++;
      }
      const top = frames.at(-1);
      if (top && !top.array && top.awaitingKey) {
        const raw = text.slice(i, j + 1);
        try {
          top.key = JSON.parse(raw) as string;
        } catch {
          top.key = raw.slice(1, -1);
        }
      }
      if (stopAt <= j) return { offset: stopAt, path: pathOf(frames), tooDeep: false };
      i = j;
      continue;
    }
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    if (i >= stopAt) return { offset: stopAt, path: pathOf(frames), tooDeep: false };
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const array = c === 0x5b;
      frames.push({ array, key: array ? 0 : null, awaitingKey: !array });
      if (frames.length > maxDepth) return { offset: i, path: pathOf(frames.slice(0, -1)), tooDeep: true };
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
    } else if (c === 0x2c /* , */) {
      const top = frames.at(-1);
      if (top?.array) top.key = (top.key as number) + 1;
      else if (top) top.awaitingKey = true;
    } else if (c === 0x3a /* : */) {
      const top = frames.at(-1);
      if (top && !top.array) top.awaitingKey = false;
    }
  }
  return null;
}

/** The config field a deep path belongs to: its leading object keys (`proxy.listen`), or `(root)`. */
function fieldOf(path: readonly Key[]): string {
  const keys: Key[] = [];
  for (const k of path) {
    if (typeof k !== "string") break;
    keys.push(k);
  }
  return formatPath(keys);
}

/**
 * Returns a problem when `text` nests objects and arrays deeper than `maxDepth` (default
 * {@link MAX_DEPTH}), naming the field and the line and column where it goes too deep; else null.
 */
export function jsonDepthProblem(text: string, maxDepth = MAX_DEPTH): ConfigProblem | null {
  const stop = scan(text, maxDepth, Infinity);
  if (!stop) return null;
  const { line, column } = positionOf(text, stop.offset);
  const path = fieldOf(stop.path);
  return { path, message: `${path}: nested more than ${maxDepth} levels deep (at line ${line} column ${column})` };
}

/** The path of the value (or key) at `offset` in JSON `text`, as JSON.parse would build it; [] at the top. */
export function jsonPathAt(text: string, offset: number): Key[] {
  return scan(text, Infinity, offset)?.path ?? [];
}

/**
 * Problems in a parsed value that the schema would report badly or slowly: numbers that overflowed
 * to ±Infinity (JSON.stringify shows them as null), lists longer than {@link MAX_ITEMS} and
 * objects with more than {@link MAX_MEMBERS} members. Call it on what JSON.parse returned for text within {@link MAX_DEPTH}.
 */
export function jsonValueProblems(value: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const visit = (v: unknown, path: Key[]) => {
    if (typeof v === "number") {
      if (!Number.isFinite(v)) {
        const p = formatPath(path);
        out.push({ path: p, message: `${p}: the number is too large to represent (it would be ${v > 0 ? "" : "-"}Infinity)` });
      }
      return;
    }
    if (v === null || typeof v !== "object") return;
    const keys = Array.isArray(v) ? null : Object.keys(v);
    const length = keys ? keys.length : (v as unknown[]).length;
    const max = keys ? MAX_MEMBERS : MAX_ITEMS;
    if (length > max) {
      const p = formatPath(path);
      const what = keys ? `${length} members; an object holds` : `${length} items; a list holds`;
      out.push({ path: p, message: `${p}: has ${what} at most ${max}` });
      return;
    }
    if (keys) for (const k of keys) visit((v as Record<string, unknown>)[k], [...path, k]);
    else (v as unknown[]).forEach((x, i) => visit(x, [...path, i]));
  };
  visit(value, []);
  return out;
}
