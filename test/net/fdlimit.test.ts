// Layer 1 and 2: reading the open-files limit, and the count of open fds.
import { describe, expect, test } from "bun:test";
import { closeSync, openSync } from "node:fs";
import { fdLimit, fdsExhausted, openFdCount } from "../../lib/net/fdlimit.ts";
import { lowestFreeFd } from "../../lib/net/sockopt.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe("fdLimit: the soft limit from /proc/self/limits", () => {
  test.each([
    ["a typical table", LIMITS, 1024],
    ["unlimited", LIMITS.replace("1024                 524288", "unlimited            unlimited"), null],
    ["no such row", "Limit Soft Limit Hard Limit Units\nMax cpu time unlimited unlimited seconds\n", null],
    ["empty", "", null],
    ["garbage in the field", LIMITS.replace("1024 ", "10x4 "), null],
    ["zero", LIMITS.replace("1024 ", "0    "), null],
  ])("%s", (_name, text, want) => expect(fdLimit(text)).toBe(want));

  test("this process's own limit is a positive number", () => {
    const n = fdLimit();
    expect(n === null || n > 0).toBe(true);
  });
});

test("openFdCount follows opens and closes; lowestFreeFd is the fd the next open gets; not exhausted", () => {
  lowestFreeFd(); // opens the /dev/null fd it keeps for dup
  const before = openFdCount()!;
  const next = lowestFreeFd();
  const fd = openSync("/dev/null", "r");
  expect(fd).toBe(next!);
  expect(openFdCount()).toBe(before + 1);
  closeSync(fd);
  expect(openFdCount()).toBe(before);
  expect(fdsExhausted()).toBeNull();
});
