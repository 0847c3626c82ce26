/**
 * The reconcile loop's families: passes completed and repairs made, by host object. Every object is
 * exported from the first scrape (at 0).
 */
import type { MetricFamily } from "./exposition.ts";
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
    {
      name: M.runs,
      help: "Reconcile passes completed.",
      type: "counter",
      samples: [{ name: M.runs, labels: [], value: stats.runs }],
    },
    {
      name: M.repairs,
      help: "Host objects found missing or changed and put back, by object.",
      type: "counter",
      samples: RECONCILE_OBJECTS.map((object) => ({
        name: M.repairs,
        labels: [["object", object]],
        value: stats.repairs[object] ?? 0,
      })),
    },
  ];
}

/** The `reconcile` collector. */
export function reconcileCollector(source: ReconcileSource): Collector {
  return { name: "reconcile", collect: async () => reconcileFamilies(await source.stats()) };
}
