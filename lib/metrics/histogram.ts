/**
 * A histogram: observations counted into cumulative `le` buckets, plus their sum and count.
 *
 * Besides the instrument, {@link histogramSamples} renders a {@link HistogramSnapshot} that another
 * module keeps itself (the proxy's connect-duration histogram), so that module never imports this one.
 */
import { InvalidMetricError } from "./errors.ts";
import { formatValue, type Labels, type MetricFamily, type Sample } from "./exposition.ts";
import { Instrument, type InstrumentOptions, type LabelValues } from "./instrument.ts";

/** Prometheus' default buckets (client_golang `DefBuckets`), in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

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

/** Options for {@link Histogram}: those of every instrument plus the buckets. */
export interface HistogramOptions<L extends string> extends InstrumentOptions<L> {
  /** Upper bounds, strictly increasing and finite. Default {@link DEFAULT_BUCKETS}. */
  buckets?: readonly number[];
}

/** The handle for one label-value combination. */
export interface HistogramChild {
  /** Records one observation. NaN is rejected: it would poison `_sum` forever. */
  observe(value: number): void;
  /** The current state. */
  snapshot(): HistogramSnapshot;
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

interface State {
  counts: number[];
  sum: number;
}

/** A histogram family. `L` is the union of its label names. */
export class Histogram<L extends string = never> extends Instrument<L, State> {
  readonly #bounds: readonly number[];

  /** Throws {@link InvalidMetricError} on a bad name, label names or buckets. See {@link HistogramOptions}. */
  constructor(opts: HistogramOptions<L>) {
    const bounds = [...(opts.buckets ?? DEFAULT_BUCKETS)];
    validateBuckets(opts.name, bounds);
    super("histogram", opts, () => ({ counts: new Array<number>(bounds.length + 1).fill(0), sum: 0 }));
    this.#bounds = bounds;
  }

  /** The child for `values`. */
  labels(values: LabelValues<L>): HistogramChild {
    const state = this.children.get(values);
    const bounds = this.#bounds;
    const metric = this.name;
    return {
      observe(value) {
        if (Number.isNaN(value)) throw new InvalidMetricError(metric, "cannot observe NaN");
        let i = 0;
        while (i < bounds.length && value > bounds[i]!) i++;
        state.counts[i]!++;
        state.sum += value;
      },
      snapshot: () => ({ bounds, counts: [...state.counts], sum: state.sum }),
    };
  }

  /** Records one observation on an unlabeled histogram. */
  observe(value: number): void {
    this.labels(this.unlabeled()).observe(value);
  }

  /** The state of an unlabeled histogram. */
  snapshot(): HistogramSnapshot {
    return this.labels(this.unlabeled()).snapshot();
  }

  /** One `histogram` family: for each child, its buckets, sum and count. */
  collect(): MetricFamily[] {
    const samples: Sample[] = [];
    for (const { labels, state } of this.children.entries()) {
      samples.push(...histogramSamples(this.name, labels, { bounds: this.#bounds, counts: state.counts, sum: state.sum }));
    }
    return [{ name: this.name, help: this.help, type: "histogram", samples }];
  }
}
