/**
 * Locating JSON syntax errors and repeated keys: tables of bad text, and agreement with JSON.parse
 * on mutated configs.
 */
import { describe, expect, test } from "bun:test";
import { jsonDuplicateKey, jsonErrorOffset, positionOf } from "../../lib/config/json-position.ts";

function where(text: string): string | null {
  const offset = jsonErrorOffset(text);
  if (offset === null) return null;
  const { line, column } = positionOf(text, offset);
  return `${line}:${column}`;
}

describe("jsonErrorOffset", () => {
  test.each([
    ["empty text", "", "1:1"],
    ["only whitespace", " \n ", "2:2"],
    ["a bare word", "{\n  \"a\": [x]\n}", "2:9"],
    ["a trailing comma in an object", '{"a":1,}', "1:8"],
    ["a trailing comma in an array", "[1,2,]", "1:6"],
    ["a missing colon", '{"a" 1}', "1:6"],
    ["a missing comma", '{"a":1 "b":2}', "1:8"],
    ["a single-quoted string", "{'a':1}", "1:2"],
    ["an unquoted key", "{a:1}", "1:2"],
    ["a bad escape", '{"a":"b\\q"}', "1:8"],
    ["a short \\u escape", '["\\u12"]', "1:3"],
    ["a raw tab in a string", '["a\tb"]', "1:4"],
    ["a raw newline in a string", '["a\nb"]', "1:4"],
    ["an unterminated string", '["abc', "1:6"],
    ["an unclosed array", "[1,2", "1:5"],
    ["an unclosed object", '{"a":{}', "1:8"],
    ["a leading zero", "[01]", "1:3"],
    ["a bare decimal point", "[1.]", "1:3"],
    ["a plus sign", "[+1]", "1:2"],
    ["NaN", "[NaN]", "1:2"],
    ["a comment", '{"a":1 // x\n}', "1:8"],
    ["text after the value", '{"a":1}\n}', "2:1"],
    ["two values", "1 2", "1:3"],
    ["a byte-order mark", '\uFEFF{"a":1}', "1:1"],
    ["an error on line 3 after CRLF lines", '{\r\n"a":1,\r\n"b":}', "3:5"],
  ])("%s", (_name, text, at) => {
    expect(() => JSON.parse(text)).toThrow(SyntaxError);
    expect(where(text)).toBe(at);
  });

  test.each([
    ["an object", '{"a":[1,-2.5e+3,true,false,null,{"b":"\\u00e9\\n\\"\\\\"}],"c":{}}'],
    ["an empty array with whitespace", " [ ] \n"],
    ["a number", "-0.0E-0"],
    ["a string with a surrogate pair", '"\uD83D\uDE00"'],
    ["deep nesting", "[".repeat(500) + "]".repeat(500)],
  ])("accepts %s, as JSON.parse does", (_name, text) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(jsonErrorOffset(text)).toBeNull();
  });

  test("agrees with JSON.parse on 3000 one-character mutations of a config", () => {
    const base = JSON.stringify(
      { interface: { addresses: ["10.0.0.2/32"], mtu: 1420 }, exit: { publicKey: "x+/=", keepalive: -2.5e3 }, ok: [true, false, null] },
      null,
      2,
    );
    const alphabet = ` \n{}[]:,"\\.-+eE0123456789aflnrstu/`;
    let seed = 42;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 3000; i++) {
      const at = rand(base.length);
      const c = alphabet[rand(alphabet.length)]!;
      const op = rand(3);
      const text = op === 0 ? base.slice(0, at) + base.slice(at + 1) : op === 1 ? base.slice(0, at) + c + base.slice(at) : base.slice(0, at) + c + base.slice(at + 1);
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      const offset = jsonErrorOffset(text);
      if (valid !== (offset === null)) throw new Error(`disagrees with JSON.parse on ${JSON.stringify(text)}`);
      if (offset !== null) {
        // The text before the edit is a prefix of a valid document, so the error is not in it; at
        // most it points at the start of the word the edit broke ("tue" is reported at its "t").
        expect(offset).toBeGreaterThanOrEqual(at - "false".length);
      }
    }
  });
});

describe("jsonDuplicateKey", () => {
  test.each([
    ["a top-level key", '{"a":1,"a":2}', ["a"], 1, 7],
    ["a nested key", '{"proxy":{"listen":["x"],"auth":null,\n"listen":[]}}', ["proxy", "listen"], 10, 38],
    ["a key inside an array element", '{"l":[{"a":1},{"b":1,"b":2}]}', ["l", 1, "b"], 15, 21],
    ["the same key after unescaping", '{"a":1,"\\u0061":2}', ["a"], 1, 7],
    ["only the first of several", '{"x":{"b":1,"b":2},"a":1,"a":2}', ["x", "b"], 6, 12],
  ])("finds %s", (_name, text, path, firstOffset, offset) => {
    // Precondition: JSON.parse accepts these and silently keeps the last value.
    expect(() => JSON.parse(text)).not.toThrow();
    expect(jsonDuplicateKey(text)).toEqual({ path, firstOffset, offset });
  });

  test.each([
    ["equal keys in sibling objects", '{"a":{"k":1},"b":{"k":2}}'],
    ["equal keys at different depths", '{"k":{"k":{"k":1}}}'],
    ["keys that differ only in case", '{"listen":1,"Listen":2}'],
    ["an array of equal strings", '["a","a"]'],
    ["a value equal to its key", '{"a":"a"}'],
  ])("accepts %s", (_name, text) => {
    expect(jsonDuplicateKey(text)).toBeNull();
  });
});

test.each([
  ["abc", 0, { line: 1, column: 1 }],
  ["abc", 2, { line: 1, column: 3 }],
  ["a\nbc", 2, { line: 2, column: 1 }],
  ["a\nbc", 4, { line: 2, column: 3 }],
  ["\n\n\n", 3, { line: 4, column: 1 }],
])("positionOf(%j, %d)", (text, offset, pos) => {
  expect(positionOf(text, offset)).toEqual(pos);
});
