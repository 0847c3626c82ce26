import { describe, expect, test } from "bun:test";
import { createLogger, renderFields, renderLine } from "../../lib/log/logger.ts";

const T = Date.UTC(2026, 10, 22, 10, 0, 0, 123);

describe("renderFields", () => {
  const cases: [string, unknown, string][] = [
    ["plain word", "ok", " k=ok"],
    ["address", "127.0.0.1:48336", " k=127.0.0.1:48336"],
    ["ipv6 in brackets", "[2001:db8::1]:443", " k=[2001:db8::1]:443"],
    ["integer", 1, " k=1"],
    ["zero", 0, " k=0"],
    ["negative zero", -0, " k=0"],
    ["fraction", 0.25, " k=0.25"],
    ["NaN", NaN, " k=NaN"],
    ["big", 1e21, " k=1e+21"],
    ["boolean", true, " k=true"],
    ["null", null, " k=null"],
    ["bigint", 12n, " k=12"],
    ["empty string", "", ' k=""'],
    ["space", "client closed", ' k="client closed"'],
    ["tab", "a\tb", ' k="a\\tb"'],
    ["quote", 'say "hi"', ' k="say \\"hi\\""'],
    ["equals", "a=b", ' k="a=b"'],
    ["newline alone is escaped, not quoted", "a\nb", " k=a\\nb"],
    ["newline and space", "a b\nc", ' k="a b\\\\nc"'],
    ["error", new Error("connect ECONNREFUSED 1.2.3.4:80"), ' k="connect ECONNREFUSED 1.2.3.4:80"'],
    ["error without spaces", new Error("boom"), " k=boom"],
    ["object", { a: 1 }, ' k="{\\"a\\":1}"'],
    ["array", [1, 2], " k=[1,2]"],
  ];
  for (const [name, value, want] of cases) {
    test(name, () => expect(renderFields({ k: value })).toBe(want));
  }

  test("undefined fields are left out, order is kept", () => {
    expect(renderFields({ b: 1, a: undefined, c: "x" })).toBe(" b=1 c=x");
    expect(renderFields(undefined)).toBe("");
    expect(renderFields({})).toBe("");
  });
});

describe("renderLine", () => {
  test("journal: the priority prefix, then the message and fields", () => {
    expect(renderLine("journal", "info", "proxy connection closed", { client: "127.0.0.1:1", up: 1 }, T)).toBe("<6>proxy connection closed client=127.0.0.1:1 up=1");
    expect(renderLine("journal", "error", "x", undefined, T)).toBe("<3>x");
    expect(renderLine("journal", "warn", "x", undefined, T)).toBe("<4>x");
    expect(renderLine("journal", "debug", "x", undefined, T)).toBe("<7>x");
  });

  test("text: time, padded level, message", () => {
    expect(renderLine("text", "info", "m", { a: "b" }, T)).toBe("2026-11-22T10:00:00.123Z info  m a=b");
    expect(renderLine("text", "warn", "m", undefined, T)).toBe("2026-11-22T10:00:00.123Z warn  m");
    expect(renderLine("text", "error", "m", undefined, T)).toBe("2026-11-22T10:00:00.123Z error m");
    expect(renderLine("text", "debug", "m", undefined, T)).toBe("2026-11-22T10:00:00.123Z debug m");
  });

  test("text: each line gets its own time, also when times repeat and alternate", () => {
    for (const t of [T, T, T + 1, T, T + 1000]) {
      expect(renderLine("text", "info", "m", undefined, t)).toBe(`${new Date(t).toISOString()} info  m`);
    }
  });

  test("a newline in the message stays on one line", () => {
    expect(renderLine("journal", "info", "a\nb\nc", undefined, T)).toBe("<6>a\\nb\\nc");
    expect(renderLine("text", "info", "a\nb", undefined, T).split("\n")).toHaveLength(1);
  });

  test("json: one object, errors as their message, undefined left out", () => {
    const line = renderLine("json", "warn", "m\n", { e: new Error("boom"), n: 2, u: undefined, s: "a b" }, T);
    expect(JSON.parse(line)).toEqual({ time: "2026-11-22T10:00:00.123Z", level: "warn", msg: "m\n", e: "boom", n: 2, s: "a b" });
  });
});

describe("createLogger", () => {
  test("writes one line per event at or above its level", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "info", format: "journal", write: (l) => lines.push(l), now: () => T });
    log.debug("hidden");
    log.info("shown", { a: 1 });
    log.error("bad", { why: "x y" });
    expect(lines).toEqual(["<6>shown a=1", '<3>bad why="x y"']);
    expect(log.debugEnabled).toBe(false);
    expect(createLogger({ level: "debug", write: () => {} }).debugEnabled).toBe(true);
  });
});
