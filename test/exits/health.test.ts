// Layer 1: exit health and the choice of the active exit, as tables.
import { describe, expect, test } from "bun:test";
import { chooseActive, HEALTH_DEFAULTS, INITIAL_HEALTH, observeHealth, type ExitHealth, type HealthSample, type HealthState } from "../../lib/exits/health.ts";

const ok: HealthSample = { probe: { ok: true }, handshakeAgeSeconds: 5 };
const fail: HealthSample = { probe: { ok: false, reason: "timeout after 2 s" }, handshakeAgeSeconds: 5 };
const never: HealthSample = { probe: { ok: true }, handshakeAgeSeconds: null };
const stale: HealthSample = { probe: { ok: true }, handshakeAgeSeconds: 301 };

function run(samples: HealthSample[], from: ExitHealth = INITIAL_HEALTH): { states: HealthState[]; changes: string[] } {
  let h = from;
  const states: HealthState[] = [];
  const changes: string[] = [];
  for (const s of samples) {
    const step = observeHealth(h, s, HEALTH_DEFAULTS);
    h = step.health;
    states.push(h.state);
    if (step.changed) changes.push(`${h.state}: ${step.reason}`);
  }
  return { states, changes };
}

describe("observeHealth", () => {
  const rows: [string, HealthSample[], HealthState[]][] = [
    ["the first success brings an unknown exit up at once", [ok], ["up"]],
    ["the first miss takes an unknown exit down at once", [fail], ["down"]],
    ["up: two misses are not enough, the third takes it down", [ok, fail, fail, fail], ["up", "up", "up", "down"]],
    ["up: a success in between resets the count", [ok, fail, fail, ok, fail, fail], ["up", "up", "up", "up", "up", "up"]],
    ["down: it takes three successes to come back", [fail, ok, ok, ok], ["down", "down", "down", "up"]],
    ["down: a miss in between resets the count", [fail, ok, ok, fail, ok, ok, ok], ["down", "down", "down", "down", "down", "down", "up"]],
    ["never a handshake is a miss even if the probe passed", [never, never], ["down", "down"]],
    ["a handshake older than 300 s is a miss even if the probe passed", [ok, stale, stale, stale], ["up", "up", "up", "down"]],
    ["a handshake of exactly 300 s still counts as live", [ok, { ...ok, handshakeAgeSeconds: 300 }], ["up", "up"]],
  ];
  for (const [name, samples, want] of rows) test(name, () => expect(run(samples).states).toEqual(want));

  test("each change says why; other steps do not claim a change", () => {
    expect(run([ok, fail, fail, fail, ok, ok, ok]).changes).toEqual([
      "up: first probe succeeded",
      "down: 3 misses in a row, last: probe failed: timeout after 2 s",
      "up: 3 successful probes in a row",
    ]);
    expect(run([never]).changes).toEqual(["down: no handshake yet"]);
  });

  test("other thresholds", () => {
    let h = INITIAL_HEALTH;
    const policy = { downAfter: 1, upAfter: 1, staleHandshakeSeconds: 10 };
    const states: HealthState[] = [];
    for (const s of [ok, fail, ok, { ...ok, handshakeAgeSeconds: 11 }]) {
      h = observeHealth(h, s, policy).health;
      states.push(h.state);
    }
    expect(states).toEqual(["up", "down", "up", "down"]);
  });

  test("the last reason is kept for status, and cleared by a success", () => {
    const a = observeHealth(observeHealth(INITIAL_HEALTH, ok).health, fail).health;
    expect(a.lastReason).toBe("probe failed: timeout after 2 s");
    expect(observeHealth(a, ok).health.lastReason).toBe("");
  });
});

describe("chooseActive", () => {
  const ex = (...states: HealthState[]) => states.map((state, i) => ({ name: `e${i}`, state }));
  const rows: [string, ReturnType<typeof ex>, string | null, "preempt" | "stay", string | null][] = [
    ["the first up exit", ex("up", "up"), null, "preempt", "e0"],
    ["skips a down first exit", ex("down", "up"), "e0", "preempt", "e1"],
    ["skips unknown exits", ex("unknown", "up"), null, "preempt", "e1"],
    ["preempt: returns to the first once it is up again", ex("up", "up"), "e1", "preempt", "e0"],
    ["stay: keeps the current while it is up", ex("up", "up"), "e1", "stay", "e1"],
    ["stay: leaves the current when it goes down", ex("up", "down"), "e1", "stay", "e0"],
    ["stay with no current: the first up", ex("down", "up", "up"), null, "stay", "e1"],
    ["none up: null, so the kill switch holds", ex("down", "down"), "e0", "preempt", null],
    ["none up, stay: null too", ex("down", "unknown"), "e0", "stay", null],
    ["no exits", [], null, "preempt", null],
    ["a current that is no longer configured is not kept", ex("up"), "gone", "stay", "e0"],
  ];
  for (const [name, exits, current, failback, want] of rows) test(name, () => expect(chooseActive(exits, current, failback)).toBe(want));
});
