/**
 * TCP keepalive on the proxy's sockets: the configured probe schedule on listeners (which the
 * kernel copies to every accepted socket) and on outbound sockets, with Bun's own schedule as the
 * fallback when the socket's fd cannot be reached.
 *
 * Does not choose the schedule (options.ts does) and does not know which sockets exist.
 */
import type { Logger } from "../log/logger.ts";
import { setKeepalive, socketFd, type KeepaliveSchedule } from "../net/sockopt.ts";

/** What {@link Keepalive.socket} needs of a connected Bun socket. */
export interface KeepaliveSocket {
  setKeepAlive(enable: boolean, initialDelayMs: number): boolean;
}

/** Applies one schedule; warns once per server when it has to fall back to Bun's. */
export class Keepalive {
  /** The schedule in force; null: keepalive off. Replaced on update. */
  schedule: KeepaliveSchedule | null;
  #log: Logger;
  #warned = false;

  constructor(schedule: KeepaliveSchedule | null, log: Logger) {
    this.schedule = schedule;
    this.#log = log;
  }

  /** Logs to `log` from now on (the server's logger can change on update). */
  setLog(log: Logger): void {
    this.#log = log;
  }

  /**
   * Sets the schedule on every listening socket; Linux copies it to each socket it accepts, which
   * saves four syscalls per connection and gives the client leg our own probe schedule instead of
   * Bun's fixed one. Returns false when a listener could not be set: each client socket must then
   * be set on its own. With keepalive off, the listeners get it turned off.
   */
  applyToListeners(listeners: Iterable<object>): boolean {
    let ok = true;
    for (const listener of listeners) {
      const fd = socketFd(listener);
      try {
        if (fd === null) throw new Error("Bun does not expose the listener's fd");
        setKeepalive(fd, this.schedule);
      } catch (err) {
        ok = false;
        this.#fallback(err);
      }
    }
    return ok;
  }

  /** Keepalive on one connected socket: our schedule, or Bun's if setsockopt cannot be reached. */
  socket(socket: KeepaliveSocket): void {
    const schedule = this.schedule;
    if (schedule === null) return; // sockets start with keepalive off
    const fd = socketFd(socket);
    try {
      if (fd === null) throw new Error("Bun does not expose the socket's fd");
      setKeepalive(fd, schedule);
    } catch (err) {
      this.#fallback(err);
      socket.setKeepAlive(true, schedule.idleS * 1000);
    }
  }

  #fallback(err: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#log.warn("proxy: cannot set the keepalive probe schedule; using Bun's (a probe every second, 10 at most)", { err });
  }
}
