/**
 * The chunked transfer coding (RFC 9112 §7.1) as an incremental state machine that finds, byte
 * exactly, where a chunked body ends, so a proxy can pass the body through as it arrives (no
 * buffering of whole bodies, backpressure left to the caller) and keep the connection for the next
 * message.
 *
 * What this module does NOT do: it copies nothing and never touches a socket. It reports how many
 * bytes of each pushed buffer belong to the body, where the chunk data lies in it (for a caller
 * that wants to de-chunk), and when the body is complete.
 *
 * Strictness: the proxy forwards the body's bytes unchanged, so it must end the body exactly where
 * the next hop will. Everything a lenient parser might read differently is an error: a bare LF,
 * whitespace before the size, a `0x` prefix, a CTL in an extension, data not followed by CRLF.
 *
 *   chunked-body   = *chunk last-chunk trailer-section CRLF
 *   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-size     = 1*HEXDIG
 *   last-chunk     = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   trailer-section = *( field-line CRLF )
 */
import { CR, HTAB, HttpProtocolError, LF, SP, type Side, httpError } from "./wire.ts";

/** Bounds of {@link ChunkedDecoder}. */
export interface ChunkedLimits {
  /** A chunk-size line with its extensions, without CRLF. Default 4096. */
  readonly maxLineBytes?: number;
  /** The whole trailer section. Default 16 KiB. */
  readonly maxTrailerBytes?: number;
}

/** The largest chunk size accepted: 2^48 bytes, far above any real chunk and exact in a double. */
export const MAX_CHUNK_SIZE = 2 ** 48;

/** What one {@link ChunkedDecoder.push} found. */
export interface ChunkedProgress {
  /** Bytes of the pushed buffer that belong to the body: all of it unless `done`. */
  readonly consumed: number;
  /** The body ended within this buffer; bytes after `consumed` are the next message. */
  readonly done: boolean;
  /** `[start, end)` offsets of chunk data in the pushed buffer, in order. */
  readonly data: readonly (readonly [number, number])[];
}

