// Layer 2: dials to a blackholed address, in a network namespace of the test's own where
// nftables drops every packet to 203.0.113.0/24. A dial that was given up must close its socket
// at once instead of leaving it in SYN-SENT until the kernel gives up (~2 minutes).
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { BUN } from "./helpers.ts";

const namespaces: string[] = [];
afterAll(async () => {
  for (const ns of namespaces) await Bun.spawn(["ip", "netns", "del", ns]).exited;
});

/** A namespace with loopback up and a route to 203.0.113.0/24 whose packets nftables drops. */
async function blackholeNamespace(): Promise<string> {
  // The lab's naming (egt-<pid>-<seq>-...), so that cleanupStaleLabs removes it if this process dies.
  const ns = `egt-${process.pid}-${950 + namespaces.length}-bh`;
  namespaces.push(ns);
  for (const argv of [
    ["ip", "netns", "add", ns],
    ["ip", "-n", ns, "link", "set", "lo", "up"],
    ["ip", "-n", ns, "route", "add", "203.0.113.0/24", "dev", "lo"],
  ]) {
    expect(await Bun.spawn(argv).exited).toBe(0);
  }
  const nft = Bun.spawn(["ip", "netns", "exec", ns, "nft", "-f", "-"], {
    stdin: new TextEncoder().encode("table inet egt_blackhole {\n chain out {\n  type filter hook output priority 0;\n  ip daddr 203.0.113.0/24 drop\n }\n}\n"),
  });
  expect(await nft.exited).toBe(0);
  return ns;
}

// Regression: lost Happy Eyeballs attempts and dials to a blackholed address stayed in SYN-SENT
// until the kernel gave up: in one run the fd count stayed 350 above baseline for 124 s.
test("after a flood of dials to a blackholed address, the proxy's fds are back to baseline within the connect timeout", async () => {
  const ns = await blackholeNamespace();
  const p = Bun.spawn(["ip", "netns", "exec", ns, BUN, join(import.meta.dir, "blackhole-flood.ts"), "300", "1s", "5000"], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`blackhole-flood.ts exited ${code}: ${err}`);
  const r = JSON.parse(out) as { baseline: number; peak: number; replies: Record<string, number>; backAfterMs: number | null; left: number };
  console.log(`blackhole flood: ${out.trim()}`);
  expect(r.replies).toEqual({ "6": 300 }); // every client: TTL expired, after the 1 s connect timeout
  expect(r.peak).toBeGreaterThan(r.baseline + 300); // the dials were really pending at once
  // Back at the baseline within the connect timeout (1 s) after the last reply, not minutes later.
  expect(r.backAfterMs).not.toBeNull();
  expect(r.backAfterMs!).toBeLessThan(1000);
  expect(r.left).toBe(0);
}, 60_000);
