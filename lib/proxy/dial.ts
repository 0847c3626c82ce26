/**
 * Outbound connections: Happy Eyeballs (RFC 8305) over a list of addresses, bounded by a connect
 * timeout, on Bun's native sockets.
 *
 * Does not resolve names (resolve.ts), check the policy (policy.ts) or relay bytes (relay.ts). It
 * hands the first connected socket to its caller, which wires it to a {@link TargetLeg}.
 *
 * `Bun.connect` has no way to abort a connect in progress, and left alone the kernel keeps a
 * SYN-SENT socket for ~2 minutes (the default `net.ipv4.tcp_syn_retries`). So each attempt
 * learns its socket's fd: `Bun.connect` creates the socket synchronously, and it gets the lowest
 * free fd, which is read just before the call and checked to be a TCP socket in SYN-SENT just
 * after. An attempt that loses the race, or is still pending when the timeout fires, is
 * abandoned with shutdown(2) on that fd, which makes Linux abort the connect at once: Bun sees
 * it fail and closes the fd. The fd is only touched while the attempt is unsettled (Bun still
 * owns it) and while it still refers to the same socket (its inode), still in SYN-SENT. When the fd cannot be learnt (another `connect` was injected, no
 * libc), the attempt is closed the moment it settles, as before.
 * {@link DialStats.pendingAbandonedDials} shows how many abandoned attempts are still pending.
 */
import type { Socket, SocketHandler, TCPSocketConnectOptions } from "bun";
import { formatHostPort, formatIp, type IpAddr } from "../net/ip.ts";
import { fdInode, fdsExhausted } from "../net/fdlimit.ts";
import { lowestFreeFd, shutdownSocket, TCP_SYN_SENT, tcpState } from "../net/sockopt.ts";
import { ConnectTimeoutError, errorCode, LocalResourceError } from "./errors.ts";

/**
 * Opens a TCP connection; the signature of `Bun.connect`, which is the default. Tests substitute
 * one that redirects or fails. It must call `options.socket.open` or `.connectError`, or reject.
 */
export type Connect = (options: TCPSocketConnectOptions<DialAttempt>) => Promise<Socket<DialAttempt>>;

/** A connected outbound socket, as the relay sees it. */
export type TargetSocket = Socket<DialAttempt>;

/** Receives the events of a target socket once its attempt has won. Implemented by the relay. */
export interface TargetLeg {
  fromTarget(data: Uint8Array): void;
  targetDrained(): void;
  targetEnded(): void;
  targetClosed(error: Error | undefined): void;
}

/** The counters the dialer keeps. */
export interface DialStats {
  pendingAbandonedDials: number;
}

/**
 * RFC 8305 §5 "Connection Attempt Delay": start the next address after this long without an
 * answer (or at once when the previous attempt fails). §8 recommends 250 ms.
 */
export const CONNECTION_ATTEMPT_DELAY_MS = 250;

/** One connection attempt to one address: the `data` of its socket. */
export class DialAttempt {
  /** The relay this socket belongs to, once it has won. */
  leg: TargetLeg | null = null;
  /** Connected or failed. */
  settled = false;
  /** Lost the race, or the dial gave up: close on connect. */
  abandoned = false;
  /** The pending socket's fd, while unsettled; -1 when unknown. */
  fd = -1;
  /** The inode of that socket: the fd is only shut down while it still refers to it. */
  inode: number | null = null;
  constructor(
    /** Null once the race is over, so a long-lived socket does not keep the race alive. */
    public race: DialRace | null,
    /** The address dialed; null once the attempt has won, as a relayed socket has no more use for it. */
    public address: IpAddr | null,
  ) {}
}

/**
 * The socket handlers of every outbound socket: one shared object, as Bun recommends, that
 * dispatches through `socket.data`.
 */
export const targetHandlers: SocketHandler<DialAttempt> = {
  open(s) {
    const a = s.data;
    if (a.race) a.race.opened(a, s);
    else s.terminate();
  },
  connectError(s, err) {
    s.data.race?.failed(s.data, err);
  },
  data(s, d) {
    s.data.leg?.fromTarget(d);
  },
  drain(s) {
    s.data.leg?.targetDrained();
  },
  end(s) {
    s.data.leg?.targetEnded();
  },
  close(s, err) {
    s.data.leg?.targetClosed(err);
  },
  error(s, err) {
    // A handler threw. The relay methods do not throw by design; if one does, drop the connection
    // rather than leave it half-wired.
    s.data.leg?.targetClosed(err);
    s.terminate();
  },
};

