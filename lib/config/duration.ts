/**
 * Durations in the config: `"10s"`, `"500ms"`, `"2m"`, `"1h"`, `"1m30s"`, `"0"`, or a plain number of
 * seconds. Parsed to whole milliseconds; rendered back to the shortest exact string.
 */

/**
 * The longest duration a timer can wait: setTimeout and socket timeouts hold a signed 32-bit
 * millisecond count, and a longer one fires after 1 ms instead (about 596h, 24.8 days).
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a duration to milliseconds, or returns null when the text is not one. */
export function parseDuration(input: string | number): number | null {
  if (typeof input === "number") {
    return Number.isFinite(input) && input >= 0 ? Math.round(input * 1000) : null;
  }
  const text = input.trim();
  if (text === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return null;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === 0 ? null : Math.round(total);
}

/** Renders milliseconds as the config would spell them: `0`, `250ms`, `10s`, `2m`, `1h30m`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  let rest = ms;
  let out = "";
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000], ["ms", 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
