/**
 * A counter: a value that only goes up, exported with the `counter` type.
 *
 * It does not add `_total` for you: the name you give is the name rendered, so the convention is
 * checked (a counter whose name does not end in `_total` is rejected) rather than applied silently.
 */
import { InvalidMetricError } from "./errors.ts";
import type { MetricFamily } from "./exposition.ts";
import { Instrument, type InstrumentOptions, type LabelValues } from "./instrument.ts";

/** The handle for one label-value combination; keep it on hot paths to skip the lookup. */
export interface CounterChild {
  /** Adds `by` (default 1). Throws {@link InvalidMetricError} if `by` is negative or not finite. */
  inc(by?: number): void;
  /** The current value. */
  get(): number;
}

/** A counter family. `L` is the union of its label names. */
export class Counter<L extends string = never> extends Instrument<L, { value: number }> {
  /** Throws {@link InvalidMetricError} on a bad name or label names. See {@link InstrumentOptions}. */
  constructor(opts: InstrumentOptions<L>) {
    if (!opts.name.endsWith("_total")) throw new InvalidMetricError(opts.name, "a counter's name ends in _total");
    super("counter", opts, () => ({ value: 0 }));
  }

  /** The child for `values`. */
  labels(values: LabelValues<L>): CounterChild {
    const state = this.children.get(values);
    const metric = this.name;
    return {
      inc(by = 1) {
        if (!(by >= 0) || by === Infinity) throw new InvalidMetricError(metric, `cannot add ${by} to a counter`);
        state.value += by;
      },
      get: () => state.value,
    };
  }

  /** Adds `by` (default 1) to an unlabeled counter. */
  inc(by = 1): void {
    this.labels(this.unlabeled()).inc(by);
  }

  /** The value of an unlabeled counter. */
  get(): number {
    return this.children.get(this.unlabeled()).value;
  }

  /** One `counter` family with a sample per child. */
  collect(): MetricFamily[] {
    const samples = [...this.children.entries()].map(({ labels, state }) => ({ name: this.name, labels, value: state.value }));
    return [{ name: this.name, help: this.help, type: "counter", samples }];
  }
}
