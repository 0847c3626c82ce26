/**
 * Where a message body stands while it streams through the proxy, as pure functions over the
 * framing a head parser decided (`framing.ts`): how many bytes of a buffer belong to the body, and
 * when it has ended. Copies nothing and touches no socket.
 */
import { ChunkedDecoder } from "./chunked.ts";
import type { BodyFraming } from "./framing.ts";
import { HttpProtocolError, type Side } from "./wire.ts";

/** Where a body stands: bytes left of a Content-Length, a chunked decoder, until close, or done. */
export type BodyState = { kind: "length"; left: number } | { kind: "chunked"; decoder: ChunkedDecoder } | { kind: "close" } | { kind: "done" };

/** The state at the start of a body framed as `framing`; `side` decides the status of chunked errors. */
export function bodyState(framing: BodyFraming, side: Side): BodyState {
  switch (framing.kind) {
    case "length":
      return framing.length === 0 ? { kind: "done" } : { kind: "length", left: framing.length };
    case "chunked":
      return { kind: "chunked", decoder: new ChunkedDecoder(side) };
    case "close":
      return { kind: "close" };
    default:
      return { kind: "done" };
  }
}

/**
 * Takes the body's part from the front of `buf`: `[body bytes, rest]`, or an error for a
 * malformed chunked body. Advances `state` (to `done` at the body's end).
 */
export function takeBody(state: BodyState, buf: Uint8Array): [Uint8Array, Uint8Array, BodyState] | HttpProtocolError {
  switch (state.kind) {
    case "done":
      return [buf.subarray(0, 0), buf, state];
    case "close":
      return [buf, buf.subarray(buf.length), state];
    case "length": {
      const n = Math.min(state.left, buf.length);
      const left = state.left - n;
      return [buf.subarray(0, n), buf.subarray(n), left === 0 ? { kind: "done" } : { kind: "length", left }];
    }
    case "chunked": {
      const p = state.decoder.push(buf);
      if (p instanceof HttpProtocolError) return p;
      return [buf.subarray(0, p.consumed), buf.subarray(p.consumed), p.done ? { kind: "done" } : state];
    }
  }
}
