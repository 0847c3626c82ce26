/**
 * The failover loop: probes every exit through its own tunnel, folds each probe and the exit's
 * handshake age into its health (lib/exits/health.ts), chooses the active exit, and has the host
 * manager switch the shared route table when the choice changes.
 *
 * ```
 * every probe.interval (start to start, never overlapping):
 *   probe each exit from its tunnel address (lib/exits/probe.ts)   in parallel, each within probe.timeout
 *   handshake age from `wg show <if> dump` (the daemon's one cache)
 *   observeHealth per exit -> chooseActive(preempt | stay) -> host.setActive(name | null)
 *   an exit that went down -> onExitDown(name): the proxy resets what went out through it
 * ```
 * With the defaults (3 s, 2 s, 3 misses) a dead exit is down within about 11 s: three intervals
 * plus one probe timeout. With no exit up the shared table holds only the unreachable default, so new
 * connections fail; nothing leaves by the home connection.
 *
 * It logs one line per switch, with the reason, and one per change of an exit's health. It does not
 * route, and knows nothing of the proxy beyond the `onExitDown` callback.
 */
import type { FailoverConfig } from "../config/schema.ts";
import { chooseActive, INITIAL_HEALTH, observeHealth, type ExitHealth, type HealthPolicy } from "../exits/health.ts";
import { probe as sendProbe, type ProbeResult, type ProbeTarget } from "../exits/probe.ts";
import type { WgDump } from "../host/wgdump.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import { parseIp } from "../net/ip.ts";

/** One exit as the loop probes it. */
export interface ProbedExit {
  readonly name: string;
  readonly publicKey: string;
  /** Its tunnel addresses (no prefix length); the probe binds the one of the target's family. */
  readonly addresses: readonly string[];
  readonly target: ProbeTarget;
}

/** What one exit's state looks like to status and metrics. */
export interface ExitHealthView {
  readonly name: string;
  readonly state: ExitHealth["state"];
  /** Why the last sample was a miss, or "". */
  readonly lastReason: string;
  /** Latency of the last successful probe, seconds; null before one. */
  readonly probeSeconds: number | null;
}

/** What the loop needs from the host manager. */
export interface FailoverHost {
  readonly active: string | null;
  setActive(name: string | null): Promise<readonly unknown[]>;
}

/** Options for {@link FailoverLoop}. */
export interface FailoverOptions {
  /** The exits in priority order. */
  exits: readonly ProbedExit[];
  /** `failover` from the config. */
  settings: FailoverConfig;
  host: FailoverHost;
  /** The exit's WireGuard dump (through the daemon's cache); null when its interface is missing. */
  dump: (exit: string) => Promise<WgDump | null>;
  /** Called once when an exit goes from up to down. Default: none. */
  onExitDown?: (exit: string) => void;
  /** Default {@link silentLogger}. */
  log?: Logger;
  /** Sends a probe. Default lib/exits/probe.ts. */
  probe?: (target: ProbeTarget, opts: { localAddress?: string; timeoutMs?: number }) => Promise<ProbeResult>;
  /** Wall clock in ms, for handshake ages. Default `Date.now`. */
  now?: () => number;
  /**
   * The loop this one replaces (a reload with new exits or probe settings): the health and latency of
   * the exits it also probes, and its failover count, carry over, so an exit that stayed is not judged
   * from scratch and `egressd_exit_failovers_total` does not restart. Default: none.
   */
  carry?: FailoverLoop;
}

/** See the module comment. */
export class FailoverLoop {
  readonly #o: FailoverOptions;
  readonly #log: Logger;
  readonly #policy: HealthPolicy;
  readonly #health = new Map<string, ExitHealth>();
  readonly #latency = new Map<string, number>();
  #failovers = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;

  /** Probes nothing until {@link start}. */
  constructor(opts: FailoverOptions) {
    this.#o = opts;
    this.#log = opts.log ?? silentLogger;
    const s = opts.settings;
    this.#policy = { downAfter: s.downAfter, upAfter: s.upAfter, staleHandshakeSeconds: s.staleHandshake / 1000 };
    for (const e of opts.exits) this.#health.set(e.name, INITIAL_HEALTH);
    if (opts.carry) this.#carryFrom(opts.carry);
  }

