/**
 * The leak guard's families: marked packets (and their bytes) that the nftables guard dropped
 * because they were about to leave by an interface other than the tunnel (docs/design.md, trap 3).
 *
 * The values are the nft counter's own. If reconcile re-creates our table the counter restarts at
 * 0; Prometheus treats that as a counter reset, so `increase()` stays right.
 */
import { scalarFamily, type MetricFamily } from "./exposition.ts";
import type { Collector } from "./registry.ts";
import type { LeakGuardCounters, MaybePromise } from "./sources.ts";

/** Family names of the leak-guard metrics. */
export const LEAK_GUARD_METRICS = {
  packets: "egressd_leak_guard_dropped_packets_total",
  bytes: "egressd_leak_guard_dropped_bytes_total",
} as const;

/** Renders the leak guard's counter. Pure. */
export function leakGuardFamilies(c: LeakGuardCounters): MetricFamily[] {
  const M = LEAK_GUARD_METRICS;
  return [
    scalarFamily(M.packets, "Marked packets the leak guard dropped on their way out of a non-tunnel interface.", "counter", c.packets),
    scalarFamily(M.bytes, "Bytes of the marked packets the leak guard dropped.", "counter", c.bytes),
  ];
}

/** The `leak_guard` collector; `read` should be cached (it may fork `nft`). */
export function leakGuardCollector(read: () => MaybePromise<LeakGuardCounters>): Collector {
  return { name: "leak_guard", collect: async () => leakGuardFamilies(await read()) };
}
