/**
 * How many connections the open-files limit can hold, and when the listener should stop
 * accepting for want of fds.
 *
 * Every relayed connection holds two fds (the client's socket and the target's), and the process
 * needs some for itself (listeners, the event loop, DNS, logs, the metrics server). Bun's accept
 * loop, when accept(2) fails with EMFILE, retries at once without telling JavaScript: the process
 * spins at 100% CPU while clients wait in the kernel's accept queue. So the proxy never lets it
 * come to that: it admits at most {@link connectionCapacity} connections, and stops listening when
 * the fds open come within a quarter of the headroom of the limit anyway (a Happy Eyeballs race
 * holds more than one outbound socket, other parts of the daemon open fds too).
 *
 * Pure: the limit and the counts are read by lib/net/fdlimit.ts.
 */

/** Fds a relayed connection holds: the client's socket and the target's. */
export const FDS_PER_CONNECTION = 2;

/** Fds kept free beyond what the admitted connections can hold: 1/20 of the limit, at least 16. */
export function fdHeadroom(limit: number): number {
  return Math.max(16, Math.ceil(limit / 20));
}

/**
 * The most connections that fit in `limit` fds when `openFds` are already open (before any
 * connection), keeping {@link fdHeadroom} free. At least 1.
 */
export function connectionCapacity(limit: number, openFds: number): number {
  return Math.max(1, Math.floor((limit - openFds - fdHeadroom(limit)) / FDS_PER_CONNECTION));
}

/** With this many fds open, stop accepting: accept(2) is about to fail with EMFILE. */
export function pauseAt(limit: number): number {
  return limit - Math.ceil(fdHeadroom(limit) / 4);
}

/** Resume accepting once no more than this many fds are open. */
export function resumeAt(limit: number): number {
  return limit - Math.ceil(fdHeadroom(limit) / 2);
}
