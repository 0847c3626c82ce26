// Layer 3: the relay when the route refuses a datagram, in a network namespace of its own whose
// default route is `unreachable` (what the kill switch leaves when the tunnel is gone).
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { BUN } from "./helpers.ts";

const ns = `egt-${process.pid}-950-udp`; // the lab's naming, so a crashed run's namespace is swept
afterAll(async () => {
  await Bun.spawn(["ip", "netns", "del", ns], { stderr: "ignore" }).exited;
});

// Regression: Bun's UDP send() throws EHOSTUNREACH (it returns false only for a full buffer); the
// throw escaped the relay socket's data handler and took the process down with the kill switch on.
test("a datagram the route refuses (EHOSTUNREACH) is dropped as send_failed; the association still relays", async () => {
  for (const argv of [["ip", "netns", "add", ns], ["ip", "-n", ns, "link", "set", "lo", "up"], ["ip", "-n", ns, "route", "add", "unreachable", "default"]]) {
    expect(await Bun.spawn(argv).exited).toBe(0);
  }
  const p = Bun.spawn(["ip", "netns", "exec", ns, BUN, join(import.meta.dir, "udp-unreachable.ts")], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect({ code, err: err.trim() }).toEqual({ code: 0, err: "" });
  const r = JSON.parse(out);
  expect({ echoed: r.echoed, sendFailed: r.drops.send_failed, active: r.associationsActive }).toEqual({ echoed: "echo:after", sendFailed: 1, active: 1 });
}, 30_000);