/** Local addresses to bind outbound sockets to, by family. */
export interface SourceAddresses {
  readonly 4?: string;
  readonly 6?: string;
  /** The exit these are the tunnel addresses of, for log lines and its health; absent for a bare source. */
  readonly exit?: string;
}

/** Options for {@link dial}. */
export interface DialOptions {
  readonly port: number;
  /** Give up after this long, in milliseconds. */
  readonly connectTimeoutMs: number;
  /** Default {@link CONNECTION_ATTEMPT_DELAY_MS}. */
  readonly attemptDelayMs?: number;
  /** Default `Bun.connect`. */
  readonly connect?: Connect;
  /**
   * Source addresses to bind, by family (a pinned exit's tunnel addresses). An address of a family
   * without one fails at once rather than dial unbound, which would take another route. Default:
   * none, the kernel picks.
   */
  readonly source?: SourceAddresses | null;
  readonly stats: DialStats;
  /** Called exactly once: with the winning socket, or with the error of the last failed attempt. */
  readonly onDone: (result: { socket: TargetSocket; address: IpAddr } | { error: Error }) => void;
}

/**
 * Orders addresses as RFC 8305 §4 asks: alternate families, starting with the family of the first
 * address (the resolver's preference; tunnel mode puts IPv6 first), keeping order within a family.
 */
export function interleaveFamilies(addrs: readonly IpAddr[]): IpAddr[] {
  if (addrs.length < 2) return [...addrs];
  const first = addrs[0]!.family;
  const a = addrs.filter((x) => x.family === first);
  const b = addrs.filter((x) => x.family !== first);
  const out: IpAddr[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (i < a.length) out.push(a[i]!);
    if (i < b.length) out.push(b[i]!);
  }
  return out;
}

/** A Happy Eyeballs race in progress. */
export class DialRace {
  #next = 0;
  #pending = 0;
  #done = false;
  #lastError: Error | undefined;
  #attempts: DialAttempt[] = [];
  #delayTimer: ReturnType<typeof setTimeout> | undefined;
  #deadline: ReturnType<typeof setTimeout>;
  readonly #addrs: readonly IpAddr[];
  readonly #opts: DialOptions;

  constructor(addrs: readonly IpAddr[], opts: DialOptions) {
    if (addrs.length === 0) throw new RangeError("dial needs at least one address");
    this.#addrs = addrs;
    this.#opts = opts;
    this.#deadline = setTimeout(() => this.#timeout(), opts.connectTimeoutMs);
    this.#startNext();
  }

