/**
 * A gauge: a value that can go up and down, exported with the `gauge` type.
 */
import type { MetricFamily } from "./exposition.ts";
import { Instrument, type InstrumentOptions, type LabelValues } from "./instrument.ts";

/** The handle for one label-value combination. */
export interface GaugeChild {
  /** Sets the value. */
  set(value: number): void;
  /** Adds `by` (default 1). */
  inc(by?: number): void;
  /** Subtracts `by` (default 1). */
  dec(by?: number): void;
  /** The current value. */
  get(): number;
}

/** A gauge family. `L` is the union of its label names. */
export class Gauge<L extends string = never> extends Instrument<L, { value: number }> {
  /** Throws `InvalidMetricError` on a bad name or label names. See {@link InstrumentOptions}. */
  constructor(opts: InstrumentOptions<L>) {
    super("gauge", opts, () => ({ value: 0 }));
  }

  /** The child for `values`. */
  labels(values: LabelValues<L>): GaugeChild {
    const state = this.children.get(values);
    return {
      set(value) {
        state.value = value;
      },
      inc(by = 1) {
        state.value += by;
      },
      dec(by = 1) {
        state.value -= by;
      },
      get: () => state.value,
    };
  }

  /** Sets an unlabeled gauge. */
  set(value: number): void {
    this.labels(this.unlabeled()).set(value);
  }

  /** Adds `by` (default 1) to an unlabeled gauge. */
  inc(by = 1): void {
    this.labels(this.unlabeled()).inc(by);
  }

  /** Subtracts `by` (default 1) from an unlabeled gauge. */
  dec(by = 1): void {
    this.labels(this.unlabeled()).dec(by);
  }

  /** The value of an unlabeled gauge. */
  get(): number {
    return this.children.get(this.unlabeled()).value;
  }

  /** Drops every labeled child, e.g. before re-setting the series that still exist. */
  reset(): void {
    this.children.clear();
    if (this.isUnlabeled) this.children.get(undefined);
  }

  /** One `gauge` family with a sample per child. */
  collect(): MetricFamily[] {
    const samples = [...this.children.entries()].map(({ labels, state }) => ({ name: this.name, labels, value: state.value }));
    return [{ name: this.name, help: this.help, type: "gauge", samples }];
  }
}
