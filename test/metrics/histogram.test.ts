import { describe, expect, test } from "bun:test";
import { InvalidMetricError } from "../../lib/metrics/errors.ts";
import { renderFamilies } from "../../lib/metrics/exposition.ts";
import { histogramSamples, type HistogramSnapshot } from "../../lib/metrics/histogram.ts";

function family(name: string, labels: [string, string][], snap: HistogramSnapshot) {
  return [{ name, help: "Connect time.", type: "histogram" as const, samples: histogramSamples(name, labels, snap) }];
}

describe("histogramSamples", () => {
  test("exposition: cumulative buckets, le last, +Inf, sum, count", () => {
    // Observations 0.05, 0.1, 0.5, 1, 7, 0 into bounds 0.1, 1, 5 (bounds are inclusive).
    const snap = { bounds: [0.1, 1, 5], counts: [3, 2, 0, 1], sum: 8.65 };
    expect(renderFamilies(family("connect_seconds", [["via", "tunnel"]], snap))).toBe(
      "# HELP connect_seconds Connect time.\n" +
        "# TYPE connect_seconds histogram\n" +
        'connect_seconds_bucket{via="tunnel",le="0.1"} 3\n' +
        'connect_seconds_bucket{via="tunnel",le="1"} 5\n' +
        'connect_seconds_bucket{via="tunnel",le="5"} 5\n' +
        'connect_seconds_bucket{via="tunnel",le="+Inf"} 6\n' +
        'connect_seconds_sum{via="tunnel"} 8.65\n' +
        'connect_seconds_count{via="tunnel"} 6\n',
    );
  });

  test("an empty snapshot is exported at 0", () => {
    expect(renderFamilies(family("d_seconds", [], { bounds: [1], counts: [0, 0], sum: 0 }))).toBe(
      "# HELP d_seconds Connect time.\n# TYPE d_seconds histogram\n" +
        'd_seconds_bucket{le="1"} 0\nd_seconds_bucket{le="+Inf"} 0\nd_seconds_sum 0\nd_seconds_count 0\n',
    );
  });

  test("does not modify the snapshot", () => {
    const snap = { bounds: [1], counts: [2, 1], sum: 3 };
    histogramSamples("h", [], snap);
    expect(snap).toEqual({ bounds: [1], counts: [2, 1], sum: 3 });
  });

  test.each([
    ["unsorted bounds", { bounds: [1, 0.5], counts: [0, 0, 0], sum: 0 }],
    ["repeated bound", { bounds: [1, 1], counts: [0, 0, 0], sum: 0 }],
    ["explicit +Inf", { bounds: [1, Infinity], counts: [0, 0, 0], sum: 0 }],
    ["NaN bound", { bounds: [NaN], counts: [0, 0], sum: 0 }],
    ["counts that do not fit the bounds", { bounds: [1, 2], counts: [1, 2], sum: 0 }],
    ["counts with one too many", { bounds: [1], counts: [1, 2, 3], sum: 0 }],
  ])("rejects %s", (_, snap) => {
    expect(() => histogramSamples("h", [], snap)).toThrow(InvalidMetricError);
  });
});
