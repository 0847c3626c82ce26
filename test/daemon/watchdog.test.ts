/** The watchdog: which environments ask for one (sd_watchdog_enabled(3)), and when pings go out. */
import { describe, expect, test } from "bun:test";
import { startWatchdog, watchdogUsec } from "../../lib/daemon/watchdog.ts";

describe("watchdogUsec", () => {
  const me = String(process.pid);
  test.each([
    ["no WATCHDOG_USEC", {}, 0],
    ["WATCHDOG_USEC=30000000", { WATCHDOG_USEC: "30000000" }, 30_000_000],
    ["WATCHDOG_USEC=0", { WATCHDOG_USEC: "0" }, 0],
    ["WATCHDOG_USEC empty", { WATCHDOG_USEC: "" }, 0],
    ["WATCHDOG_USEC negative", { WATCHDOG_USEC: "-5" }, 0],
    ["WATCHDOG_USEC not a number", { WATCHDOG_USEC: "30s" }, 0],
    ["WATCHDOG_PID is this process", { WATCHDOG_USEC: "2000000", WATCHDOG_PID: me }, 2_000_000],
    ["WATCHDOG_PID is another process (a child inherited the environment)", { WATCHDOG_USEC: "2000000", WATCHDOG_PID: "1" }, 0],
    ["WATCHDOG_PID empty", { WATCHDOG_USEC: "2000000", WATCHDOG_PID: "" }, 2_000_000],
  ] as [string, Record<string, string>, number][])("%s", (_name, env, want) => {
    expect(watchdogUsec(env)).toBe(want);
  });
});

describe("startWatchdog", () => {
  test("does nothing without a watchdog", async () => {
    let pings = 0;
    const w = startWatchdog({ env: {}, ping: () => pings++ });
    expect(w.intervalMs).toBe(0);
    await Bun.sleep(50);
    w.stop();
    expect(pings).toBe(0);
  });

  test("pings at once, then every half of WATCHDOG_USEC, until stopped", async () => {
    const at: number[] = [];
    const w = startWatchdog({ env: { WATCHDOG_USEC: "100000" }, ping: () => at.push(performance.now()) });
    expect(w.intervalMs).toBe(50);
    expect(at.length).toBe(1); // the first ping does not wait a period
    await Bun.sleep(540);
    w.stop();
    const n = at.length;
    // 1 + ~10; generous for a loaded machine, strict enough to catch a wrong period (e.g. 100 ms or 25 ms).
    expect(n).toBeGreaterThanOrEqual(7);
    expect(n).toBeLessThanOrEqual(13);
    await Bun.sleep(150);
    expect(at.length).toBe(n);
  });

  test("withholds pings while unhealthy, says why once per episode, and resumes", async () => {
    let reason: string | null = null;
    let pings = 0;
    const told: string[] = [];
    const w = startWatchdog({
      env: { WATCHDOG_USEC: "40000" },
      ping: () => pings++,
      healthy: () => reason,
      onUnhealthy: (r) => told.push(r),
    });
    await Bun.sleep(100);
    expect(pings).toBeGreaterThan(1);
    reason = "no reconcile pass has finished for 61 s";
    await Bun.sleep(20); // let a tick observe it
    const frozen = pings;
    await Bun.sleep(150);
    expect(pings).toBe(frozen);
    expect(told).toEqual(["no reconcile pass has finished for 61 s"]);
    reason = null;
    await Bun.sleep(100);
    expect(pings).toBeGreaterThan(frozen);
    reason = "again";
    await Bun.sleep(100);
    expect(told).toEqual(["no reconcile pass has finished for 61 s", "again"]);
    w.stop();
  });
});
