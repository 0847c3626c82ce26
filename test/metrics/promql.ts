/** PromQL helpers for the dashboard and alert-rule tests: Grafana variables out, metric names found. */

/** Stand-ins for Grafana's variables, so that the expressions are plain PromQL. */
export function plain(expr: string): string {
  return expr.replaceAll("$__rate_interval", "5m").replaceAll("$__range", "1h").replaceAll("$instance", ".*").replaceAll("$exit", ".+");
}

const KEYWORDS = new Set(["and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan"]);

/** The metric names an expression selects: identifiers that are not functions, keywords, labels or strings. */
export function metricNames(expr: string): string[] {
  const s = plain(expr)
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "") // label lists
    .replace(/\[[^\]]*\]/g, ""); // ranges
  const names: string[] = [];
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = s.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith("(")) continue; // a function (or aggregation) call
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    if (/^\d/.test(s[m.index! - 1] ?? "")) continue; // a unit of a number, e.g. 1e3
    names.push(m[0]);
  }
  return [...new Set(names)];
}
