import { describe, expect, test } from "bun:test";
import { cached } from "../../lib/metrics/cache.ts";
import { manualClock } from "./helpers.ts";

describe("cached", () => {
  test("concurrent callers share one load; reused below maxAge, reloaded at it", async () => {
    const clock = manualClock(10_000);
    let calls = 0;
    const c = cached(async () => ++calls, { now: clock.now });
    expect(await Promise.all(Array.from({ length: 50 }, () => c.get()))).toEqual(Array(50).fill(1));
    clock.advance(999);
    expect(await c.get()).toBe(1);
    clock.advance(1);
    expect(await c.get()).toBe(2);
    expect(calls).toBe(2);
  });

  test("a failure is cached too, then retried", async () => {
    const clock = manualClock();
    let calls = 0;
    const c = cached(
      async () => {
        calls++;
        throw new Error("wg: No such device");
      },
      { now: clock.now, maxAgeMs: 500 },
    );
    for (let i = 0; i < 5; i++) await expect(c.get()).rejects.toThrow("No such device");
    expect(calls).toBe(1);
    clock.advance(500);
    await expect(c.get()).rejects.toThrow();
    expect(calls).toBe(2);
  });

  test("a load slower than maxAge is shared, not forked again behind itself", async () => {
    const clock = manualClock();
    let calls = 0;
    let release: (v: string) => void = () => {};
    const c = cached(
      () => {
        calls++;
        return calls === 1 ? new Promise<string>((r) => (release = r)) : "second";
      },
      { now: clock.now },
    );
    const first = c.get();
    await Bun.sleep(0); // the load starts on a microtask
    clock.advance(5_000);
    const second = c.get();
    release("dump");
    expect(await Promise.all([first, second])).toEqual(["dump", "dump"]);
    expect(calls).toBe(1);
    await Bun.sleep(0);
    expect(await c.get()).toBe("second"); // age counts from the start: 5 s old now
    expect(calls).toBe(2);
  });

  test("invalidate forces the next load", async () => {
    let calls = 0;
    const c = cached(() => ++calls, { now: () => 0 });
    await c.get();
    c.invalidate();
    expect(await c.get()).toBe(2);
  });

  test("a clock that steps back counts as stale", async () => {
    const clock = manualClock(5_000);
    let calls = 0;
    const c = cached(() => ++calls, { now: clock.now });
    await c.get();
    clock.advance(-10);
    expect(await c.get()).toBe(2);
  });
});
