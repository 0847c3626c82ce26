/**
 * The daemon's metrics: lib/metrics' registry over sources adapted from the daemon's view, and the
 * one place the metrics HTTP listener is built, moved on reload and closed.
 *
 * lib/metrics imports neither lib/host nor lib/proxy; the adapters here are where their state takes
 * the shapes of lib/metrics/sources.ts. The fork-costly reads go through the view's
 * {@link HostReads}, the same cache readiness and `STATUS=` read.
 */
import type { Config } from "../config/schema.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import { createEgressdMetrics, type EgressdMetrics, type EgressdSources } from "../metrics/egressd.ts";
import { MetricsServer } from "../metrics/server.ts";
import { defaultRuntime, type ReconcileObject, type WgPeerSample } from "../metrics/sources.ts";
import type { WgDump } from "../host/wgdump.ts";
import { carryingTunnel, type DaemonView, readiness } from "./views.ts";

/** Maps lib/host's components onto the `object` label of `egressd_reconcile_repairs_total`. */
const REPAIR_OBJECT: Record<string, ReconcileObject> = {
  interface: "interface",
  wireguard: "interface",
  endpoint: "interface",
  routes: "route",
  rules: "rule",
  firewall: "nft",
  sysctl: "sysctl",
};

/** The `object` label for a repair of lib/host's `component`; an unknown one counts as the interface. */
export function repairObject(component: string): ReconcileObject {
  return REPAIR_OBJECT[component] ?? "interface";
}

/** lib/metrics' sources over the daemon's view. The proxy source needs a started proxy. */
export function metricSources(view: DaemonView): EgressdSources {
  const sample = (ifname: string, d: WgDump | null): WgPeerSample[] =>
    (d?.peers ?? []).map((p) => ({
      interface: ifname,
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      allowedIps: p.allowedIps,
      latestHandshake: p.latestHandshake,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
    }));
  return {
    wireguard: {
      dump: async (): Promise<WgPeerSample[]> => {
        const exits = view.host.status().exits ?? [];
        // Several exits: each exit's interface, so the wireguard_* families carry one series per exit.
        if (exits.length > 1) return (await Promise.all(exits.map(async (e) => sample(e.interface, await view.reads.dump(e.name))))).flat();
        return sample(view.config.interface.name, await view.reads.dump());
      },
    },
    ...(view.failover
      ? {
          exits: {
            state: () => {
              const f = view.failover!;
              const active = view.host.status().active;
              return { failovers: f.failovers, exits: f.exits.map((e) => ({ name: e.name, up: e.state === "up", active: e.name === active, probeSeconds: e.probeSeconds })) };
            },
          },
        }
      : {}),
    proxy: {
      stats: () => {
        const s = view.proxy!.stats;
        return {
          connectionsActive: s.connectionsActive,
          connectionsTotal: s.connectionsTotal,
          relayedBytes: { upstream: s.bytesClientToTarget, downstream: s.bytesTargetToClient },
          connectDuration: { bounds: s.connectDuration.bounds, counts: s.connectDuration.counts, sum: s.connectDuration.sum },
          byProtocol: Object.fromEntries(
            Object.entries(s.byProtocol).map(([p, c]) => [p, { connectionsTotal: c.connectionsTotal, relayedBytes: { upstream: c.bytesClientToTarget, downstream: c.bytesTargetToClient } }]),
          ),
          acceptPauses: s.acceptPauses,
          handshakeEvictions: s.handshakeEvictions,
          udp: {
            associationsActive: s.udp.associationsActive,
            associationsTotal: s.udp.associationsTotal,
            datagrams: { upstream: s.udp.datagramsUp, downstream: s.udp.datagramsDown },
            bytes: { upstream: s.udp.bytesUp, downstream: s.udp.bytesDown },
            dropped: s.udp.drops,
          },
        };
      },
    },
    tunnel: {
      state: async () => {
        // The tunnel new connections use: with several exits the active one's; none active is down.
        const t = await carryingTunnel(view);
        const h = view.host.status();
        return {
          up: Boolean(t?.peer),
          implementation: h.implementation ?? undefined,
          endpointReresolutions: h.endpointReresolutions,
        };
      },
    },
    reconcile: {
      stats: () => ({ runs: view.host.status().reconcileRuns, repairs: { ...view.repairs } }),
    },
    leakGuard: {
      counters: async () => (await view.reads.leakCounter()) ?? { packets: 0, bytes: 0 },
    },
    readiness: {
      ready: () => readiness(view),
    },
  };
}

/** Options for {@link DaemonMetrics}. */
export interface DaemonMetricsOptions {
  /** egressd's version, for `egressd_build_info`. */
  version: string;
  /** Runtime label for `egressd_build_info`. Default {@link defaultRuntime}. */
  runtime?: string;
  /** Default {@link silentLogger}. */
  log?: Logger;
  /** `process_*` source; false leaves it out. Default `/proc/self`. */
  process?: false;
}

/** The registry and its listener. `/readyz` answers {@link readiness} of the same view. */
export class DaemonMetrics {
  readonly #metrics: EgressdMetrics;
  readonly #view: DaemonView;
  readonly #log: Logger;
  #server: MetricsServer | null = null;

  /** Builds the registry from `view.config`; binds nothing until {@link listen}. */
  constructor(view: DaemonView, opts: DaemonMetricsOptions) {
    this.#view = view;
    this.#log = opts.log ?? silentLogger;
    this.#metrics = createEgressdMetrics(metricSources(view), {
      build: { version: opts.version, runtime: opts.runtime ?? defaultRuntime() },
      log: this.#log,
      process: opts.process,
      ...renderOptions(view.config),
    });
  }

  /** What `/metrics` renders. */
  get registry(): EgressdMetrics["registry"] {
    return this.#metrics.registry;
  }

  /** `http://host:port` of the listener, or null when off. */
  get url(): string | null {
    return this.#server?.url ?? null;
  }

  /**
   * Listens on `address`, moving there when already listening elsewhere (a failed move keeps the old
   * listener); null closes it. Rejects with lib/metrics' `ListenError`.
   */
  async listen(address: string | null): Promise<void> {
    if (address === null) return this.close();
    this.#server ??= new MetricsServer({ registry: this.#metrics.registry, readiness: { ready: () => readiness(this.#view) }, log: this.#log });
    await this.#server.listen(address);
  }

  /** Applies a reloaded config's rendering options (handshake delay, the exit's name). */
  configure(config: Config): void {
    this.#metrics.configure(renderOptions(config));
  }

  /** Stops listening. Closing twice is fine. */
  async close(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    await s?.close();
  }
}

function renderOptions(c: Config) {
  const names: Record<string, string> = { [c.exit.publicKey]: c.exit.name };
  for (const e of c.exits ?? []) names[e.publicKey] = e.name;
  return { latestHandshakeDelay: c.metrics.latestHandshakeDelay, friendlyNames: names };
}
