/** Strict UTF-8: the validator against a table of RFC 3629 edge cases and against a fatal TextDecoder. */
import { describe, expect, test } from "bun:test";
import { decodeUtf8, firstInvalidUtf8 } from "../../lib/config/utf8.ts";

const b = (...xs: number[]) => new Uint8Array(xs);

describe("firstInvalidUtf8", () => {
  test.each([
    ["ASCII", b(0x61, 0x62), -1],
    ["empty", b(), -1],
    ["two-byte é", b(0xc3, 0xa9), -1],
    ["three-byte €", b(0xe2, 0x82, 0xac), -1],
    ["four-byte U+1F600", b(0xf0, 0x9f, 0x98, 0x80), -1],
    ["U+10FFFF, the last code point", b(0xf4, 0x8f, 0xbf, 0xbf), -1],
    ["a lone continuation byte", b(0x61, 0x80), 1],
    ["a lead byte with no continuation", b(0x61, 0xc3, 0x28), 1],
    ["truncated at the end", b(0x61, 0xe2, 0x82), 1],
    ["overlong 2-byte (C0 80)", b(0xc0, 0x80), 0],
    ["overlong 3-byte (E0 80 80)", b(0xe0, 0x80, 0x80), 0],
    ["overlong 4-byte (F0 80 80 80)", b(0xf0, 0x80, 0x80, 0x80), 0],
    ["a surrogate (ED A0 80)", b(0xed, 0xa0, 0x80), 0],
    ["above U+10FFFF (F4 90 80 80)", b(0xf4, 0x90, 0x80, 0x80), 0],
    ["F5 and above", b(0xf5, 0x80, 0x80, 0x80), 0],
    ["FF", b(0x7b, 0xff), 1],
  ])("%s", (_name, bytes, want) => {
    expect(firstInvalidUtf8(bytes)).toBe(want);
  });

  test("agrees with a fatal TextDecoder on 20,000 random byte strings", () => {
    const strict = new TextDecoder("utf-8", { fatal: true });
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    let invalid = 0;
    for (let n = 0; n < 20_000; n++) {
      // Mostly high bytes, so that valid multi-byte sequences occur as well as broken ones.
      const bytes = Uint8Array.from({ length: 1 + (n % 7) }, () => (rand() < 64 ? rand() & 0x7f : 0x80 | (rand() & 0x7f)));
      let ok = true;
      try {
        strict.decode(bytes);
      } catch {
        ok = false;
      }
      if (!ok) invalid++;
      expect([n, firstInvalidUtf8(bytes) === -1]).toEqual([n, ok]);
    }
    expect(invalid).toBeGreaterThan(1000);
    expect(invalid).toBeLessThan(19_000);
  });
});

describe("decodeUtf8", () => {
  test("valid text decodes, a leading BOM is dropped", () => {
    expect(decodeUtf8(new TextEncoder().encode("{\"a\": \"é\"}"))).toEqual({ text: '{"a": "é"}' });
    expect(decodeUtf8(b(0xef, 0xbb, 0xbf, 0x7b, 0x7d))).toEqual({ text: "{}" });
  });

  test("a bad byte: its offset, line and column, and where it is in the lenient text", () => {
    const bytes = Buffer.concat([Buffer.from('{\n  "é": "a'), Buffer.from([0xff]), Buffer.from('"\n}')]);
    const r = decodeUtf8(bytes);
    if (!("invalid" in r)) throw new Error("decoded");
    expect(r.invalid).toMatchObject({ offset: 12, line: 2, column: 10, textOffset: 11 }); // é is 2 bytes, 1 code unit
    expect(r.invalid.lenientText[r.invalid.textOffset]).toBe("\ufffd");
  });

  test("a bad first byte", () => {
    const r = decodeUtf8(b(0xff, 0x0a));
    expect("invalid" in r && r.invalid).toMatchObject({ offset: 0, line: 1, column: 1, textOffset: 0 });
  });
});
