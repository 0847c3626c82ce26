/**
 * The Prometheus text exposition format, version 0.0.4, as pure functions over plain data.
 *
 * Reference: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 *
 * It does not speak OpenMetrics, does not compress, and does not collect anything: collectors hand
 * it {@link MetricFamily} values and it renders them. Label order is exactly the order of the label
 * pairs given (never sorted), because the WireGuard families must match prometheus-wireguard-exporter
 * byte for byte.
 */
import { InvalidMetricError } from "./errors.ts";

/** The `Content-Type` of a 0.0.4 text exposition. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The metric types this module renders (`# TYPE` values). Summaries are deliberately absent. */
export type MetricType = "counter" | "gauge" | "histogram" | "untyped";

/** Label pairs in rendering order. */
export type Labels = ReadonlyArray<readonly [name: string, value: string]>;

/** One line of a family: `name{labels} value`. */
export interface Sample {
  /** Full sample name; for histograms it carries the `_bucket`, `_sum` or `_count` suffix. */
  readonly name: string;
  readonly labels: Labels;
  readonly value: number;
}

/** A `# HELP` + `# TYPE` header and all samples that belong to it. */
export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** True if `name` is a valid metric name. */
export function isValidMetricName(name: string): boolean {
  return METRIC_NAME.test(name);
}

/** True if `name` is a valid label name. Names starting with `__` are reserved for Prometheus. */
export function isValidLabelName(name: string): boolean {
  return LABEL_NAME.test(name) && !name.startsWith("__");
}

/** Escapes a label value: backslash, double quote and line feed (the only three the format names). */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : "\\" + c));
}

/** Escapes `# HELP` text: backslash and line feed. A double quote stays as it is. */
export function escapeHelp(help: string): string {
  return help.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

/**
 * Renders a sample value. Integers print without exponent up to 2^53 (so byte counters stay exact
 * and readable); non-finite values use the spellings Prometheus parses: `+Inf`, `-Inf`, `NaN`.
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isSafeInteger(value)) return Object.is(value, -0) ? "0" : value.toFixed(0);
  return String(value);
}

/** Renders `{a="x",b="y"}`, or nothing for an empty label set. */
export function renderLabels(labels: Labels): string {
  if (labels.length === 0) return "";
  let out = "{";
  for (let i = 0; i < labels.length; i++) {
    const [name, value] = labels[i]!;
    if (i > 0) out += ",";
    out += `${name}="${escapeLabelValue(value)}"`;
  }
  return out + "}";
}

/**
 * Checks what the parser on the other end would reject or silently merge: bad names, reserved or
 * repeated label names, values that are not numbers (a source that forgot a field would otherwise
 * render `undefined`), and two samples with the same name and label set. Throws
 * {@link InvalidMetricError}.
 */
export function validateFamily(family: MetricFamily): void {
  if (!isValidMetricName(family.name)) throw new InvalidMetricError(family.name, "invalid metric name");
  const seen = new Set<string>();
  for (const s of family.samples) {
    if (!isValidMetricName(s.name)) throw new InvalidMetricError(family.name, `invalid sample name "${s.name}"`);
    if (!sampleBelongs(family, s.name)) {
      throw new InvalidMetricError(family.name, `sample "${s.name}" does not belong to this ${family.type}`);
    }
    if (typeof s.value !== "number") throw new InvalidMetricError(family.name, `sample value ${String(s.value)} is not a number`);
    const names = new Set<string>();
    for (const [label, value] of s.labels) {
      if (typeof value !== "string") throw new InvalidMetricError(family.name, `label "${label}" value is not a string`);
      if (!isValidLabelName(label)) throw new InvalidMetricError(family.name, `invalid label name "${label}"`);
      if (names.has(label)) throw new InvalidMetricError(family.name, `label "${label}" repeated`);
      names.add(label);
    }
    const key = s.name + renderLabels([...s.labels].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    if (seen.has(key)) throw new InvalidMetricError(family.name, `duplicate series ${key}`);
    seen.add(key);
  }
}

function sampleBelongs(family: MetricFamily, sampleName: string): boolean {
  if (family.type !== "histogram") return sampleName === family.name;
  return (
    sampleName === `${family.name}_bucket` || sampleName === `${family.name}_sum` || sampleName === `${family.name}_count`
  );
}

/** Renders one family: `# HELP`, `# TYPE`, then one line per sample, each ending in `\n`. */
export function renderFamily(family: MetricFamily): string {
  let out = `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`;
  for (const s of family.samples) out += `${s.name}${renderLabels(s.labels)} ${formatValue(s.value)}\n`;
  return out;
}

/**
 * Renders a whole exposition. Family names must be unique (the format allows each header once);
 * a repeat throws {@link InvalidMetricError}.
 */
export function renderFamilies(families: Iterable<MetricFamily>): string {
  const names = new Set<string>();
  let out = "";
  for (const f of families) {
    if (names.has(f.name)) throw new InvalidMetricError(f.name, "family rendered twice");
    names.add(f.name);
    out += renderFamily(f);
  }
  return out;
}

/** A family of one unlabeled sample, the common case for egressd's own metrics. */
export function scalarFamily(name: string, help: string, type: "counter" | "gauge", value: number): MetricFamily {
  return { name, help, type, samples: [{ name, labels: [], value }] };
}

/** A family with one sample per value of a single label, in the order given. */
export function labeledFamily(
  name: string,
  help: string,
  type: "counter" | "gauge",
  label: string,
  values: ReadonlyArray<readonly [labelValue: string, value: number]>,
): MetricFamily {
  return { name, help, type, samples: values.map(([v, value]) => ({ name, labels: [[label, v]], value })) };
}