  /** Takes over what `old` knew of each exit it probed the same way (same key, addresses and target). */
  #carryFrom(old: FailoverLoop): void {
    this.#failovers = old.#failovers;
    for (const e of this.#o.exits) {
      const was = old.#o.exits.find((x) => x.name === e.name);
      if (!was || JSON.stringify([was.publicKey, was.addresses, was.target]) !== JSON.stringify([e.publicKey, e.addresses, e.target])) continue;
      this.#health.set(e.name, old.#health.get(e.name) ?? INITIAL_HEALTH);
      const latency = old.#latency.get(e.name);
      if (latency !== undefined) this.#latency.set(e.name, latency);
    }
  }

  /** Runs a first round at once, then one every `probe.interval`. */
  start(): void {
    this.#stopped = false;
    this.#schedule(0);
  }

  /** Stops the timer and waits for a round in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** Switches performed since start. */
  get failovers(): number {
    return this.#failovers;
  }

  /** True when `exit` is judged down (not while it is still unknown, nor for a name it does not probe). */
  isDown(exit: string): boolean {
    return this.#health.get(exit)?.state === "down";
  }

  /** Every exit's health, in priority order. */
  get exits(): ExitHealthView[] {
    return this.#o.exits.map((e) => {
      const h = this.#health.get(e.name)!;
      return { name: e.name, state: h.state, lastReason: h.lastReason, probeSeconds: this.#latency.get(e.name) ?? null };
    });
  }

  /** One round: probe all, fold, choose, switch. Exposed so tests and `reconcile` can run one now. */
  round(): Promise<void> {
    const run = this.#running.then(() => this.#round());
    this.#running = run.catch(() => undefined);
    return run;
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const started = performance.now();
      this.round()
        .catch((err: unknown) => this.#log.error("failover round failed", { error: err instanceof Error ? err.message : String(err) }))
        .finally(() => this.#schedule(Math.max(0, this.#o.settings.probe.interval - (performance.now() - started))));
    }, delay);
  }

  async #round(): Promise<void> {
    const { exits, settings } = this.#o;
    const send = this.#o.probe ?? sendProbe;
    const results = await Promise.all(
      exits.map(async (e) => {
        const local = sourceFor(e);
        const result: ProbeResult = local === null
          ? { ok: false, reason: "the exit has no tunnel address of the probe target's family" }
          : await send(e.target, { localAddress: local, timeoutMs: settings.probe.timeout });
        return { e, result, dump: await this.#o.dump(e.name).catch(() => null) };
      }),
    );
    const wentDown: string[] = [];
    for (const { e, result, dump } of results) {
      const peer = dump?.peers.find((p) => p.publicKey === e.publicKey);
      const age = peer && peer.latestHandshake > 0 ? Math.max(0, (this.#o.now ?? Date.now)() / 1000 - peer.latestHandshake) : null;
      if (result.ok) this.#latency.set(e.name, result.latencySeconds);
      const before = this.#health.get(e.name)!;
      const step = observeHealth(before, { probe: result.ok ? { ok: true } : { ok: false, reason: result.reason }, handshakeAgeSeconds: age }, this.#policy);
      this.#health.set(e.name, step.health);
      if (step.changed) {
        this.#log[step.health.state === "up" ? "info" : "warn"](`exit ${step.health.state}`, { exit: e.name, reason: step.reason });
        if (before.state === "up" && step.health.state === "down") wentDown.push(e.name);
      }
    }
    const current = this.#o.host.active;
    const next = chooseActive(exits.map((e) => ({ name: e.name, state: this.#health.get(e.name)!.state })), current, settings.failback);
    // Until every exit has been judged once, keep the start-up choice rather than switch on half the evidence.
    if (next !== current && ![...this.#health.values()].some((h) => h.state === "unknown")) {
      await this.#o.host.setActive(next);
      this.#failovers++;
      this.#log.warn("switched exit", { from: current ?? "none", to: next ?? "none", reason: this.#why(current, next) });
    }
    for (const name of wentDown) this.#o.onExitDown?.(name);
  }

  #why(from: string | null, to: string | null): string {
    const h = from === null ? null : this.#health.get(from);
    if (to === null) return "no exit is up; new connections fail (kill switch)";
    if (h && h.state === "down") return `${from} is down: ${h.lastReason || "misses"}`;
    if (from === null) return `${to} is up`;
    return `${to} is up again and comes first (failback preempt)`;
  }
}

/** The exit's tunnel address in the probe target's family, or null. */
function sourceFor(e: ProbedExit): string | null {
  const dest = parseIp(e.target.kind === "tcp" ? e.target.host : e.target.server);
  const family = dest?.family ?? 4;
  return e.addresses.find((a) => parseIp(a)?.family === family) ?? null;
}
