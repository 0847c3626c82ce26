/**
 * Exit health and failover, as pure decisions: whether an exit is up, from its probe results and
 * its WireGuard handshake age, and which exit new connections use.
 *
 * What this module does NOT do: it never sends a probe, reads `wg show`, or changes a route. The
 * daemon feeds it one sample per exit per probe interval and applies what it decides.
 *
 * Why both inputs: the probe (a TCP connect or DNS query through the tunnel to a target beyond the
 * exit) is what shows traffic really passes, every few seconds. The handshake age alone is too
 * coarse: WireGuard re-handshakes only every 2 minutes, and keys are rejected 180 s after the last
 * handshake, so it can say "surely down" (never, or long ago) but not "up".
 */

/** Thresholds of {@link observeHealth}. */
export interface HealthPolicy {
  /** Consecutive misses that take an exit down. */
  readonly downAfter: number;
  /** Consecutive successes that bring it back up. */
  readonly upAfter: number;
  /** A handshake older than this (seconds) is a miss whatever the probe says. */
  readonly staleHandshakeSeconds: number;
}

/** Defaults: with a 3 s interval and a 2 s probe timeout, a dead exit is down within about 11 s. */
export const HEALTH_DEFAULTS: HealthPolicy = { downAfter: 3, upAfter: 3, staleHandshakeSeconds: 300 };

/** `unknown` until the first sample; then `up` or `down`. */
export type HealthState = "unknown" | "up" | "down";

/** One exit's health, carried from sample to sample. */
export interface ExitHealth {
  readonly state: HealthState;
  /** Consecutive misses, or successes, counting toward a change. */
  readonly misses: number;
  readonly successes: number;
  /** Why the last sample was a miss, or "" after a success. */
  readonly lastReason: string;
}

/** The health of an exit not yet probed. */
export const INITIAL_HEALTH: ExitHealth = { state: "unknown", misses: 0, successes: 0, lastReason: "" };

/** One probe interval's evidence for one exit. */
export interface HealthSample {
  /** The probe's outcome: ok, or why it failed ("timeout", "connection refused", ...). */
  readonly probe: { readonly ok: true } | { readonly ok: false; readonly reason: string };
  /** Seconds since the latest handshake; null when there has never been one. */
  readonly handshakeAgeSeconds: number | null;
}

/** What {@link observeHealth} decided. `changed` is true when `state` moved; `reason` says why. */
export interface HealthStep {
  readonly health: ExitHealth;
  readonly changed: boolean;
  readonly reason: string;
}

function missReason(s: HealthSample, policy: HealthPolicy): string | null {
  if (s.handshakeAgeSeconds === null) return "no handshake yet";
  if (s.handshakeAgeSeconds > policy.staleHandshakeSeconds) return `handshake ${Math.round(s.handshakeAgeSeconds)} s old`;
  if (!s.probe.ok) return `probe failed: ${s.probe.reason}`;
  return null;
}

/**
 * Folds one sample into an exit's health. The first sample decides an `unknown` exit at once, so
 * that start-up does not wait for `upAfter` intervals; after that, only `downAfter` consecutive
 * misses or `upAfter` consecutive successes change the state.
 */
export function observeHealth(h: ExitHealth, sample: HealthSample, policy: HealthPolicy = HEALTH_DEFAULTS): HealthStep {
  const miss = missReason(sample, policy);
  if (h.state === "unknown") {
    const state: HealthState = miss === null ? "up" : "down";
    return { health: { state, misses: miss === null ? 0 : 1, successes: miss === null ? 1 : 0, lastReason: miss ?? "" }, changed: true, reason: miss ?? "first probe succeeded" };
  }
  if (miss !== null) {
    const misses = h.misses + 1;
    if (h.state === "up" && misses >= policy.downAfter) {
      return { health: { state: "down", misses, successes: 0, lastReason: miss }, changed: true, reason: `${misses} misses in a row, last: ${miss}` };
    }
    return { health: { state: h.state, misses, successes: 0, lastReason: miss }, changed: false, reason: miss };
  }
  const successes = h.successes + 1;
  if (h.state === "down" && successes >= policy.upAfter) {
    return { health: { state: "up", misses: 0, successes, lastReason: "" }, changed: true, reason: `${successes} successful probes in a row` };
  }
  return { health: { state: h.state, misses: 0, successes, lastReason: "" }, changed: false, reason: "probe succeeded" };
}

/** What to do when a higher-priority exit is healthy again: return to it, or stay where traffic is. */
export type Failback = "preempt" | "stay";

/**
 * The exit new connections use: the first `up` exit in priority order, except that with `stay`
 * the current one is kept while it is up. Null when none is up: the kill switch then holds, and
 * new connections fail instead of leaving by the home connection.
 */
export function chooseActive(exits: readonly { readonly name: string; readonly state: HealthState }[], current: string | null, failback: Failback): string | null {
  if (failback === "stay" && current !== null && exits.some((e) => e.name === current && e.state === "up")) return current;
  return exits.find((e) => e.state === "up")?.name ?? null;
}
