/**
 * Polling for the lab and the demo: a process printed "ready", a namespace got its link-local
 * address. Not for the daemon: it waits on events, never by polling.
 */

/** Polls `check` every 20 ms until it returns true; throws after `ms`, naming `what`. Returns the elapsed ms. */
export async function waitUntil(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > ms) {
      throw new Error(`timed out after ${ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`} waiting for ${what}`);
    }
    await Bun.sleep(20);
  }
  return performance.now() - start;
}
