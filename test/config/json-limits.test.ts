/** The bounds checked before JSON.parse and the schema: nesting depth, the path at an offset, lengths, Infinity. */
import { describe, expect, test } from "bun:test";
import { ConfigError, MAX_PROBLEMS_SHOWN, shownProblems } from "../../lib/config/errors.ts";
import { jsonDepthProblem, jsonPathAt, jsonValueProblems, MAX_ITEMS, MAX_MEMBERS } from "../../lib/config/json-limits.ts";

describe("jsonDepthProblem", () => {
  test.each([
    ["a flat object", '{"a": 1}', 2, null],
    ["exactly the limit", "[[1]]", 2, null],
    ["one past the limit at the top", "[[[1]]]", 2, "(root): nested more than 2 levels deep (at line 1 column 3)"],
    ["inside a field", '{"proxy": {"listen": [[1]]}}', 3, "proxy.listen: nested more than 3 levels deep (at line 1 column 23)"],
    ["brackets inside strings do not count", '{"a": "[[[[[[", "b": "\\"[[[["}', 1, null],
    ["an escaped backslash before the closing quote", '{"a\\\\": [[1]]}', 2, "a\\: nested more than 2 levels deep (at line 1 column 10)"],
    ["on a later line", '{\n  "a": {\n    "b": [\n      [1]]}}', 3, "a.b: nested more than 3 levels deep (at line 4 column 7)"],
    ["unclosed: still measured", "[[[[", 3, "(root): nested more than 3 levels deep (at line 1 column 4)"],
    ["the second of two keys", '{"a": 1, "b": {"c": [1]}}', 2, "b.c: nested more than 2 levels deep (at line 1 column 21)"],
  ])("%s", (_name, text, max, want) => {
    expect(jsonDepthProblem(text, max)?.message ?? null).toBe(want);
  });

  test("100,000 levels is measured without recursion, at the default limit of 64", () => {
    const text = "[".repeat(100_000) + "]".repeat(100_000);
    expect(jsonDepthProblem(text)?.message).toBe("(root): nested more than 64 levels deep (at line 1 column 65)");
  });
});

describe("jsonPathAt", () => {
  const text = '{"a": {"b": [10, "x", {"c": "here"}]}, "d": "e"}';
  test.each([
    ["inside a nested string", text.indexOf("here"), ["a", "b", 2, "c"]],
    ["an array item", text.indexOf('"x"') + 1, ["a", "b", 1]],
    ["the first item", text.indexOf("10"), ["a", "b", 0]],
    ["a later top-level member", text.indexOf('"e"'), ["d"]],
    ["the top", 0, []],
  ])("%s", (_name, offset, want) => {
    expect(jsonPathAt(text, offset)).toEqual(want);
  });
});

describe("jsonValueProblems", () => {
  test.each([
    ["finite numbers", { a: 1e308, b: -1e-400, c: [0] }, []],
    ["Infinity in a field", { interface: { mtu: Infinity } }, ["interface.mtu: the number is too large to represent (it would be Infinity)"]],
    ["-Infinity in a list", { l: [1, -Infinity] }, ["l[1]: the number is too large to represent (it would be -Infinity)"]],
    ["a list at the limit", { l: Array(MAX_ITEMS).fill(1) }, []],
    ["a list over the limit", { p: { l: Array(MAX_ITEMS + 1).fill(1) } }, [`p.l: has ${MAX_ITEMS + 1} items; a list holds at most ${MAX_ITEMS}`]],
    ["an object at the limit", Object.fromEntries(Array.from({ length: MAX_MEMBERS }, (_, i) => [`k${i}`, 1])), []],
    [
      "an object over the limit",
      { proxy: Object.fromEntries(Array.from({ length: MAX_MEMBERS + 1 }, (_, i) => [`k${i}`, 1])) },
      [`proxy: has ${MAX_MEMBERS + 1} members; an object holds at most ${MAX_MEMBERS}`],
    ],
  ])("%s", (_name, value, want) => {
    expect(jsonValueProblems(value).map((p) => p.message)).toEqual(want);
  });
});

describe("shownProblems", () => {
  const problems = (n: number) => Array.from({ length: n }, (_, i) => ({ path: `l[${i}]`, message: `l[${i}]: bad` }));
  test.each([
    [0, 0, null],
    [MAX_PROBLEMS_SHOWN, MAX_PROBLEMS_SHOWN, null],
    [MAX_PROBLEMS_SHOWN + 1, MAX_PROBLEMS_SHOWN + 1, "... and 1 more problem (only the first 20 are shown)"],
    [5000, MAX_PROBLEMS_SHOWN + 1, "... and 4980 more problems (only the first 20 are shown)"],
  ])("%d problems print as %d lines", (n, lines, last) => {
    const shown = shownProblems(problems(n));
    expect(shown).toHaveLength(lines);
    if (last) expect(shown.at(-1)).toEqual({ path: "(more)", message: last });
    else expect(shown).toEqual(problems(n));
  });

  test("a ConfigError's message is the shown problems, all of them stay in .problems", () => {
    const e = new ConfigError(problems(5000));
    expect(e.problems).toHaveLength(5000);
    expect(e.message.split("\n")).toEqual(shownProblems(problems(5000)).map((p) => p.message));
  });
});
