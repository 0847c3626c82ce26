import { describe, expect, test } from "bun:test";
import { Counter } from "../../lib/metrics/counter.ts";
import { InvalidMetricError } from "../../lib/metrics/errors.ts";
import { renderFamilies } from "../../lib/metrics/exposition.ts";
import { Gauge } from "../../lib/metrics/gauge.ts";
import { DEFAULT_BUCKETS, Histogram, histogramSamples } from "../../lib/metrics/histogram.ts";

describe("Counter", () => {
  test("unlabeled: starts at 0, adds", () => {
    const c = new Counter({ name: "things_total", help: "Things." });
    expect(renderFamilies(c.collect())).toBe("# HELP things_total Things.\n# TYPE things_total counter\nthings_total 0\n");
    c.inc();
    c.inc(2.5);
    expect(c.get()).toBe(3.5);
  });

  test("labels render in declared order whatever the object's key order", () => {
    const c = new Counter({ name: "x_total", help: "h", labelNames: ["b", "a"] });
    c.labels({ a: "1", b: "2" }).inc();
    expect(renderFamilies(c.collect())).toContain('x_total{b="2",a="1"} 1\n');
  });

  test("initial label sets are exported at 0 before use, in the given order", () => {
    const c = new Counter({ name: "r_total", help: "h", labelNames: ["result"], initial: [{ result: "ok" }, { result: "refused" }] });
    c.labels({ result: "refused" }).inc(4);
    expect(renderFamilies(c.collect())).toBe(
      '# HELP r_total h\n# TYPE r_total counter\nr_total{result="ok"} 0\nr_total{result="refused"} 4\n',
    );
  });

  test("a child handle and a fresh lookup share one series", () => {
    const c = new Counter({ name: "x_total", help: "h", labelNames: ["k"] });
    const child = c.labels({ k: "v" });
    child.inc();
    c.labels({ k: "v" }).inc();
    expect(child.get()).toBe(2);
    expect(c.collect()[0]!.samples).toHaveLength(1);
  });

  test("label values that would collide when joined stay distinct", () => {
    const c = new Counter({ name: "x_total", help: "h", labelNames: ["a", "b"] });
    c.labels({ a: "x,y", b: "z" }).inc();
    c.labels({ a: "x", b: "y,z" }).inc();
    expect(c.collect()[0]!.samples).toHaveLength(2);
  });

  test.each([
    ["no _total", () => new Counter({ name: "things", help: "h" })],
    ["bad name", () => new Counter({ name: "a-b_total", help: "h" })],
    ["bad label", () => new Counter({ name: "a_total", help: "h", labelNames: ["__x"] })],
    ["label twice", () => new Counter({ name: "a_total", help: "h", labelNames: ["x", "x"] })],
    ["negative inc", () => new Counter({ name: "a_total", help: "h" }).inc(-1)],
    ["NaN inc", () => new Counter({ name: "a_total", help: "h" }).inc(NaN)],
    ["Infinity inc", () => new Counter({ name: "a_total", help: "h" }).inc(Infinity)],
    ["missing label", () => new Counter({ name: "a_total", help: "h", labelNames: ["x", "y"] }).labels({ x: "1" } as never)],
    ["extra label", () => new Counter({ name: "a_total", help: "h", labelNames: ["x"] }).labels({ x: "1", y: "2" } as never)],
    ["non-string value", () => new Counter({ name: "a_total", help: "h", labelNames: ["x"] }).labels({ x: 1 } as never)],
    ["unlabeled use of a labeled counter", () => new Counter({ name: "a_total", help: "h", labelNames: ["x"] }).inc()],
  ])("rejects %s", (_, f) => {
    expect(f).toThrow(InvalidMetricError);
  });
});

describe("Gauge", () => {
  test("set, inc, dec", () => {
    const g = new Gauge({ name: "open", help: "h" });
    g.set(5);
    g.inc();
    g.dec(3);
    expect(g.get()).toBe(3);
    expect(renderFamilies(g.collect())).toBe("# HELP open h\n# TYPE open gauge\nopen 3\n");
  });

  test("reset drops labeled series", () => {
    const g = new Gauge({ name: "peers", help: "h", labelNames: ["peer"] });
    g.labels({ peer: "a" }).set(1);
    g.reset();
    g.labels({ peer: "b" }).set(2);
    expect(renderFamilies(g.collect())).toBe('# HELP peers h\n# TYPE peers gauge\npeers{peer="b"} 2\n');
  });
});

describe("Histogram", () => {
  test("default buckets are client_golang's DefBuckets", () => {
    expect(DEFAULT_BUCKETS).toEqual([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  });

  test("exposition: cumulative buckets, le last, bounds are inclusive, +Inf, sum, count", () => {
    const h = new Histogram({ name: "connect_seconds", help: "Connect time.", labelNames: ["via"], buckets: [0.1, 1, 5] });
    const c = h.labels({ via: "tunnel" });
    for (const v of [0.05, 0.1, 0.5, 1, 7, 0]) c.observe(v);
    expect(renderFamilies(h.collect())).toBe(
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

  test("an unlabeled histogram is exported empty before the first observation", () => {
    const h = new Histogram({ name: "d_seconds", help: "h", buckets: [1] });
    expect(renderFamilies(h.collect())).toBe(
      "# HELP d_seconds h\n# TYPE d_seconds histogram\n" +
        'd_seconds_bucket{le="1"} 0\nd_seconds_bucket{le="+Inf"} 0\nd_seconds_sum 0\nd_seconds_count 0\n',
    );
  });

  test("snapshot is a copy", () => {
    const h = new Histogram({ name: "d_seconds", help: "h", buckets: [1] });
    const before = h.snapshot();
    h.observe(2);
    expect(before.counts).toEqual([0, 0]);
    expect(h.snapshot()).toEqual({ bounds: [1], counts: [0, 1], sum: 2 });
  });

  test.each([
    ["unsorted buckets", () => new Histogram({ name: "h", help: "h", buckets: [1, 0.5] })],
    ["repeated bucket", () => new Histogram({ name: "h", help: "h", buckets: [1, 1] })],
    ["explicit +Inf", () => new Histogram({ name: "h", help: "h", buckets: [1, Infinity] })],
    ["le label", () => new Histogram({ name: "h", help: "h", labelNames: ["le"] })],
    ["NaN observation", () => new Histogram({ name: "h", help: "h" }).observe(NaN)],
    ["snapshot counts do not fit bounds", () => histogramSamples("h", [], { bounds: [1, 2], counts: [1, 2], sum: 0 })],
  ])("rejects %s", (_, f) => {
    expect(f).toThrow(InvalidMetricError);
  });
});
