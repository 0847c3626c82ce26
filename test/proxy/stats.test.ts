// Layer 1: the counters' shape and the histogram.
import { expect, test } from "bun:test";
import { CONNECTION_RESULTS, createHistogram, createStats, observe } from "../../lib/proxy/stats.ts";

test("every result label starts at zero", () => {
  const s = createStats();
  expect(Object.keys(s.connectionsTotal).sort()).toEqual([...CONNECTION_RESULTS].sort());
  for (const r of CONNECTION_RESULTS) expect(s.connectionsTotal[r]).toBe(0);
});

test("the result labels are exactly the nine the metrics expose", () => {
  expect([...CONNECTION_RESULTS]).toEqual(["ok", "refused", "unreachable", "timeout", "denied_client", "denied_destination", "auth_failed", "protocol_error", "local_resource"]);
});

test("observe puts each value in the first bucket whose bound is >= it", () => {
  const h = createHistogram([0.1, 1, 10]);
  for (const v of [0, 0.1, 0.1000001, 1, 5, 10, 11, 1000]) observe(h, v);
  expect(h.counts).toEqual([2, 2, 2, 2]);
  expect(h.count).toBe(8);
  expect(h.sum).toBeCloseTo(0 + 0.1 + 0.1000001 + 1 + 5 + 10 + 11 + 1000, 6);
});
