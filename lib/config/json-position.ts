/**
 * Where JSON text first goes wrong, as a line and column, for config error messages.
 *
 * Bun's JSON.parse (JavaScriptCore) says what is wrong but not where, so this scans the text with
 * the RFC 8259 grammar to find the offset of the first character that cannot belong there. It does
 * not build values; call it only after JSON.parse has failed.
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

/** Returns the offset of the first JSON syntax error in `text`, or null when it is valid JSON. */
export function jsonErrorOffset(text: string): number | null {
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
      for (;;) {
        if (c === "{") {
          ws();
          string();
          ws();
          expect(":");
        }
        value();
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
    return null;
  } catch (e) {
    if (e instanceof SyntaxAt) return e.offset;
    if (e instanceof RangeError) return null; // nesting deeper than the stack: no position to give
    throw e;
  }
}

/** Converts an offset into a 1-based line and column. */
export function positionOf(text: string, offset: number): TextPosition {
  const before = text.slice(0, offset);
  const lastNewline = before.lastIndexOf("\n");
  return { line: before.split("\n").length, column: offset - lastNewline };
}
