/**
 * The failover families, from an {@link ExitsSource}: whether each exit is up and active, how
 * often the active exit switched, and each exit's last probe latency. Only a daemon with several
 * exits registers them.
 */
import { labeledFamily, scalarFamily, type MetricFamily } from "./exposition.ts";
import type { Collector } from "./registry.ts";

/** Family names of the exit metrics. */
export const EXIT_METRICS = {
  up: "egressd_exit_up",
  active: "egressd_exit_active",
  failovers: "egressd_exit_failovers_total",
  probe: "egressd_exit_probe_seconds",
} as const;

/** One exit's state, as the failover loop knows it. */
export interface ExitSample {
  /** The exit's name (a bounded label: the config's list). */
  readonly name: string;
  readonly up: boolean;
  readonly active: boolean;
  /** Latency of its last successful probe, seconds; null before one. */
  readonly probeSeconds: number | null;
}

/** What the exit families are rendered from. */
export interface ExitsState {
  readonly exits: readonly ExitSample[];
  /** Switches of the active exit since start. */
  readonly failovers: number;
}

/** The failover loop's state, read in memory. */
export interface ExitsSource {
  state(): ExitsState | Promise<ExitsState>;
}

/** Renders the exit families. Pure. */
export function exitFamilies(s: ExitsState): MetricFamily[] {
  const M = EXIT_METRICS;
  return [
    labeledFamily(M.up, "1 when the exit's probes and handshake say it carries traffic, 0 otherwise.", "gauge", "exit", s.exits.map((e) => [e.name, e.up ? 1 : 0])),
    labeledFamily(M.active, "1 for the exit new connections leave by, 0 for the others (all 0: none is up, new connections fail).", "gauge", "exit", s.exits.map((e) => [e.name, e.active ? 1 : 0])),
    scalarFamily(M.failovers, "Switches of the active exit since start.", "counter", s.failovers),
    labeledFamily(
      M.probe,
      "Duration of the exit's last successful health probe through its tunnel.",
      "gauge",
      "exit",
      s.exits.filter((e) => e.probeSeconds !== null).map((e) => [e.name, e.probeSeconds!]),
    ),
  ];
}

/** The `exits` collector. */
export function exitsCollector(source: ExitsSource): Collector {
  return { name: "exits", collect: async () => exitFamilies(await source.state()) };
}
