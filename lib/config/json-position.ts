/**
 * Where JSON text goes wrong, as a line and column, for config error messages: the first syntax
 * error, and the first object key given twice.
 *
 * Bun's JSON.parse (JavaScriptCore) says what is wrong but not where, and silently keeps the last
 * of two equal keys (RFC 8259 §4 leaves that to the parser), so this scans the text with the
 * RFC 8259 grammar. It does not build values.
 */

/** 1-based line and column (in UTF-16 code units) of a position in a text. */
export interface TextPosition {
  readonly line: number;
  readonly column: number;
}

class SyntaxAt {
  constructor(readonly offset: number) {}
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;

/** A key that appears twice in one object. */
export interface DuplicateKey {
  /** The path of the repeated member, as JSON.parse would build it: `["proxy", "listen"]`. */
  readonly path: readonly (string | number)[];
  /** Offsets of the first and the second occurrence of the key. */
  readonly firstOffset: number;
  readonly offset: number;
}

/** Returns the offset of the first JSON syntax error in `text`, or null when it is valid JSON. */
export function jsonErrorOffset(text: string): number | null {
  return scan(text).error;
}

/**
 * Returns the first key (in document order) that appears twice in the same object, or null.
 * Keys are compared after unescaping (`"a"` and `"\u0061"` are the same key). Call it on text
 * that JSON.parse accepted.
 */
export function jsonDuplicateKey(text: string): DuplicateKey | null {
  return scan(text).duplicate;
}

/** One pass of the RFC 8259 grammar over `text`. */
function scan(text: string): { error: number | null; duplicate: DuplicateKey | null } {
  let duplicate: DuplicateKey | null = null;
  const path: (string | number)[] = [];
  let i = 0;
  const fail = (): never => {
    throw new SyntaxAt(i);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const expect = (c: string) => {
    if (text[i] !== c) fail();
    i++;
  };
  const string = () => {
    expect('"');
    for (;;) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c) || c < 0x20) fail();
      if (c === 0x22) return void i++;
      if (c === 0x5c) {
        ESCAPE.lastIndex = i;
        if (!ESCAPE.test(text)) fail();
        i = ESCAPE.lastIndex;
      } else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i++;
      ws();
      if (text[i] === close) return void i++;
      const keys = c === "{" ? new Map<string, number>() : null;
      for (let index = 0; ; index++) {
        if (keys) {
          ws();
          const start = i;
          string();
          const key = JSON.parse(text.slice(start, i)) as string;
          const first = keys.get(key);
          if (first !== undefined) duplicate ??= { path: [...path, key], firstOffset: first, offset: start };
          else keys.set(key, start);
          path.push(key);
          ws();
          expect(":");
        } else {
          path.push(index);
        }
        value();
        path.pop();
        ws();
        if (text[i] === ",") i++;
        else return expect(close);
      }
    }
    if (c === '"') return string();
    for (const word of ["true", "false", "null"]) if (text.startsWith(word, i)) return void (i += word.length);
    NUMBER.lastIndex = i;
    if (!NUMBER.test(text)) fail();
    i = NUMBER.lastIndex;
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
    return { error: null, duplicate };
  } catch (e) {
    if (e instanceof SyntaxAt) return { error: e.offset, duplicate };
    // Nesting deeper than the stack: no position to give, and no duplicate worth reporting.
    if (e instanceof RangeError) return { error: null, duplicate: null };
    throw e;
  }
}

/** Converts an offset into a 1-based line and column. */
export function positionOf(text: string, offset: number): TextPosition {
  const before = text.slice(0, offset);
  const lastNewline = before.lastIndexOf("\n");
  return { line: before.split("\n").length, column: offset - lastNewline };
}
