// Layer 1: what the open-files limit can hold.
import { describe, expect, test } from "bun:test";
import { connectionCapacity, fdHeadroom, pauseAt, resumeAt } from "../../lib/proxy/fd-budget.ts";

describe("fdHeadroom", () => {
  test.each([
    [64, 16],
    [256, 16],
    [320, 16],
    [1024, 52],
    [65536, 3277],
  ])("limit %d -> %d fds kept free", (limit, want) => expect(fdHeadroom(limit)).toBe(want));
});

describe("connectionCapacity: two fds per connection, after what is open and the headroom", () => {
  test.each([
    // [limit, open at start, connections]
    [256, 20, 110], // (256 - 20 - 16) / 2
    [1024, 12, 480], // (1024 - 12 - 52) / 2
    [65536, 30, 31114], // the unit's LimitNOFILE holds the default 20000
    [20000, 15, 9492],
    [257, 20, 110], // rounded down
    [40, 20, 2],
    [30, 20, 1], // never 0: one connection, even when the limit is tiny
    [10, 20, 1],
  ])("limit %d with %d open -> %d", (limit, open, want) => expect(connectionCapacity(limit, open)).toBe(want));
});

describe("pauseAt and resumeAt", () => {
  test.each([
    [256, 252, 248],
    [1024, 1011, 998],
    [65536, 64716, 63897],
  ])("limit %d: pause at %d open, resume at %d", (limit, pause, resume) => {
    expect(pauseAt(limit)).toBe(pause);
    expect(resumeAt(limit)).toBe(resume);
  });
  test("resume below pause, pause below the limit, and both above what admitted connections can hold", () => {
    for (const limit of [64, 256, 1024, 4096, 65536, 1048576]) {
      const open = 20;
      const held = open + 2 * connectionCapacity(limit, open);
      expect(resumeAt(limit)).toBeLessThan(pauseAt(limit));
      expect(pauseAt(limit)).toBeLessThan(limit);
      expect(held).toBeLessThanOrEqual(resumeAt(limit));
    }
  });
});
