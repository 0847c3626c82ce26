/**
 * `egressd_ready`: what `/readyz` answers, as a gauge, so that an alert can say "not ready" for
 * longer than a probe's interval without scraping `/readyz` itself. The daemon's view decides
 * readiness; this only renders it.
 */
import { scalarFamily, type MetricFamily } from "./exposition.ts";
import type { Collector } from "./registry.ts";

/** Name of the readiness gauge. */
export const READY_METRIC = "egressd_ready";

/** Where readiness is read from: the same decision `/readyz` serves. */
export interface ReadinessSource {
  ready(): Promise<{ ok: boolean }>;
}

/** Renders readiness. Pure. */
export function readinessFamilies(ok: boolean): MetricFamily[] {
  return [scalarFamily(READY_METRIC, "1 when egressd is ready (/readyz answers 200), 0 otherwise.", "gauge", ok ? 1 : 0)];
}

/** The `readiness` collector. */
export function readinessCollector(source: ReadinessSource): Collector {
  return { name: "readiness", collect: async () => readinessFamilies((await source.ready()).ok) };
}
