// Layer 1: 10,000 seeded, mutated request heads (test/proxy/http-fuzz-cases.ts) through the pure
// parsers. HTTP_FUZZ_SEED=<n> replays another run. Nothing may throw; every result is NEED_MORE, a
// typed HttpProtocolError with a status the proxy can send, or a head whose `consumed` lies within
// the input; every parsed absolute-form head must re-encode for forwarding; and whatever follows a
// chunked head must never make the decoder throw or overrun.
import { expect, test } from "bun:test";
import { ChunkedDecoder } from "../../lib/proxy/http/chunked.ts";
import { encodeForwardRequest } from "../../lib/proxy/http/forward.ts";
import { parseRequestHead } from "../../lib/proxy/http/request.ts";
import { HttpProtocolError, NEED_MORE, latin1 } from "../../lib/proxy/http/wire.ts";
import { httpFuzzCases } from "./http-fuzz-cases.ts";

const SEED = Number(process.env.HTTP_FUZZ_SEED ?? 0x9112);
const CASES = 10_000;
const STATUSES = new Set([400, 414, 431, 501, 505]);

test(`${CASES} mutated heads (seed ${SEED}) only ever give NEED_MORE, a typed error, or a bounded head`, () => {
  const seen = { needMore: 0, error: 0, head: 0, forwarded: 0, chunked: 0 };
  const kinds = new Set<string>();
  for (const c of httpFuzzCases(SEED, CASES)) {
    const where = `case ${c.mutations.join(",")}: ${JSON.stringify(latin1(c.bytes.subarray(0, 120)))}`;
    let r: ReturnType<typeof parseRequestHead>;
    try {
      r = parseRequestHead(c.bytes);
    } catch (err) {
      throw new Error(`parser threw on ${where}: ${err}`);
    }
    if (r === NEED_MORE) {
      seen.needMore++;
      continue;
    }
    if (r instanceof HttpProtocolError) {
      seen.error++;
      kinds.add(r.kind);
      if (!STATUSES.has(r.status)) throw new Error(`status ${r.status} for ${r.kind} on ${where}`);
      continue;
    }
    seen.head++;
    if (!(r.consumed > 0 && r.consumed <= c.bytes.length)) throw new Error(`consumed ${r.consumed} of ${c.bytes.length} on ${where}`);
    if (r.value.target.form === "absolute") {
      encodeForwardRequest(r.value, { close: !r.value.persistent });
      seen.forwarded++;
    }
    if (r.value.body.kind === "chunked") {
      const rest = c.bytes.subarray(r.consumed);
      const p = new ChunkedDecoder("request").push(rest);
      if (!(p instanceof HttpProtocolError) && p.consumed > rest.length) throw new Error(`chunked consumed ${p.consumed} of ${rest.length} on ${where}`);
      seen.chunked++;
    }
  }
  // The generator must exercise every outcome, or this test checks less than it claims.
  expect(seen.needMore).toBeGreaterThan(100);
  expect(seen.error).toBeGreaterThan(1000);
  expect(seen.head).toBeGreaterThan(1000);
  expect(seen.forwarded).toBeGreaterThan(500);
  expect(seen.chunked).toBeGreaterThan(50);
  for (const k of ["badLineEnding", "obsFold", "headerLineTooLong", "headTooLarge", "tooManyHeaders", "smuggling", "badContentLength", "badTarget"]) expect(kinds).toContain(k);
});

test("the generator is deterministic: the same seed gives the same cases", () => {
  const a = [...httpFuzzCases(7, 200)].map((c) => latin1(c.bytes));
  const b = [...httpFuzzCases(7, 200)].map((c) => latin1(c.bytes));
  const other = [...httpFuzzCases(8, 200)].map((c) => latin1(c.bytes));
  expect(a).toEqual(b);
  expect(a).not.toEqual(other);
});
