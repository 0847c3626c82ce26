/**
 * The tunnel's families, from a {@link TunnelSource}: up or down, the implementation in use, and
 * how often the exit endpoint was re-resolved.
 */
import { labeledFamily, scalarFamily, type MetricFamily } from "./exposition.ts";
import type { Collector } from "./registry.ts";
import type { TunnelSource, TunnelState } from "./sources.ts";

/** Family names of the tunnel metrics. */
export const TUNNEL_METRICS = {
  up: "egressd_tunnel_up",
  info: "egressd_tunnel_info",
  reresolutions: "egressd_tunnel_endpoint_reresolutions_total",
} as const;

/** Renders a tunnel state. `egressd_tunnel_info` has no sample until the implementation is known. Pure. */
export function tunnelFamilies(state: TunnelState): MetricFamily[] {
  const M = TUNNEL_METRICS;
  return [
    scalarFamily(M.up, "1 when the WireGuard tunnel that new connections use (with several exits, the active one's) is up, 0 otherwise.", "gauge", state.up ? 1 : 0),
    labeledFamily(
      M.info,
      "The WireGuard implementation in use (kernel or userspace); always 1.",
      "gauge",
      "implementation",
      state.implementation ? [[state.implementation, 1]] : [],
    ),
    scalarFamily(M.reresolutions, "Re-resolutions of the exit endpoint's DNS name.", "counter", state.endpointReresolutions),
  ];
}

/** The `tunnel` collector. */
export function tunnelCollector(source: TunnelSource): Collector {
  return { name: "tunnel", collect: async () => tunnelFamilies(await source.state()) };
}
