/**
 * The daemon's status, as the control socket's `status` command returns it, and the two things the
 * CLI does with it: render it for a human (`egressd status`) and judge it (`egressd check`).
 * Pure: no sockets, no clocks except the `now` passed in.
 */

/** One WireGuard peer, as `wg show` lists it. */
export interface PeerStatus {
  name: string;
  /**
   * This is the configured exit (its key matches `exit.publicKey`); any other peer on the
   * interface is a stranger that the next reconcile pass removes. Absent in the status of daemons
   * before 0.1.1, which listed only the exit in practice.
   */
  isExit?: boolean;
  publicKey: string;
  endpoint: string | null;
  allowedIps: string[];
  /** Unix seconds of the latest handshake; 0 when there has been none. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
}

/** One reconcile pass. */
export interface ReconcileStatus {
  /** Unix milliseconds when it finished. */
  at: number;
  durationMs: number;
  ok: boolean;
  error: string | null;
  /** What it repaired: `{ object: "rule", detail: "..." }`. */
  repairs: { object: string; detail: string }[];
}

/** Everything `egressd status` shows. */
export interface DaemonStatus {
  version: string;
  pid: number;
  /** Unix milliseconds when the daemon started. */
  startedAt: number;
  /** Unix milliseconds when this status was taken. */
  now: number;
  tunnel: {
    interface: string;
    implementation: string | null;
    /** The interface exists and is up. */
    up: boolean;
    publicKey: string | null;
    listenPort: number | null;
    addresses: string[];
  };
  peers: PeerStatus[];
  proxy: {
    listeners: string[];
    active: number;
    total: number;
    bytesUp: number;
    bytesDown: number;
    /** Connections that did not succeed, by result label. */
    refusals: Record<string, number>;
    /** SOCKS5 UDP ASSOCIATE; absent from a daemon that predates it. */
    udp?: { active: number; total: number; datagramsUp: number; datagramsDown: number; dropped: number };
  };
  routing: {
    fwmark: number;
    table: number;
    /** Every one of our ip rules and table routes is present (and the last reconcile pass succeeded). */
    rulesInPlace: boolean;
    /** Which rules and routes are missing, e.g. `IPv4 route unreachable default metric 4294967295`. */
    missing?: string[];
    /** Our nft table is present. */
    firewallInPlace: boolean;
  };
  killSwitch: { enabled: boolean; droppedPackets: number; droppedBytes: number };
  reconcile: { runs: number; repairs: number; last: ReconcileStatus | null };
  metrics: { listen: string | null };
  /** Several exits only: each exit, in priority order, and which one is active. */
  exits?: ExitStatusLine[];
}

/** One exit of several in {@link DaemonStatus}. */
export interface ExitStatusLine {
  name: string;
  interface: string;
  /** New connections leave by it. */
  active: boolean;
  /** `up`, `down`, or `unknown` before its first probe. */
  health: string;
  /** Why its last probe missed, or "". */
  lastReason: string;
  /** Last successful probe's latency, seconds, or null. */
  probeSeconds: number | null;
  /** Its interface exists and is up. */
  linkUp: boolean;
  latestHandshake: number;
  /** What is pinned to it, e.g. `listener 10.1.0.1:1081`, `user alice`; absent from a daemon that predates pins. */
  pinned?: string[];
}

/** Handshake ages (seconds) at which `check` warns and goes critical. */
export const HANDSHAKE_WARN_S = 180;
export const HANDSHAKE_CRIT_S = 300;

function age(now: number, unixSeconds: number): number | null {
  return unixSeconds > 0 ? Math.max(0, Math.round(now / 1000 - unixSeconds)) : null;
}

/** Renders a duration in seconds the way `wg show` does: `1 minute, 5 seconds`. */
export function formatAge(seconds: number): string {
  const parts: string[] = [];
  const units: [string, number][] = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  let rest = seconds;
  for (const [name, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n} ${name}${n === 1 ? "" : "s"}`);
  }
  return parts.length ? parts.join(", ") : "0 seconds";
}

/** Renders bytes the way `wg show` does: `1.23 MiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(2)} ${units[i]}`;
}

/** The human rendering of `egressd status`. */
export function renderStatus(s: DaemonStatus): string {
  const lines: string[] = [];
  const t = s.tunnel;
  lines.push(`egressd ${s.version}, pid ${s.pid}, up ${formatAge(Math.round((s.now - s.startedAt) / 1000))}`);
  lines.push("");
  lines.push(`tunnel: ${t.interface} (${t.implementation ?? "not created"}) ${t.up ? "up" : "DOWN"}`);
  if (t.publicKey) lines.push(`  public key: ${t.publicKey}`);
  if (t.listenPort) lines.push(`  listening port: ${t.listenPort}`);
  if (t.addresses.length) lines.push(`  addresses: ${t.addresses.join(", ")}`);
  for (const p of s.peers) {
    lines.push("");
    lines.push(`peer: ${p.publicKey} (${p.name})`);
    lines.push(`  endpoint: ${p.endpoint ?? "(none)"}`);
    lines.push(`  allowed ips: ${p.allowedIps.join(", ") || "(none)"}`);
    const a = age(s.now, p.latestHandshake);
    lines.push(`  latest handshake: ${a === null ? "never" : `${formatAge(a)} ago`}`);
    lines.push(`  transfer: ${formatBytes(p.rxBytes)} received, ${formatBytes(p.txBytes)} sent`);
    if (p.persistentKeepalive) lines.push(`  persistent keepalive: every ${formatAge(p.persistentKeepalive)}`);
  }
  lines.push("");
  lines.push(`proxy: ${s.proxy.listeners.length ? s.proxy.listeners.join(", ") : "NOT LISTENING"}`);
  lines.push(`  connections: ${s.proxy.active} active, ${s.proxy.total} total`);
  lines.push(`  relayed: ${formatBytes(s.proxy.bytesUp)} up, ${formatBytes(s.proxy.bytesDown)} down`);
  const u = s.proxy.udp;
  if (u && u.total > 0) lines.push(`  udp: ${u.active} associations active, ${u.total} total; ${u.datagramsUp} datagrams up, ${u.datagramsDown} down, ${u.dropped} dropped`);
  const refusals = Object.entries(s.proxy.refusals).filter(([, n]) => n > 0);
  lines.push(`  refused: ${refusals.length ? refusals.map(([k, n]) => `${k} ${n}`).join(", ") : "none"}`);
  lines.push("");
  const r = s.routing;
  lines.push(`routing: fwmark 0x${r.fwmark.toString(16)} -> table ${r.table}, rules ${r.rulesInPlace ? "in place" : "MISSING"}, nft table ${r.firewallInPlace ? "in place" : "MISSING"}`);
  for (const m of r.missing ?? []) lines.push(`  missing: ${m}`);
  const k = s.killSwitch;
  lines.push(`kill switch: ${k.enabled ? "on" : "OFF"}, leak guard dropped ${k.droppedPackets} packets (${formatBytes(k.droppedBytes)})`);
  const last = s.reconcile.last;
  const lastText = last
    ? `${formatAge(Math.round((s.now - last.at) / 1000))} ago, ${last.ok ? "ok" : `FAILED: ${last.error}`}, ${last.repairs.length} repair(s)`
    : "not yet";
  lines.push(`reconcile: ${s.reconcile.runs} runs, ${s.reconcile.repairs} repairs; last ${lastText}`);
  for (const rep of last?.repairs ?? []) lines.push(`  repaired ${rep.object}: ${rep.detail}`);
  lines.push(`metrics: ${s.metrics.listen ?? "off"}`);
  if (s.exits) {
    lines.push("");
    const active = s.exits.find((e) => e.active);
    lines.push(`exits: ${active ? `${active.name} active` : "NONE ACTIVE (no exit is up; new connections fail)"}`);
    for (const e of s.exits) {
      const a = age(s.now, e.latestHandshake);
      const probe = e.probeSeconds === null ? "" : `, probe ${Math.round(e.probeSeconds * 1000)} ms`;
      const why = e.health === "down" && e.lastReason ? ` (${e.lastReason})` : "";
      const pinned = e.pinned?.length ? `; pinned: ${e.pinned.join(", ")}` : "";
      lines.push(`  ${e.active ? "*" : " "} ${e.name} via ${e.interface}${e.linkUp ? "" : " (interface DOWN)"}: ${e.health}${why}, handshake ${a === null ? "never" : `${formatAge(a)} ago`}${probe}${pinned}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** Nagios plugin states. */
export const CheckState = { ok: 0, warning: 1, critical: 2, unknown: 3 } as const;
export type CheckStateName = keyof typeof CheckState;

/** One health check's verdict. */
export interface CheckResult {
  name: string;
  state: CheckStateName;
  message: string;
}

/** Judges a status: handshake age, interface, rules, firewall, listeners. */
export function evaluateHealth(s: DaemonStatus): CheckResult[] {
  const out: CheckResult[] = [];
  out.push(
    s.tunnel.up
      ? { name: "interface", state: "ok", message: `${s.tunnel.interface} is up (${s.tunnel.implementation})` }
      : { name: "interface", state: "critical", message: `${s.tunnel.interface} is down or missing` },
  );
  // The configured exit, not whichever peer `wg` lists first: a stranger added by hand may come first.
  const peer = s.peers.find((p) => p.isExit !== false);
  if (!peer) {
    out.push({ name: "handshake", state: "critical", message: "the exit peer is not configured" });
  } else {
    const a = age(s.now, peer.latestHandshake);
    if (a === null) out.push({ name: "handshake", state: "critical", message: `no handshake with ${peer.name} yet` });
    else if (a > HANDSHAKE_CRIT_S) out.push({ name: "handshake", state: "critical", message: `latest handshake with ${peer.name} ${a}s ago (> ${HANDSHAKE_CRIT_S}s)` });
    else if (a > HANDSHAKE_WARN_S) out.push({ name: "handshake", state: "warning", message: `latest handshake with ${peer.name} ${a}s ago (> ${HANDSHAKE_WARN_S}s)` });
    else out.push({ name: "handshake", state: "ok", message: `latest handshake with ${peer.name} ${a}s ago` });
  }
  out.push(
    s.routing.rulesInPlace
      ? { name: "rules", state: "ok", message: `policy rules and table ${s.routing.table} in place` }
      : s.routing.missing?.length
        ? { name: "rules", state: "critical", message: `missing ${s.routing.missing.join("; ")}` }
        : { name: "rules", state: "critical", message: `policy rules or table ${s.routing.table} routes missing` },
  );
  out.push(
    s.routing.firewallInPlace
      ? { name: "firewall", state: "ok", message: "nft table inet egressd in place" }
      : { name: "firewall", state: "critical", message: "nft table inet egressd missing" },
  );
  if (s.exits) {
    const active = s.exits.find((e) => e.active);
    const down = s.exits.filter((e) => e.health !== "up").map((e) => e.name);
    if (!active) out.push({ name: "exits", state: "critical", message: "no exit is up; new connections fail" });
    else if (down.length) out.push({ name: "exits", state: "warning", message: `${active.name} active; ${down.join(", ")} not up` });
    else out.push({ name: "exits", state: "ok", message: `${active.name} active; all ${s.exits.length} exits up` });
  }
  out.push(
    s.proxy.listeners.length
      ? { name: "proxy", state: "ok", message: `listening on ${s.proxy.listeners.join(", ")}` }
      : { name: "proxy", state: "critical", message: "the proxy is not listening" },
  );
  return out;
}

/** The worst state among results (the exit code of `egressd check`). */
export function worstState(results: readonly CheckResult[]): CheckStateName {
  let worst: CheckStateName = "ok";
  for (const r of results) if (CheckState[r.state] > CheckState[worst]) worst = r.state;
  return worst;
}
