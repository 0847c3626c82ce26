/**
 * Strict UTF-8 for config text (RFC 8259 §8.1: JSON exchanged between systems is UTF-8).
 *
 * A lenient decoder turns a bad byte into U+FFFD and the config would then hold a username or a
 * host name nobody wrote, so a bad byte is refused, with the place it is at. It does not decode
 * other encodings or guess one.
 */

const strict = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder("utf-8");

/** Bytes that are not UTF-8: where the first bad sequence starts. */
export interface InvalidUtf8 {
  /** Byte offset of the first byte of the first invalid sequence. */
  readonly offset: number;
  /** 1-based line, counting LF bytes before it. */
  readonly line: number;
  /** 1-based column in UTF-16 code units, as {@link positionOf} in json-position.ts counts. */
  readonly column: number;
  /** The whole text decoded leniently (U+FFFD for bad bytes), to find what field holds the byte. */
  readonly lenientText: string;
  /** The offset of the bad byte in {@link lenientText}. */
  readonly textOffset: number;
}

/**
 * Returns the byte offset where the first invalid UTF-8 sequence starts, or -1 when `bytes` is
 * valid UTF-8. Overlong forms, surrogates (U+D800..U+DFFF) and code points above U+10FFFF are
 * invalid (RFC 3629 §4), as a fatal TextDecoder has them.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  const cont = (j: number, lo = 0x80, hi = 0xbf) => j < n && bytes[j]! >= lo && bytes[j]! <= hi;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) i += 1;
    else if (b >= 0xc2 && b <= 0xdf && cont(i + 1)) i += 2;
    else if (b === 0xe0 && cont(i + 1, 0xa0) && cont(i + 2)) i += 3;
    else if (((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) && cont(i + 1) && cont(i + 2)) i += 3;
    else if (b === 0xed && cont(i + 1, 0x80, 0x9f) && cont(i + 2)) i += 3;
    else if (b === 0xf0 && cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3)) i += 4;
    else if (b >= 0xf1 && b <= 0xf3 && cont(i + 1) && cont(i + 2) && cont(i + 3)) i += 4;
    else if (b === 0xf4 && cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3)) i += 4;
    else return i;
  }
  return -1;
}

/**
 * Decodes `bytes` as strict UTF-8 (a leading BOM is dropped). Returns the text, or where the first
 * invalid byte is.
 */
export function decodeUtf8(bytes: Uint8Array): { text: string } | { invalid: InvalidUtf8 } {
  try {
    return { text: strict.decode(bytes) };
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
  }
  const offset = firstInvalidUtf8(bytes);
  const lineStart = offset === 0 ? 0 : bytes.lastIndexOf(0x0a, offset - 1) + 1;
  let line = 1;
  for (let j = 0; j < lineStart; j++) if (bytes[j] === 0x0a) line++;
  // Everything before `offset` is valid, so these decode exactly.
  const column = lenient.decode(bytes.subarray(lineStart, offset)).length + 1;
  const textOffset = lenient.decode(bytes.subarray(0, offset)).length;
  return { invalid: { offset, line, column, lenientText: lenient.decode(bytes), textOffset } };
}
