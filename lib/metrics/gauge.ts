/**
 * A gauge: a value that can go up and down, exported with the `gauge` type.
 */
import { InvalidMetricError } from "./errors.ts";
import type { MetricFamily } from "./exposition.ts";
import { LabeledChildren, validateDefinition, type InstrumentOptions, type LabelValues } from "./labels.ts";
import type { Collector } from "./registry.ts";

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
export class Gauge<L extends string = never> implements Collector {
  /** The family name. */
  readonly name: string;
  readonly #help: string;
  readonly #labelNames: readonly L[];
  readonly #children: LabeledChildren<L, { value: number }>;

  /** Throws {@link InvalidMetricError} on a bad name or label names. See {@link InstrumentOptions}. */
  constructor(opts: InstrumentOptions<L>) {
    const labelNames = opts.labelNames ?? [];
    validateDefinition(opts.name, labelNames, "gauge");
    this.name = opts.name;
    this.#help = opts.help;
    this.#labelNames = labelNames;
    this.#children = new LabeledChildren(opts.name, labelNames, () => ({ value: 0 }));
    if (labelNames.length === 0) this.#children.get(undefined);
    for (const values of opts.initial ?? []) this.#children.get(values);
  }

  /** The child for `values`. */
  labels(values: LabelValues<L>): GaugeChild {
    const state = this.#children.get(values);
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
    this.labels(this.#unlabeled()).set(value);
  }

  /** Adds `by` (default 1) to an unlabeled gauge. */
  inc(by = 1): void {
    this.labels(this.#unlabeled()).inc(by);
  }

  /** Subtracts `by` (default 1) from an unlabeled gauge. */
  dec(by = 1): void {
    this.labels(this.#unlabeled()).dec(by);
  }

  /** The value of an unlabeled gauge. */
  get(): number {
    return this.#children.get(this.#unlabeled()).value;
  }

  /** Drops every labeled child, e.g. before re-setting the series that still exist. */
  reset(): void {
    this.#children.clear();
    if (this.#labelNames.length === 0) this.#children.get(undefined);
  }

  #unlabeled(): LabelValues<L> {
    if (this.#labelNames.length > 0) throw new InvalidMetricError(this.name, "labeled: use labels({...})");
    return {} as LabelValues<L>;
  }

  /** One `gauge` family with a sample per child. */
  collect(): MetricFamily[] {
    const samples = [...this.#children.entries()].map(({ labels, state }) => ({ name: this.name, labels, value: state.value }));
    return [{ name: this.name, help: this.#help, type: "gauge", samples }];
  }
}
