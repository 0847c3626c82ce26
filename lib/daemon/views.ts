/**
 * The daemon's read-only views: readiness (`/readyz`), the `STATUS=` line, and the status that the
 * control socket's `status` command returns. They read a {@link DaemonView}, which the daemon
 * keeps current; none of them changes anything. Rendering and judging a status for the CLI is
 * status.ts; the metric sources are metrics.ts.
 */
import { authAccounts } from "../config/auth.ts";
import type { Config } from "../config/schema.ts";
import type { HostManager } from "../host/manager.ts";
import { validateSpec } from "../host/spec.ts";
import type { WgDump } from "../host/wgdump.ts";
import type { Readiness } from "../metrics/sources.ts";
import type { ProxyServer } from "../proxy/server.ts";
import type { FailoverLoop } from "./failover.ts";
import type { HostReads } from "./host-reads.ts";
import { hostSpec, missingRouting } from "./specs.ts";
import { type DaemonStatus, type ExitStatusLine, formatAge, HANDSHAKE_WARN_S, type ReconcileStatus } from "./status.ts";

/** Where the daemon is in its life. */
export type DaemonState = "new" | "starting" | "running" | "stopping" | "stopped";

/** What the views read; the daemon's live state, behind getters. */
export interface DaemonView {
  readonly state: DaemonState;
  /** The config in force. */
  readonly config: Config;
  /** egressd's version. */
  readonly version: string;
  /** The uid whose traffic is marked. */
  readonly uid: number;
  /** Unix ms when the daemon started. */
  readonly startedAt: number;
  readonly host: Pick<HostManager, "status" | "observe" | "leakCounter"> & Partial<Pick<HostManager, "drift">>;
  /** The one cache of `wg show dump` and the nft counter. */
  readonly reads: HostReads;
  /** Null until the proxy is started. */
  readonly proxy: Pick<ProxyServer, "stats" | "listening"> | null;
  /** The last reconcile pass, or null before the first. */
  readonly lastPass: ReconcileStatus | null;
  /** Whether a reconcile pass is running now (the host may be half-repaired). */
  readonly passRunning: boolean;
  /** The last answer {@link readiness} gave, held while a pass runs. */
  lastReadiness: Readiness | null;
  /** Repairs since start, by the `object` label of `egressd_reconcile_repairs_total`. */
  readonly repairs: Readonly<Record<string, number>>;
  /** `http://host:port` of the metrics listener, or null when off. */
  readonly metricsUrl: string | null;
  /** Several exits: the failover loop (health of each exit); null with one exit. */
  readonly failover?: Pick<FailoverLoop, "exits" | "failovers"> | null;
}

/**
 * The tunnel that new connections use, as one read of `wg show dump`: the active exit's with several
 * exits, else the one exit's; its peer is the configured exit among the interface's peers (not
 * simply the first: a stranger may lead). Null with several exits and none active (every new
 * connection fails: the kill switch). `dump` is null when the interface is missing.
 */
export async function carryingTunnel(view: DaemonView): Promise<{ exit: string | null; dump: WgDump | null; peer: WgDump["peers"][number] | undefined } | null> {
  const active = view.failover ? view.host.status().active : null;
  if (view.failover && active === null) return null;
  const dump = await view.reads.dump(active ?? undefined).catch(() => null);
  const key = active === null ? view.config.exit.publicKey : view.config.exits?.find((e) => e.name === active)?.publicKey;
  return { exit: active, dump, peer: key === undefined ? undefined : dump?.peers.find((p) => p.publicKey === key) };
}

/**
 * Readiness: a recent handshake, the last reconcile pass clean, every listener bound.
 *
 * A clean pass is one that succeeded and found nothing to repair. After a pass that repaired drift
 * (a deleted interface, a missing rule), readiness stays 503 until the next pass finds the host as
 * it should be, so an outage is visible for at least one reconcile interval. Without that, a
 * deleted interface is re-created and handshakes again within milliseconds of the pass that notices
 * it, the only not-ready window is the gap before that pass (partly hidden by the 1 s dump cache),
 * and a probe polling every 50 ms missed the outage in 5 of 12 trials in the lab.
 */
