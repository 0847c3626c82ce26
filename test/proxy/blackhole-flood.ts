/**
 * Run by blackhole-dials.test.ts inside a network namespace of its own (`ip netns exec`), where
 * nftables drops every packet to 203.0.113.0/24:
 *
 *   bun test/proxy/blackhole-flood.ts CLIENTS CONNECT_TIMEOUT WATCH_MS
 *
 * Starts `egressd proxy` with that connect timeout, sends CLIENTS SOCKS5 CONNECTs to
 * 203.0.113.x:80 at once, and watches the proxy's open fds (/proc/<pid>/fd) for WATCH_MS after
 * the last reply. Prints `{"baseline","peak","replies","backAfterMs","left"}`: backAfterMs is
 * when the fd count was back at the baseline, counted from the last reply (null if it never
 * was); left is how many fds above the baseline were still open at the end.
 */
import { readdirSync } from "node:fs";
import { cleanup, host, socksConnect, spawnProxy } from "./helpers.ts";

const [clientsText, connectTimeout, watchText] = process.argv.slice(2);
const clients = Number(clientsText);
const watchMs = Number(watchText);

try {
  const proxy = await spawnProxy(["--allow-destination", "203.0.113.0/24", "--connect-timeout", connectTimeout!, "--max-connections", "5000"]);
  const fds = () => readdirSync(`/proc/${proxy.proc.pid}/fd`).length;
  // One dial first, so that whatever the proxy opens once for its first dial is in the baseline.
  (await socksConnect(proxy.port, host("203.0.113.254"), 80)).conn.end();
  await Bun.sleep(100);
  const baseline = fds();
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, fds())), 20);
  const replies: Record<number, number> = {};
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const { conn, reply } = await socksConnect(proxy.port, host(`203.0.113.${1 + (i % 200)}`), 80);
      replies[reply.reply] = (replies[reply.reply] ?? 0) + 1;
      conn.end();
    }),
  );
  const t0 = performance.now();
  let backAfterMs: number | null = null;
  while (performance.now() - t0 < watchMs) {
    if (fds() <= baseline) {
      backAfterMs = Math.round(performance.now() - t0);
      break;
    }
    await Bun.sleep(20);
  }
  clearInterval(sampler);
  console.log(JSON.stringify({ baseline, peak, replies, backAfterMs, left: fds() - baseline }));
} finally {
  await cleanup();
}
