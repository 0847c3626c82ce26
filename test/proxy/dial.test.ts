// Layer 1: RFC 8305 §4 address ordering, as a table.
import { expect, test } from "bun:test";
import { formatIp, parseIp } from "../../lib/net/ip.ts";
import { interleaveFamilies } from "../../lib/proxy/dial.ts";

test.each([
  [[], []],
  [["192.0.2.1"], ["192.0.2.1"]],
  [["2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2"], ["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2"]],
  [["2001:db8::1", "192.0.2.1", "192.0.2.2", "192.0.2.3"], ["2001:db8::1", "192.0.2.1", "192.0.2.2", "192.0.2.3"]],
  [["192.0.2.1", "192.0.2.2", "2001:db8::1"], ["192.0.2.1", "2001:db8::1", "192.0.2.2"]], // the first family leads
  [["2001:db8::1", "2001:db8::2"], ["2001:db8::1", "2001:db8::2"]],
])("%p -> %p", (input, want) => {
  expect(interleaveFamilies(input.map((a) => parseIp(a)!)).map(formatIp)).toEqual(want);
});
