/** Test helpers for test/metrics. */
import type { Fields, Level, Logger } from "../../lib/log/logger.ts";

/** A logger that keeps what it was told. */
export function recordingLogger(): Logger & { lines: { level: Level; msg: string; fields?: Fields }[] } {
  const lines: { level: Level; msg: string; fields?: Fields }[] = [];
  const at = (level: Level) => (msg: string, fields?: Fields) => void lines.push({ level, msg, fields });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), debugEnabled: true };
}

/** A clock tests move by hand (ms). */
export function manualClock(start = 0): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}