  /** Abandons every attempt; `onDone` is not called. For a client that went away. */
  cancel(): void {
    if (this.#done) return;
    this.#finish();
  }

  #startNext(): void {
    if (this.#done || this.#next >= this.#addrs.length) return;
    const address = this.#addrs[this.#next++]!;
    const attempt = new DialAttempt(this, address);
    this.#attempts.push(attempt);
    this.#pending++;
    const connect = this.#opts.connect ?? (Bun.connect as Connect);
    const source = this.#opts.source;
    const local = source ? source[address.family] : undefined;
    if (source && local === undefined) {
      queueMicrotask(() => this.failed(attempt, Object.assign(new Error(`no IPv${address.family} source address on the pinned exit`), { code: "EADDRNOTAVAIL" })));
      return;
    }
    const fd = lowestFreeFd();
    try {
      // `localAddress` binds the socket before connect (Bun honours it; bun-types does not list it).
      const options: TCPSocketConnectOptions<DialAttempt> & { localAddress?: string } = {
        hostname: formatIp(address),
        port: this.#opts.port,
        allowHalfOpen: true,
        data: attempt,
        socket: targetHandlers,
      };
      if (local !== undefined) options.localAddress = local;
      connect(options)
        .then(undefined, (err: unknown) => this.failed(attempt, err instanceof Error ? err : new Error(String(err))));
    } catch (err) {
      this.failed(attempt, err instanceof Error ? err : new Error(String(err)));
    }
    if (fd !== null && !attempt.settled && tcpState(fd) === TCP_SYN_SENT) {
      attempt.fd = fd;
      attempt.inode = fdInode(fd);
    }
    if (!this.#done && this.#next < this.#addrs.length) {
      clearTimeout(this.#delayTimer);
      this.#delayTimer = setTimeout(() => this.#startNext(), this.#opts.attemptDelayMs ?? CONNECTION_ATTEMPT_DELAY_MS);
    }
  }

  /** @internal Called by {@link targetHandlers} when an attempt connects. */
  opened(attempt: DialAttempt, socket: TargetSocket): void {
    if (attempt.settled) return;
    attempt.settled = true;
    attempt.fd = -1;
    this.#pending--;
    if (attempt.abandoned) {
      this.#opts.stats.pendingAbandonedDials--;
      attempt.race = null;
      socket.terminate();
      return;
    }
    attempt.race = null;
    const address = attempt.address!;
    attempt.address = null;
    this.#finish(attempt);
    this.#opts.onDone({ socket, address });
  }

  /** @internal Called by {@link targetHandlers} (or the connect promise) when an attempt fails. */
  failed(attempt: DialAttempt, err: Error): void {
    if (attempt.settled) return;
    attempt.settled = true;
    attempt.fd = -1;
    attempt.race = null;
    this.#pending--;
    if (attempt.abandoned) {
      this.#opts.stats.pendingAbandonedDials--;
      return;
    }
    const error = localCause(err, attempt.address!, this.#opts.port);
    this.#lastError = error;
    if (this.#next < this.#addrs.length) return this.#startNext();
    if (this.#pending === 0) {
      this.#finish();
      this.#opts.onDone({ error });
    }
  }

  #timeout(): void {
    if (this.#done) return;
    const target = formatHostPort({ host: formatIp(this.#addrs[0]!), port: this.#opts.port });
    this.#finish();
    const err = new ConnectTimeoutError(target, this.#opts.connectTimeoutMs);
    if (this.#lastError) err.cause = this.#lastError;
    this.#opts.onDone({ error: err });
  }

  #finish(winner?: DialAttempt): void {
    this.#done = true;
    clearTimeout(this.#delayTimer);
    clearTimeout(this.#deadline);
    for (const a of this.#attempts) {
      if (a === winner || a.settled) continue;
      a.abandoned = true;
      this.#opts.stats.pendingAbandonedDials++;
      abort(a);
    }
    this.#attempts = [];
  }
}

/**
 * Aborts a pending attempt's connect: Bun then reports it failed (and closes its fd) on its next
 * poll. Only called on an unsettled attempt, whose fd Bun still holds.
 */
function abort(attempt: DialAttempt): void {
  if (attempt.fd < 0) return;
  const fd = attempt.fd;
  attempt.fd = -1;
  // Belt and braces: should Bun ever close the fd before it reports the failure, the number may
  // already belong to another socket. Only the one this attempt created, still connecting.
  if (attempt.inode === null || fdInode(fd) !== attempt.inode || tcpState(fd) !== TCP_SYN_SENT) return;
  try {
    shutdownSocket(fd);
  } catch {
    // ENOTCONN: it settled in the kernel meanwhile; Bun reports that as usual.
  }
}

/**
 * Bun reports a connect whose socket(2) failed with EMFILE or ENFILE as `ECONNREFUSED`, which
 * would blame the target for the proxy's own shortage. A refusal is checked against the fd
 * budget (an open and a close) and replaced with a {@link LocalResourceError} when none is left.
 */
function localCause(err: Error, address: IpAddr, port: number): Error {
  if (errorCode(err) !== "ECONNREFUSED") return err;
  const code = fdsExhausted();
  return code ? new LocalResourceError(code, formatHostPort({ host: formatIp(address), port }), { cause: err }) : err;
}

/** Starts a Happy Eyeballs race over `addrs` (already ordered; see {@link interleaveFamilies}). */
export function dial(addrs: readonly IpAddr[], options: DialOptions): DialRace {
  return new DialRace(addrs, options);
}
