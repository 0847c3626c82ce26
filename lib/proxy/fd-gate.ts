/**
 * The proxy's side of the fd budget (fd-budget.ts) at run time: how many connections to admit,
 * and stopping the listeners while the process is about to run out of fds, until some are free.
 *
 * Bun's accept loop retries an accept(2) that fails with EMFILE at once, forever, without telling
 * JavaScript: the process spins at 100% CPU while clients wait in an accept queue nobody drains.
 * With the listeners closed instead, the kernel refuses new clients (a RST) meanwhile.
 *
 * Does not own the listeners: the server stops and rebinds them when told to.
 */
import type { Logger } from "../log/logger.ts";
import { fdLimit, openFdCount } from "../net/fdlimit.ts";
import { connectionCapacity, FDS_PER_CONNECTION, fdHeadroom, pauseAt, resumeAt } from "./fd-budget.ts";

/** How often a paused gate checks whether fds are free again. */
const RESUME_CHECK_MS = 250;

/** What the gate asks of its server. */
export interface FdGateHost {
  /** The server's logger now (it can change on update). */
  log(): Logger;
  /** Counts each pause. */
  readonly stats: { acceptPauses: number };
  /** Connections open now (two fds each, at most). */
  connections(): number;
  /** Close every listener. */
  stopListening(): void;
  /** Bind every listener again, on the same ports; false (having logged why) to retry later. */
  listenAgain(): boolean;
}

/** One per server, measured at start. */
export class FdGate {
  /** The soft RLIMIT_NOFILE at start; null: unlimited or unknown. */
  readonly limit: number | null;
  /** Fds open at start, listeners included, before any connection. */
  readonly baseFds: number;
  readonly #host: FdGateHost;
  #resumeTimer: ReturnType<typeof setInterval> | undefined;

  /** Reads the limit and the fds open now: call once the listeners are bound. */
  constructor(host: FdGateHost) {
    this.#host = host;
    this.limit = fdLimit();
    this.baseFds = openFdCount() ?? 0;
  }

  /** True while the listeners are stopped for want of fds. */
  get paused(): boolean {
    return this.#resumeTimer !== undefined;
  }

  /**
   * The connections to admit for `maxConnections`: that many, or as many as the limit holds, said
   * in a warning naming both numbers (at start and on every reload that asks for too many).
   */
  admissible(maxConnections: number): number {
    const limit = this.limit;
    if (limit === null) return maxConnections;
    const capacity = connectionCapacity(limit, this.baseFds);
    if (maxConnections <= capacity) return maxConnections;
    this.#host.log().warn("proxy: maxConnections is more than the open-files limit can hold; admitting fewer (raise LimitNOFILE, or lower maxConnections)", {
      maxConnections,
      fdLimit: limit,
      admitting: capacity,
      fdsPerConnection: FDS_PER_CONNECTION,
      reserved: this.baseFds + fdHeadroom(limit),
    });
    return capacity;
  }

  /**
   * Called on the server's sweep: pauses when the fds open come within reach of the limit. Lists
   * /proc/self/fd (a syscall per fd) only when our own count says the limit is half used.
   */
  check(pendingAbandonedDials: number): void {
    const limit = this.limit;
    if (limit === null || this.paused || this.baseFds + FDS_PER_CONNECTION * this.#host.connections() + pendingAbandonedDials < limit / 2) return;
    const open = openFdCount();
    if (open !== null && open >= pauseAt(limit)) this.pause(`${open} of ${limit} fds open`);
  }

  /** Stops accepting until fds are free again; counted in `acceptPauses`. */
  pause(why: string): void {
    if (this.paused) return;
    this.#host.stats.acceptPauses++;
    this.#host.stopListening();
    this.#host.log().warn("proxy: about to run out of file descriptors, not accepting until some are free", { why, openFds: openFdCount(), fdLimit: this.limit, connections: this.#host.connections() });
    this.#resumeTimer = setInterval(() => this.#resume(), RESUME_CHECK_MS);
    this.#resumeTimer.unref();
  }

  /** Forgets a pause (the server is stopping). */
  stop(): void {
    clearInterval(this.#resumeTimer);
    this.#resumeTimer = undefined;
  }

  #resume(): void {
    const limit = this.limit;
    const open = openFdCount();
    if (limit !== null && open !== null && open > resumeAt(limit)) return;
    if (!this.#host.listenAgain()) return;
    this.stop();
    this.#host.log().info("proxy accepting again", { openFds: open, fdLimit: limit });
  }
}
