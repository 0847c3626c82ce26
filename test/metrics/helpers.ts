/** Test helpers for test/metrics. */
import type { Fields, Level, Logger } from "../../lib/log/logger.ts";
import type { EgressdSources } from "../../lib/metrics/egressd.ts";
import type { WgPeerSample } from "../../lib/metrics/sources.ts";

/** A logger that keeps what it was told. */
export function recordingLogger(): Logger & { lines: { level: Level; msg: string; fields?: Fields }[] } {
  const lines: { level: Level; msg: string; fields?: Fields }[] = [];
  const at = (level: Level) => (msg: string, fields?: Fields) => void lines.push({ level, msg, fields });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), debugEnabled: true };
}

/** A clock tests move by hand (ms). */
export function manualClock(start = 0): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** The exit peer's public key in the fakes. */
export const EXIT_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
/** The exit peer as `wg show dump` would list it. */
export const PEER: WgPeerSample = {
  interface: "wg-egress",
  publicKey: EXIT_KEY,
  endpoint: "203.0.113.5:51820",
  allowedIps: ["0.0.0.0/0"],
  latestHandshake: 1_763_799_990,
  rxBytes: 10,
  txBytes: 20,
};

/** Sources whose fork-costly reads count their calls. */
export function fakeSources(): EgressdSources & { calls: { dump: number; nft: number } } {
  const calls = { dump: 0, nft: 0 };
  return {
    calls,
    wireguard: { dump: async () => (calls.dump++, [PEER]) },
    proxy: {
      stats: () => ({
        connectionsActive: 1,
        connectionsTotal: { ok: 5 },
        relayedBytes: { upstream: 300, downstream: 4000 },
        connectDuration: { bounds: [0.1, 1], counts: [4, 1, 0], sum: 0.7 },
      }),
    },
    tunnel: { state: () => ({ up: true, implementation: "userspace", endpointReresolutions: 0 }) },
    reconcile: { stats: () => ({ runs: 3, repairs: {} }) },
    leakGuard: { counters: async () => (calls.nft++, { packets: 2, bytes: 120 }) },
  };
}
