/**
 * One logger for the whole daemon: one line per event.
 *
 * Three renderings of the same event:
 * - `journal`: `<6>message key=value` — the sd-daemon priority prefix journald reads from stdout;
 * - `text`: `2026-11-22T10:00:00.000Z info  message key=value`, for a terminal;
 * - `json`: one JSON object per line (`--log-format json`).
 *
 * It does not redact: callers never pass secrets. Field values are rendered so that one event is
 * always exactly one line (newlines in values are escaped).
 */

/** Severity, lowest first. */
export type Level = "debug" | "info" | "warn" | "error";

/** Structured fields attached to an event. Values are rendered with `String()` unless already strings. */
export type Fields = Record<string, unknown>;

/** What every module takes as an optional `log` dependency. */
export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** True when `debug` lines are written; lets hot paths skip building fields. */
  readonly debugEnabled: boolean;
}

/** How lines are rendered. */
export type LogFormat = "journal" | "text" | "json";

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
/** sd-daemon(3) priorities: LOG_ERR=3, LOG_WARNING=4, LOG_INFO=6, LOG_DEBUG=7. */
const SD_PRIORITY: Record<Level, number> = { error: 3, warn: 4, info: 6, debug: 7 };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. Default `info`. */
  level?: Level;
  /** Rendering. Default: {@link defaultFormat}. */
  format?: LogFormat;
  /** Where lines go. Default: stderr. */
  write?: (line: string) => void;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

/**
 * Picks the format a human or journald expects: `journal` when stderr is connected to the journal
 * (`JOURNAL_STREAM` is set, see systemd.exec(5)), `text` otherwise.
 */
export function defaultFormat(env: Record<string, string | undefined> = process.env): LogFormat {
  return env.JOURNAL_STREAM ? "journal" : "text";
}

/** What makes a value need quoting; `\s` covers the newline, so a value without one is written as is. */
const NEEDS_QUOTING = /[\s"=]/;

function renderValue(v: unknown): string {
  // The common cases first (a plain word, a number): one line per proxied connection passes here.
  if (typeof v === "number") return String(v);
  if (typeof v === "string" && v !== "" && !NEEDS_QUOTING.test(v)) return v;
  let s: string;
  if (typeof v === "string") s = v;
  else if (v instanceof Error) s = v.message;
  else if (v === undefined) s = "";
  else if (typeof v === "object" && v !== null) s = JSON.stringify(v);
  else s = String(v);
  s = s.replace(/\n/g, "\\n");
  return NEEDS_QUOTING.test(s) || s === "" ? JSON.stringify(s) : s;
}

/** Renders `key=value` pairs for the journal and text formats. */
export function renderFields(fields: Fields | undefined): string {
  if (!fields) return "";
  let out = "";
  for (const k of Object.keys(fields)) {
    const v = fields[k];
    if (v === undefined) continue;
    out += ` ${k}=${renderValue(v)}`;
  }
  return out;
}

/** `level.padEnd(5)` for the text format, computed once. */
const PADDED: Record<Level, string> = { debug: "debug", info: "info ", warn: "warn ", error: "error" };

/** The last timestamp rendered and its text: lines logged within the same millisecond share it. */
let lastNow = NaN;
let lastIso = "";

function isoTime(now: number): string {
  if (now !== lastNow) {
    lastIso = new Date(now).toISOString();
    lastNow = now;
  }
  return lastIso;
}

/** Renders one event as one line (without the trailing newline). */
export function renderLine(format: LogFormat, level: Level, msg: string, fields: Fields | undefined, now: number): string {
  const oneLine = msg.includes("\n") ? msg.replace(/\n/g, "\\n") : msg;
  switch (format) {
    case "journal":
      return `<${SD_PRIORITY[level]}>${oneLine}${renderFields(fields)}`;
    case "text":
      return `${isoTime(now)} ${PADDED[level]} ${oneLine}${renderFields(fields)}`;
    case "json": {
      const obj: Record<string, unknown> = { time: isoTime(now), level, msg };
      if (fields) {
        for (const [k, v] of Object.entries(fields)) {
          if (v === undefined) continue;
          obj[k] = v instanceof Error ? v.message : v;
        }
      }
      return JSON.stringify(obj);
    }
  }
}

/** Creates a logger. See {@link LoggerOptions} for defaults. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = ORDER[opts.level ?? "info"];
  const format = opts.format ?? defaultFormat();
  const write = opts.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const now = opts.now ?? Date.now;
  const emit = (level: Level) => (msg: string, fields?: Fields) => {
    if (ORDER[level] < min) return;
    write(renderLine(format, level, msg, fields, now()));
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    debugEnabled: min === 0,
  };
}

/** A logger that drops everything; the default where a module is given none. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  debugEnabled: false,
};
