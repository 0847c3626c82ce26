/**
 * Histogram samples from a {@link HistogramSnapshot} that another module keeps itself (the proxy's
 * connect-duration histogram), so that module never imports this one. egressd has no push-style
 * instruments: every family is rendered at scrape time from a source's state.
 */
import { InvalidMetricError } from "./errors.ts";
import { formatValue, type Labels, type Sample } from "./exposition.ts";

/**
 * A histogram's state as plain data.
 *
 * `counts[i]` is the number of observations `v` with `bounds[i-1] < v <= bounds[i]` (not
 * cumulative); the last entry, `counts[bounds.length]`, counts those above the highest bound.
 */
export interface HistogramSnapshot {
  /** Upper bounds, strictly increasing and finite; `+Inf` is implied. */
  readonly bounds: readonly number[];
  /** Per-bucket counts; `bounds.length + 1` entries. */
  readonly counts: readonly number[];
  /** Sum of all observations. */
  readonly sum: number;
}

/** Throws {@link InvalidMetricError} unless `bounds` is strictly increasing and finite. */
export function validateBuckets(metric: string, bounds: readonly number[]): void {
  for (let i = 0; i < bounds.length; i++) {
    const b = bounds[i]!;
    if (!Number.isFinite(b)) throw new InvalidMetricError(metric, `bucket bound ${b} is not finite (+Inf is implied)`);
    if (i > 0 && !(b > bounds[i - 1]!)) throw new InvalidMetricError(metric, "bucket bounds must increase strictly");
  }
}

/**
 * Renders a snapshot as `_bucket` samples (cumulative, `le` appended after the given labels), then
 * `_sum` and `_count`. Throws {@link InvalidMetricError} if `counts` does not fit `bounds`.
 */
export function histogramSamples(name: string, labels: Labels, snap: HistogramSnapshot): Sample[] {
  validateBuckets(name, snap.bounds);
  if (snap.counts.length !== snap.bounds.length + 1) {
    throw new InvalidMetricError(name, `${snap.counts.length} bucket counts for ${snap.bounds.length} bounds (+Inf needs one more)`);
  }
  const out: Sample[] = [];
  let cumulative = 0;
  for (let i = 0; i <= snap.bounds.length; i++) {
    cumulative += snap.counts[i]!;
    const le = i < snap.bounds.length ? formatValue(snap.bounds[i]!) : "+Inf";
    out.push({ name: `${name}_bucket`, labels: [...labels, ["le", le]], value: cumulative });
  }
  out.push({ name: `${name}_sum`, labels, value: snap.sum });
  out.push({ name: `${name}_count`, labels, value: cumulative });
  return out;
}
