/** Durations: parse and format tables, and format -> parse round trips. */
import { describe, expect, test } from "bun:test";
import { formatDuration, MAX_DURATION_MS, parseDuration } from "../../lib/config/duration.ts";

describe("parseDuration", () => {
  test.each([
    ["0", 0],
    [0, 0],
    ["0s", 0],
    ["500ms", 500],
    ["10s", 10_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
    ["1h2m3s4ms", 3_723_004],
    ["1.5s", 1500],
    ["0.25h", 900_000],
    [" 10s\n", 10_000],
    [10, 10_000], // a bare number is seconds
    [2.5, 2500],
    [0.001, 1],
  ] as const)("%j -> %d ms", (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  test.each([
    [""],
    [" "],
    ["10"], // a string needs a unit; only a number means seconds
    ["s"],
    ["-1s"],
    ["10 s"],
    ["10sec"],
    ["1d"],
    ["1w"],
    ["ten seconds"],
    ["1.s"],
    [".5s"],
    ["1e3s"],
    [-1],
    [Number.NaN],
    [Number.POSITIVE_INFINITY],
  ] as const)("%j is not a duration", (input) => {
    expect(parseDuration(input)).toBeNull();
  });
});

describe("formatDuration", () => {
  test.each([
    [0, "0"],
    [1, "1ms"],
    [250, "250ms"],
    [1000, "1s"],
    [10_000, "10s"],
    [90_000, "1m30s"],
    [120_000, "2m"],
    [3_600_000, "1h"],
    [5_400_000, "1h30m"],
    [3_723_004, "1h2m3s4ms"],
    [MAX_DURATION_MS, "596h31m23s647ms"],
  ])("%d ms -> %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  test("parse(format(ms)) === ms, for 1000 random durations up to the maximum", () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 1000; i++) {
      const ms = next() % (i % 2 ? 100_000 : MAX_DURATION_MS);
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});

test("MAX_DURATION_MS is the largest delay setTimeout honours", () => {
  expect(MAX_DURATION_MS).toBe(2 ** 31 - 1);
});
