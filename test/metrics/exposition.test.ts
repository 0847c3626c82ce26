import { describe, expect, test } from "bun:test";
import { InvalidMetricError } from "../../lib/metrics/errors.ts";
import {
  escapeHelp,
  escapeLabelValue,
  formatValue,
  isValidLabelName,
  isValidMetricName,
  renderFamilies,
  renderFamily,
  renderLabels,
  validateFamily,
  type MetricFamily,
} from "../../lib/metrics/exposition.ts";

describe("escapeLabelValue", () => {
  // [input, expected] — the format escapes exactly backslash, double quote and line feed.
  const rows: [string, string][] = [
    ["plain", "plain"],
    ["", ""],
    ['say "hi"', 'say \\"hi\\"'],
    ["C:\\path", "C:\\\\path"],
    ["two\nlines", "two\\nlines"],
    ["\\n literal", "\\\\n literal"], // a backslash before n is not a newline
    ['\\"', '\\\\\\"'],
    ["tab\tand cr\r", "tab\tand cr\r"], // not escaped by the format; allowed raw
    ["ünïcode ✓", "ünïcode ✓"],
    ["10.0.0.4/32,fd86:ea04:::4/128", "10.0.0.4/32,fd86:ea04:::4/128"],
  ];
  test.each(rows)("%p", (input, expected) => {
    expect(escapeLabelValue(input)).toBe(expected);
  });
});

describe("escapeHelp", () => {
  const rows: [string, string][] = [
    ["Bytes sent to the peer", "Bytes sent to the peer"],
    ['quotes "stay"', 'quotes "stay"'], // HELP does not escape double quotes
    ["back\\slash", "back\\\\slash"],
    ["line\nbreak", "line\\nbreak"],
    ["\\\n", "\\\\\\n"],
  ];
  test.each(rows)("%p", (input, expected) => {
    expect(escapeHelp(input)).toBe(expected);
  });
});

describe("formatValue", () => {
  const rows: [number, string][] = [
    [0, "0"],
    [-0, "0"],
    [42, "42"],
    [-3, "-3"],
    [0.5, "0.5"],
    [1e-7, "1e-7"],
    [Number.MAX_SAFE_INTEGER, "9007199254740991"],
    [18576788764, "18576788764"],
    [1e21, "1e+21"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
    [NaN, "NaN"],
  ];
  test.each(rows)("%p", (input, expected) => {
    expect(formatValue(input)).toBe(expected);
  });
});

describe("names", () => {
  test.each([
    ["wireguard_sent_bytes_total", true],
    ["ns:rule_name", true],
    ["_leading", true],
    ["9starts_with_digit", false],
    ["has-dash", false],
    ["", false],
  ] as const)("metric %p -> %p", (name, ok) => {
    expect(isValidMetricName(name)).toBe(ok);
  });
  test.each([
    ["public_key", true],
    ["le", true],
    ["__reserved", false],
    ["has:colon", false],
    ["1x", false],
    ["", false],
  ] as const)("label %p -> %p", (name, ok) => {
    expect(isValidLabelName(name)).toBe(ok);
  });
});

describe("rendering", () => {
  const family: MetricFamily = {
    name: "demo_total",
    help: "A demo\ncounter with \\ in it",
    type: "counter",
    samples: [
      { name: "demo_total", labels: [["b", "2"], ["a", 'x"y\nz']], value: 3 },
      { name: "demo_total", labels: [], value: 0.25 },
    ],
  };

  test("family: HELP, TYPE, samples; labels keep the given order", () => {
    expect(renderFamily(family)).toBe(
      "# HELP demo_total A demo\\ncounter with \\\\ in it\n" +
        "# TYPE demo_total counter\n" +
        'demo_total{b="2",a="x\\"y\\nz"} 3\n' +
        "demo_total 0.25\n",
    );
  });

  test("no braces for an empty label set", () => {
    expect(renderLabels([])).toBe("");
  });

  test("a family name twice is refused", () => {
    expect(() => renderFamilies([family, family])).toThrow(InvalidMetricError);
  });
});

describe("validateFamily", () => {
  const base = { name: "x_total", help: "h", type: "counter" as const };
  const rows: [string, MetricFamily][] = [
    ["bad family name", { ...base, name: "x-total", samples: [] }],
    ["sample of another family", { ...base, samples: [{ name: "y_total", labels: [], value: 1 }] }],
    ["reserved label", { ...base, samples: [{ name: "x_total", labels: [["__name__", "v"]], value: 1 }] }],
    ["repeated label", { ...base, samples: [{ name: "x_total", labels: [["a", "1"], ["a", "2"]], value: 1 }] }],
    [
      "duplicate series, labels in another order",
      {
        ...base,
        samples: [
          { name: "x_total", labels: [["a", "1"], ["b", "2"]], value: 1 },
          { name: "x_total", labels: [["b", "2"], ["a", "1"]], value: 2 },
        ],
      },
    ],
    ["value not a number", { ...base, samples: [{ name: "x_total", labels: [], value: undefined as unknown as number }] }],
    ["label value not a string", { ...base, samples: [{ name: "x_total", labels: [["a", 1 as unknown as string]], value: 1 }] }],
    [
      "histogram sample without a suffix",
      { name: "h_seconds", help: "h", type: "histogram", samples: [{ name: "h_seconds", labels: [], value: 1 }] },
    ],
  ];
  test.each(rows)("rejects: %s", (_, f) => {
    expect(() => validateFamily(f)).toThrow(InvalidMetricError);
  });

  test("accepts a valid histogram", () => {
    expect(() =>
      validateFamily({
        name: "h_seconds",
        help: "h",
        type: "histogram",
        samples: [
          { name: "h_seconds_bucket", labels: [["le", "+Inf"]], value: 0 },
          { name: "h_seconds_sum", labels: [], value: 0 },
          { name: "h_seconds_count", labels: [], value: 0 },
        ],
      }),
    ).not.toThrow();
  });
});
