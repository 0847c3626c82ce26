/**
 * The reconcile loop's families: passes completed and repairs made, by host object. Every object is
 * exported from the first scrape (at 0).
 */
import { labeledFamily, scalarFamily, type MetricFamily } from "./exposition.ts";
import type { Collector } from "./registry.ts";
import { RECONCILE_OBJECTS, type ReconcileSource, type ReconcileStats } from "./sources.ts";

/** Family names of the reconcile metrics. */
export const RECONCILE_METRICS = {
  runs: "egressd_reconcile_runs_total",
  repairs: "egressd_reconcile_repairs_total",
} as const;

/** Renders reconcile counters. Pure. */
export function reconcileFamilies(stats: ReconcileStats): MetricFamily[] {
  const M = RECONCILE_METRICS;
  return [
    scalarFamily(M.runs, "Reconcile passes completed.", "counter", stats.runs),
    labeledFamily(
      M.repairs,
      "Host objects found missing or changed and put back, by object.",
      "counter",
      "object",
      RECONCILE_OBJECTS.map((o) => [o, stats.repairs[o] ?? 0]),
    ),
  ];
}

/** The `reconcile` collector. */
export function reconcileCollector(source: ReconcileSource): Collector {
  return { name: "reconcile", collect: async () => reconcileFamilies(await source.stats()) };
}
