/**
 * The systemd watchdog: `WATCHDOG=1` every half of `$WATCHDOG_USEC`, but only while the daemon is
 * healthy. The ping is sent from a timer on the event loop, so a blocked loop stops the pings by
 * itself; `healthy()` adds what a timer cannot see, such as a reconcile loop that stopped finishing.
 * systemd then kills and restarts the service (WatchdogSec=, Restart=on-failure).
 */

/** Options for {@link startWatchdog}. */
export interface WatchdogOptions {
  /** Environment with `WATCHDOG_USEC` and `WATCHDOG_PID`. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Sends one `WATCHDOG=1`. */
  ping: () => void;
  /** Returns null when healthy, or why not; no ping is sent while unhealthy. Default: always healthy. */
  healthy?: () => string | null;
  /** Told once each time health turns bad. Default: ignored. */
  onUnhealthy?: (reason: string) => void;
}

/** A running watchdog. */
export interface Watchdog {
  /** Milliseconds between pings, or 0 when systemd asked for no watchdog. */
  readonly intervalMs: number;
  stop(): void;
}

/**
 * Reads the watchdog period systemd asked for, in microseconds; 0 when there is none or when
 * `WATCHDOG_PID` names another process (sd_watchdog_enabled(3)).
 */
export function watchdogUsec(env: Record<string, string | undefined> = process.env): number {
  const usec = Number(env.WATCHDOG_USEC ?? 0);
  if (!Number.isFinite(usec) || usec <= 0) return 0;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return 0;
  return usec;
}

/** Starts pinging at half the requested period. Does nothing when no watchdog was requested. */
export function startWatchdog(opts: WatchdogOptions): Watchdog {
  const usec = watchdogUsec(opts.env);
  if (usec === 0) return { intervalMs: 0, stop() {} };
  const intervalMs = Math.max(1, Math.floor(usec / 2000));
  let wasHealthy = true;
  const tick = () => {
    const reason = opts.healthy?.() ?? null;
    if (reason === null) {
      wasHealthy = true;
      opts.ping();
    } else if (wasHealthy) {
      wasHealthy = false;
      opts.onUnhealthy?.(reason);
    }
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    intervalMs,
    stop: () => clearInterval(timer),
  };
}
