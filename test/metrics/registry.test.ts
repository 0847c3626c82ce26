import { describe, expect, test } from "bun:test";
import { InvalidMetricError } from "../../lib/metrics/errors.ts";
import type { MetricFamily } from "../../lib/metrics/exposition.ts";
import { Registry, type Collector } from "../../lib/metrics/registry.ts";
import { recordingLogger } from "./helpers.ts";

function gauge(name: string, value: number): MetricFamily {
  return { name, help: "h", type: "gauge", samples: [{ name, labels: [], value }] };
}

describe("Registry", () => {
  test("renders collectors in registration order", async () => {
    const r = new Registry();
    r.register({ name: "b", collect: () => [gauge("b", 2)] });
    r.register({ name: "a", collect: async () => [gauge("a", 1)] });
    expect(await r.render()).toBe("# HELP b h\n# TYPE b gauge\nb 2\n# HELP a h\n# TYPE a gauge\na 1\n");
  });

  test("register returns the collector it was given", async () => {
    const r = new Registry();
    const c: Collector = { name: "c", collect: () => [gauge("c_total", 7)] };
    expect(r.register(c)).toBe(c);
    expect(await r.render()).toContain("c_total 7\n");
  });

  test("a collector name twice is refused", () => {
    const r = new Registry();
    r.register({ name: "x", collect: () => [] });
    expect(() => r.register({ name: "x", collect: () => [] })).toThrow(InvalidMetricError);
    expect(r.unregister("x")).toBe(true);
    expect(() => r.register({ name: "x", collect: () => [] })).not.toThrow();
  });

  test("a failing collector is left out, the rest still served, success gauge says which", async () => {
    const log = recordingLogger();
    const r = new Registry({ log, successMetric: "s" });
    r.register({ name: "good", collect: () => [gauge("good", 1)] });
    r.register({
      name: "wg",
      collect: async () => {
        throw new Error("wg: Unable to access interface: No such device");
      },
    });
    r.register({ name: "sync_throw", collect: () => { throw new Error("boom"); } });
    const text = await r.render();
    expect(text).toContain("good 1\n");
    expect(text).toContain('s{collector="good"} 1\ns{collector="wg"} 0\ns{collector="sync_throw"} 0\n');
    expect(log.lines.filter((l) => l.level === "warn").map((l) => String(l.fields?.collector)).sort()).toEqual(["sync_throw", "wg"]);
  });

  test("a collector that hangs times out and is reported failed", async () => {
    const r = new Registry({ collectTimeoutMs: 30, successMetric: "s" });
    r.register({ name: "hang", collect: () => new Promise<MetricFamily[]>(() => {}) });
    const started = performance.now();
    const text = await r.render();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(text).toBe('# HELP s Whether a collector answered this scrape (1) or failed and was left out (0).\n# TYPE s gauge\ns{collector="hang"} 0\n');
  });

  test("invalid families are dropped and logged as errors, not rendered", async () => {
    const log = recordingLogger();
    const r = new Registry({ log });
    r.register({ name: "bad", collect: () => [{ name: "bad", help: "h", type: "gauge", samples: [{ name: "bad", labels: [], value: undefined as unknown as number }] }] });
    expect(await r.render()).toBe("");
    expect(log.lines.map((l) => l.level)).toEqual(["error"]);
  });

  test("two collectors producing one family: the second is left out", async () => {
    const r = new Registry({ successMetric: "s" });
    r.register({ name: "one", collect: () => [gauge("dup", 1)] });
    r.register({ name: "two", collect: () => [gauge("dup", 2)] } satisfies Collector);
    const text = await r.render();
    expect(text).toContain("dup 1\n");
    expect(text).not.toContain("dup 2");
    expect(text).toContain('s{collector="two"} 0');
  });
});
