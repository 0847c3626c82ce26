/**
 * What the instruments (counter, gauge, histogram) share: validating the definition, keeping one
 * child per label-value combination in first-use order, and the unlabeled shorthand.
 *
 * Values are looked up by the declared label names, so a caller cannot reorder labels by passing an
 * object whose keys are in another order: rendering always follows `labelNames`.
 */
import { InvalidMetricError } from "./errors.ts";
import { isValidLabelName, isValidMetricName, type Labels, type MetricFamily } from "./exposition.ts";
import type { Collector } from "./registry.ts";

/** Label values keyed by label name; exactly the declared names, no more, no fewer. */
export type LabelValues<L extends string> = Readonly<Record<L, string>>;

/** What every instrument is defined with. */
export interface InstrumentOptions<L extends string> {
  /** Metric family name, e.g. `egressd_proxy_connections_total`. */
  name: string;
  /** One-line `# HELP` text. */
  help: string;
  /** Label names, in rendering order. Default: none. */
  labelNames?: readonly L[];
  /**
   * Label-value combinations exported (at zero) before their first use, so that `rate()` and
   * `absent()` see them from the first scrape. Default: none.
   */
  initial?: readonly LabelValues<L>[];
}

/** Names a histogram reserves for its own `le` label. */
const RESERVED: Record<string, readonly string[]> = { histogram: ["le"] };

/**
 * Validates an instrument's name and label names. Throws {@link InvalidMetricError}.
 * `kind` selects the reserved label names (`le` for histograms).
 */
export function validateDefinition(name: string, labelNames: readonly string[], kind: string): void {
  if (!isValidMetricName(name)) throw new InvalidMetricError(name, "invalid metric name");
  const seen = new Set<string>();
  for (const l of labelNames) {
    if (!isValidLabelName(l)) throw new InvalidMetricError(name, `invalid label name "${l}"`);
    if (RESERVED[kind]?.includes(l)) throw new InvalidMetricError(name, `label "${l}" is reserved for a ${kind}`);
    if (seen.has(l)) throw new InvalidMetricError(name, `label "${l}" declared twice`);
    seen.add(l);
  }
}

/** One child per label-value combination; `T` is the child's state. */
export class LabeledChildren<L extends string, T> {
  readonly #metric: string;
  readonly #labelNames: readonly L[];
  readonly #create: () => T;
  readonly #children = new Map<string, { labels: Labels; state: T }>();

  /** `create` makes the state of a new child. */
  constructor(metric: string, labelNames: readonly L[], create: () => T) {
    this.#metric = metric;
    this.#labelNames = labelNames;
    this.#create = create;
  }

  /** The child for `values`, created on first use. Throws {@link InvalidMetricError} on a wrong label set. */
  get(values: LabelValues<L> | undefined): T {
    const v = (values ?? {}) as Record<string, unknown>;
    const keys = Object.keys(v);
    if (keys.length !== this.#labelNames.length) {
      throw new InvalidMetricError(this.#metric, `expected labels [${this.#labelNames.join(",")}], got [${keys.join(",")}]`);
    }
    const parts: string[] = [];
    for (const name of this.#labelNames) {
      const value = v[name];
      if (typeof value !== "string") {
        throw new InvalidMetricError(this.#metric, `label "${name}" must be a string, got ${typeof value}`);
      }
      parts.push(value);
    }
    // JSON, not a separator join: no label value can make two different combinations collide.
    const key = JSON.stringify(parts);
    let child = this.#children.get(key);
    if (!child) {
      child = { labels: this.#labelNames.map((n, i) => [n, parts[i]!] as const), state: this.#create() };
      this.#children.set(key, child);
    }
    return child.state;
  }

  /** All children, in creation order, with their labels in declared order. */
  entries(): Iterable<{ labels: Labels; state: T }> {
    return this.#children.values();
  }

  /** Drops every child (the next scrape shows none until they are used again). */
  clear(): void {
    this.#children.clear();
  }
}

/**
 * The base of Counter, Gauge and Histogram: a named family whose children hold state `T`.
 * An unlabeled instrument has its one child from the start, so it renders 0 before first use.
 */
export abstract class Instrument<L extends string, T> implements Collector {
  /** The family name. */
  readonly name: string;
  /** The `# HELP` text. */
  protected readonly help: string;
  /** One child per label-value combination. */
  protected readonly children: LabeledChildren<L, T>;
  readonly #labelNames: readonly L[];

  /** Throws {@link InvalidMetricError} on a bad name or label names; `kind` as in {@link validateDefinition}. */
  constructor(kind: string, opts: InstrumentOptions<L>, create: () => T) {
    const labelNames = opts.labelNames ?? [];
    validateDefinition(opts.name, labelNames, kind);
    this.name = opts.name;
    this.help = opts.help;
    this.#labelNames = labelNames;
    this.children = new LabeledChildren(opts.name, labelNames, create);
    if (labelNames.length === 0) this.children.get(undefined);
    for (const values of opts.initial ?? []) this.children.get(values);
  }

  /** The empty label set of an unlabeled instrument; throws {@link InvalidMetricError} on a labeled one. */
  protected unlabeled(): LabelValues<L> {
    if (this.#labelNames.length > 0) throw new InvalidMetricError(this.name, "labeled: use labels({...})");
    return {} as LabelValues<L>;
  }

  /** True when the instrument has no labels. */
  protected get isUnlabeled(): boolean {
    return this.#labelNames.length === 0;
  }

  /** The family as of now. */
  abstract collect(): MetricFamily[];
}