const enum State {
  Size, // reading hex digits, at least one seen when sizeDigits > 0
  Ext, // after the size: BWS, ";", extension text up to CR
  SizeLf, // CR seen, LF must follow
  Data, // `remaining` bytes of chunk data
  DataCr, // CR after the data
  DataLf, // LF after the data
  TrailerStart, // start of a trailer line, or the final CRLF
  Trailer, // inside a trailer field line
  TrailerLf, // CR seen at the end of a trailer line
  EndLf, // CR of the final empty line seen
  Done,
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/**
 * Finds the end of one chunked body. Create one per body, push every buffer that arrives after the
 * head, stop when `done`. After an error, or once done, further pushes return the same error or
 * `{ consumed: 0, done: true }`.
 */
export class ChunkedDecoder {
  #state = State.Size;
  #size = 0;
  #sizeDigits = 0;
  #remaining = 0;
  #lineBytes = 0;
  #trailerBytes = 0;
  #extSeenSemicolon = false;
  #extSeenSpace = false;
  #trailerColon = false;
  #error: HttpProtocolError | null = null;
  readonly #side: Side;
  readonly #maxLine: number;
  readonly #maxTrailer: number;

  /** `side` decides the status of errors: 400 for a request body, 502 for a response body. */
  constructor(side: Side, limits: ChunkedLimits = {}) {
    this.#side = side;
    this.#maxLine = limits.maxLineBytes ?? 4096;
    this.#maxTrailer = limits.maxTrailerBytes ?? 16 * 1024;
  }

  /** True once the final CRLF has been read. */
  get done(): boolean {
    return this.#state === State.Done;
  }

  /** Consumes body bytes from the front of `buf`. Never throws. */
  push(buf: Uint8Array): ChunkedProgress | HttpProtocolError {
    if (this.#error) return this.#error;
    const data: [number, number][] = [];
    let i = 0;
    while (i < buf.length && this.#state !== State.Done) {
      if (this.#state === State.Data) {
        const n = Math.min(this.#remaining, buf.length - i);
        data.push([i, i + n]);
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = State.DataCr;
        continue;
      }
      const err = this.#step(buf[i]!);
      if (err) {
        this.#error = err;
        return err;
      }
      i++;
    }
    return { consumed: i, done: this.#state === State.Done, data };
  }

  #fail(message: string, kind: "badChunk" | "chunkLineTooLong" | "chunkTooLarge" = "badChunk"): HttpProtocolError {
    return httpError(kind, this.#side, message);
  }

  #step(c: number): HttpProtocolError | null {
    switch (this.#state) {
      case State.Size: {
        const h = hexValue(c);
        if (h >= 0) {
          this.#size = this.#size * 16 + h;
          this.#sizeDigits++;
          if (this.#size > MAX_CHUNK_SIZE) return this.#fail(`chunk size is larger than 2^48`, "chunkTooLarge");
          return this.#lineByte();
        }
        if (this.#sizeDigits === 0) return this.#fail(`chunk size starts with byte 0x${c.toString(16)}, not a hex digit`);
        this.#state = State.Ext;
        return this.#ext(c);
      }
      case State.Ext:
        return this.#ext(c);
      case State.SizeLf:
        if (c !== LF) return this.#fail("chunk-size line has CR without LF");
        this.#lineBytes = 0;
        if (this.#size === 0) {
          this.#state = State.TrailerStart;
        } else {
          this.#remaining = this.#size;
          this.#state = State.Data;
        }
        return null;
      case State.DataCr:
        if (c !== CR) return this.#fail("chunk data is not followed by CRLF");
        this.#state = State.DataLf;
        return null;
      case State.DataLf:
        if (c !== LF) return this.#fail("chunk data is followed by CR without LF");
        this.#state = State.Size;
        this.#size = 0;
        this.#sizeDigits = 0;
        return null;
      case State.TrailerStart:
        if (c === CR) {
          this.#state = State.EndLf;
          return null;
        }
        if (c === SP || c === HTAB) return this.#fail("trailer line begins with whitespace (obs-fold)");
        this.#state = State.Trailer;
        this.#trailerColon = false;
        return this.#trailerByte(c);
      case State.Trailer:
        return this.#trailerByte(c);
      case State.TrailerLf:
        if (c !== LF) return this.#fail("trailer line has CR without LF");
        this.#state = State.TrailerStart;
        return null;
      case State.EndLf:
        if (c !== LF) return this.#fail("chunked body ends with CR without LF");
        this.#state = State.Done;
        return null;
      default:
        return null;
    }
  }

  #lineByte(): HttpProtocolError | null {
    this.#lineBytes++;
    return this.#lineBytes > this.#maxLine ? this.#fail(`chunk-size line is longer than ${this.#maxLine} bytes`, "chunkLineTooLong") : null;
  }

  // After the digits: BWS ";" ext text, up to CR. Only VCHAR, obs-text, SP and HTAB are allowed;
  // an extension must start with ";" (whitespace alone before CR is not a chunk-ext).
  #ext(c: number): HttpProtocolError | null {
    if (c === CR) {
      if (this.#extSeenSemicolon === false && this.#extSeenSpace) return this.#fail("whitespace after the chunk size without an extension");
      this.#state = State.SizeLf;
      this.#extSeenSemicolon = false;
      this.#extSeenSpace = false;
      return null;
    }
    if (c === LF) return this.#fail("bare LF in a chunk-size line");
    if ((c < 0x20 && c !== HTAB) || c === 0x7f) return this.#fail(`control byte 0x${c.toString(16)} in a chunk extension`);
    if (!this.#extSeenSemicolon) {
      if (c === 0x3b) this.#extSeenSemicolon = true;
      else if (c === SP || c === HTAB) this.#extSeenSpace = true;
      else return this.#fail(`chunk size is followed by "${String.fromCharCode(c)}", not ";" or CRLF`);
    }
    return this.#lineByte();
  }
  #trailerByte(c: number): HttpProtocolError | null {
    if (c === CR) {
      if (!this.#trailerColon) return this.#fail("trailer line has no colon");
      this.#state = State.TrailerLf;
      return null;
    }
    if (c === 0x3a) this.#trailerColon = true;
    if (c === LF) return this.#fail("bare LF in a trailer line");
    if ((c < 0x20 && c !== HTAB) || c === 0x7f) return this.#fail(`control byte 0x${c.toString(16)} in a trailer line`);
    this.#trailerBytes++;
    return this.#trailerBytes > this.#maxTrailer ? this.#fail(`trailer section is larger than ${this.#maxTrailer} bytes`, "chunkLineTooLong") : null;
  }
}

/** The last chunk and an empty trailer section: what ends every chunked body. */
export const LAST_CHUNK: Uint8Array = Uint8Array.of(0x30, CR, LF, CR, LF);

/** Encodes `data` as one chunk (`<hex size> CRLF data CRLF`). Empty data would end the body, so it throws `RangeError`. */
export function encodeChunk(data: Uint8Array): Uint8Array {
  if (data.length === 0) throw new RangeError("an empty chunk is the last chunk; send LAST_CHUNK");
  const size = new TextEncoder().encode(data.length.toString(16));
  const out = new Uint8Array(size.length + 2 + data.length + 2);
  out.set(size);
  out.set([CR, LF], size.length);
  out.set(data, size.length + 2);
  out.set([CR, LF], size.length + 2 + data.length);
  return out;
}