export async function readiness(view: DaemonView): Promise<Readiness> {
  // While a pass repairs the host, a read can see it half-repaired: a re-created interface that has
  // handshaked, before the pass has finished and recorded its repairs. That read said "ready" in the
  // middle of an outage; the answer from before the pass stands until the pass is done.
  if (view.passRunning && view.lastReadiness !== null) return view.lastReadiness;
  const r = await currentReadiness(view);
  view.lastReadiness = r;
  return r;
}

async function currentReadiness(view: DaemonView): Promise<Readiness> {
  if (view.state !== "running") return { ok: false, reason: `daemon is ${view.state}` };
  // Several exits: ready while the active one carries traffic; with none active, new connections fail.
  const t = await carryingTunnel(view);
  if (t === null) return { ok: false, reason: "no exit is up" };
  if (!t.dump) return { ok: false, reason: `interface ${view.config.interface.name} is missing` };
  const peer = t.peer;
  if (!peer) return { ok: false, reason: "the exit peer is not configured" };
  const age = peer.latestHandshake > 0 ? Date.now() / 1000 - peer.latestHandshake : Infinity;
  if (age > HANDSHAKE_WARN_S) {
    return { ok: false, reason: peer.latestHandshake ? `latest handshake ${Math.round(age)} s ago` : "no handshake with the exit yet" };
  }
  const last = view.lastPass;
  if (last && !last.ok) return { ok: false, reason: `last reconcile failed: ${last.error}` };
  const repairs = last?.repairs ?? [];
  if (repairs.length > 0) {
    const first = `${repairs[0]!.object}: ${repairs[0]!.detail}`;
    const more = repairs.length > 1 ? ` and ${repairs.length - 1} more` : "";
    return { ok: false, reason: `the last reconcile pass repaired drift (${first}${more}); waiting for a clean pass` };
  }
  const want = view.config.proxy.listen.length;
  const have = view.proxy?.listening.length ?? 0;
  if (have < want) return { ok: false, reason: `${have} of ${want} proxy listeners bound` };
  return { ok: true };
}

/**
 * The `STATUS=` line: the handshake age of the tunnel new connections use, and the live connections.
 * With several exits it names the active exit (`exit b: handshake under a minute ago; ...`), or says
 * that none is up.
 */
export async function statusLine(view: DaemonView): Promise<string> {
  const t = await carryingTunnel(view);
  const peer = t?.peer;
  // Whole minutes only: a line that changed every second would resend STATUS= on every pass.
  const age = peer?.latestHandshake ? Math.max(0, Math.floor(Date.now() / 1000 - peer.latestHandshake)) : 0;
  const hs = t === null ? "no exit is up"
    : !t.dump ? "tunnel interface missing"
    : !peer?.latestHandshake ? "no handshake yet"
    : age < 60 ? "handshake under a minute ago"
    : `handshake ${formatAge(age - (age % 60))} ago`;
  const active = view.proxy?.stats.connectionsActive ?? 0;
  return `${t?.exit ? `exit ${t.exit}: ` : ""}${hs}; ${active} active connection${active === 1 ? "" : "s"}`;
}

/** The configured exit with this public key, or null. */
function nameOf(c: Config, publicKey: string): string | null {
  if (c.exits) return c.exits.find((e) => e.publicKey === publicKey)?.name ?? null;
  return publicKey === c.exit.publicKey ? c.exit.name : null;
}

/** Several exits: each exit's line of the status, from the host's observation and the failover loop. */
function exitLines(view: DaemonView, obs: Awaited<ReturnType<HostManager["observe"]>> | null): ExitStatusLine[] | undefined {
  const f = view.failover;
  if (!f) return undefined;
  const active = view.host.status().active;
  return f.exits.map((e) => {
    const o = obs?.exits.find((x) => x.name === e.name);
    const key = view.config.exits?.find((x) => x.name === e.name)?.publicKey;
    const peer = o?.wireguard?.peers.find((p) => p.publicKey === key);
    return {
      name: e.name,
      interface: o?.interface ?? "",
      active: e.name === active,
      health: e.state,
      lastReason: e.lastReason,
      probeSeconds: e.probeSeconds,
      linkUp: Boolean(o?.link?.up),
      latestHandshake: peer?.latestHandshake ?? 0,
      pinned: pinnedTo(view.config, e.name),
    };
  });
}

