/**
 * `egressd_build_info{version,runtime} 1`: the `_info` pattern, so a query can join the version
 * onto any other series.
 */
import type { MetricFamily } from "./exposition.ts";
import type { Collector } from "./registry.ts";
import type { BuildInfo } from "./sources.ts";

/** The family name. */
export const BUILD_INFO_METRIC = "egressd_build_info";

/** Renders the build info. Pure. */
export function buildInfoFamilies(info: BuildInfo): MetricFamily[] {
  return [
    {
      name: BUILD_INFO_METRIC,
      help: "egressd's version and the runtime it was built with; always 1.",
      type: "gauge",
      samples: [{ name: BUILD_INFO_METRIC, labels: [["version", info.version], ["runtime", info.runtime]], value: 1 }],
    },
  ];
}

/** The `build_info` collector. */
export function buildInfoCollector(info: BuildInfo): Collector {
  const families = buildInfoFamilies(info);
  return { name: "build_info", collect: () => families };
}