/** The listeners and users pinned to exit `name`, as status shows them (usernames, never passwords). */
export function pinnedTo(c: { proxy: Pick<Config["proxy"], "pinnedListeners" | "auth"> }, name: string): string[] {
  const listeners = Object.entries(c.proxy.pinnedListeners ?? {}).filter(([, exit]) => exit === name).map(([listen]) => `listener ${listen}`);
  const users = authAccounts(c.proxy.auth).filter((a) => a.account.exit === name).map((a) => `user ${a.account.username}`);
  return [...listeners, ...users];
}

/** Everything `egressd status` shows. Runs `wg`, `ip` and `nft` reads afresh (not cached). */
export async function collectStatus(view: DaemonView): Promise<DaemonStatus> {
  const c = view.config;
  const h = view.host.status();
  const obs = await view.host.observe().catch(() => null);
  const dump = obs?.wireguard ?? null;
  const s = view.proxy?.stats;
  const leak = await view.host.leakCounter().catch(() => null);
  // Each rule and route, not just "some": one missing rule or the kill switch's route is a hole.
  // With several exits the manager's own drift is the judge (the failover layout); with one, as before.
  const missing = !obs ? null
    : view.failover && view.host.drift ? (await view.host.drift().catch(() => [])).map((d) => d.reason)
    : missingRouting(validateSpec(hostSpec(c, view.uid)), h.families, obs);
  const refusals: Record<string, number> = {};
  for (const [k, v] of Object.entries(s?.connectionsTotal ?? {})) if (k !== "ok") refusals[k] = v;
  return {
    version: view.version,
    pid: process.pid,
    startedAt: view.startedAt,
    now: Date.now(),
    tunnel: {
      interface: c.interface.name,
      implementation: h.implementation,
      up: Boolean(obs?.link && obs.link.up),
      publicKey: dump?.interface.publicKey ?? null,
      listenPort: dump?.interface.listenPort ?? null,
      addresses: c.interface.addresses,
    },
    peers: (view.failover ? (obs?.exits ?? []).flatMap((e) => e.wireguard?.peers ?? []) : (dump?.peers ?? [])).map((p) => ({
      name: nameOf(c, p.publicKey) ?? "(unknown)",
      isExit: nameOf(c, p.publicKey) !== null,
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      allowedIps: [...p.allowedIps],
      latestHandshake: p.latestHandshake,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      persistentKeepalive: p.persistentKeepalive ?? 0,
    })),
    proxy: {
      listeners: [...(view.proxy?.listening ?? [])],
      active: s?.connectionsActive ?? 0,
      total: Object.values(s?.connectionsTotal ?? {}).reduce((a, b) => a + b, 0),
      bytesUp: s?.bytesClientToTarget ?? 0,
      bytesDown: s?.bytesTargetToClient ?? 0,
      refusals,
      udp: {
        active: s?.udp.associationsActive ?? 0,
        total: s?.udp.associationsTotal ?? 0,
        datagramsUp: s?.udp.datagramsUp ?? 0,
        datagramsDown: s?.udp.datagramsDown ?? 0,
        dropped: Object.values(s?.udp.drops ?? {}).reduce((a, b) => a + b, 0),
      },
    },
    routing: {
      fwmark: c.routing.fwmark,
      table: c.routing.table,
      rulesInPlace: missing !== null && missing.length === 0 && view.lastPass?.ok !== false,
      missing: missing ?? [],
      firewallInPlace: Boolean(obs?.firewall.present),
    },
    killSwitch: { enabled: c.routing.killSwitch, droppedPackets: leak?.packets ?? 0, droppedBytes: leak?.bytes ?? 0 },
    reconcile: { runs: h.reconcileRuns, repairs: Object.values(view.repairs).reduce((a, b) => a + b, 0), last: view.lastPass },
    metrics: { listen: view.metricsUrl },
    ...(view.failover ? { exits: exitLines(view, obs) } : {}),
  };
}
