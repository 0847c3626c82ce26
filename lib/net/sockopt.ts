/**
 * TCP keepalive with a probe schedule of our choosing, set with setsockopt(2) through `bun:ffi`.
 *
 * Bun's `socket.setKeepAlive(true, ms)` sets the idle time but fixes the probes at one a second,
 * ten at most: a connection whose probes fall into a tunnel outage longer than ~10 s is reset,
 * which breaks the promise that an idle connection is never dropped. This module sets all four
 * options on a socket's fd instead. Linux copies them from a listening socket to every socket it
 * accepts, so the proxy sets them once per listener for the client leg and once per outbound
 * socket for the target leg.
 *
 * Does not know about Bun sockets beyond their (undocumented but present) `fd` property:
 * {@link socketFd} reads it and returns null when it is missing, and callers then fall back to
 * Bun's own schedule.
 */
import { dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";
import { openSync } from "node:fs";

/** When probes start, how often they repeat, and how many go unanswered before a reset. */
export interface KeepaliveSchedule {
  /** Seconds without traffic before the first probe (TCP_KEEPIDLE), 1..32767. */
  readonly idleS: number;
  /** Seconds between unanswered probes (TCP_KEEPINTVL), 1..32767. */
  readonly intervalS: number;
  /** Unanswered probes before the connection is reset (TCP_KEEPCNT), 1..127. */
  readonly count: number;
}

/** The kernel's upper bounds (include/net/tcp.h: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT). */
export const KEEPALIVE_LIMITS = { idleS: 32767, intervalS: 32767, count: 127 } as const;

/** setsockopt(2) failed; `errno` is the OS error number. */
export class SockoptError extends Error {
  override name = "SockoptError";
  constructor(
    readonly option: string,
    readonly errno: number,
  ) {
    super(`setsockopt ${option} failed (errno ${errno})`);
  }
}

// <sys/socket.h>, <netinet/tcp.h> on Linux.
const SOL_SOCKET = 1;
const SO_KEEPALIVE = 9;
const SO_MARK = 36;
const IPPROTO_TCP = 6;
const TCP_KEEPIDLE = 4;
const TCP_KEEPINTVL = 5;
const TCP_KEEPCNT = 6;

const TCP_INFO = 11;

/** `tcpi_state` of a socket whose SYN is out and unanswered (include/net/tcp_states.h). */
export const TCP_SYN_SENT = 2;

interface Libc {
  setsockopt(fd: number, level: number, name: number, value: Pointer, length: number): number;
  getsockopt(fd: number, level: number, name: number, value: Pointer, length: Pointer): number;
  shutdown(fd: number, how: number): number;
  dup(fd: number): number;
  close(fd: number): number;
  __errno_location(): Pointer;
}

let libc: Libc | null = null;
function loadLibc(): Libc {
  libc ??= dlopen("libc.so.6", {
    setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    shutdown: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    dup: { args: [FFIType.i32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols as unknown as Libc;
  return libc;
}

const value = new Int32Array(1);

function setInt(fd: number, level: number, name: number, option: string, v: number): void {
  const l = loadLibc();
  value[0] = v;
  if (l.setsockopt(fd, level, name, ptr(value), 4) !== 0) throw new SockoptError(option, read.i32(l.__errno_location(), 0));
}

/**
 * Turns keepalive on with `schedule`, or off when `schedule` is null. On a listening socket the
 * options carry over to the sockets it accepts from then on. Throws {@link SockoptError}.
 */
export function setKeepalive(fd: number, schedule: KeepaliveSchedule | null): void {
  if (schedule === null) return setInt(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 0);
  // The schedule first: with SO_KEEPALIVE already on, the timer is re-armed from TCP_KEEPIDLE.
  setInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", schedule.idleS);
  setInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", schedule.intervalS);
  setInt(fd, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", schedule.count);
  setInt(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 1);
}

/** The OS fd of a Bun socket or listener, or null when Bun does not expose one. */
export function socketFd(socket: object): number | null {
  const fd = (socket as { fd?: unknown }).fd;
  return typeof fd === "number" && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

/**
 * Sets SO_MARK, the fwmark every packet of the socket carries (policy routing and nftables match
 * it). Needs CAP_NET_ADMIN; throws {@link SockoptError} (errno 1, EPERM, without it).
 */
export function setMark(fd: number, mark: number): void {
  setInt(fd, SOL_SOCKET, SO_MARK, "SO_MARK", mark | 0);
}

const tcpInfo = new Uint8Array(8); // tcpi_state is the first byte of struct tcp_info
const tcpInfoLength = new Uint32Array(1);

/**
 * The TCP state of `fd` (`tcpi_state` from TCP_INFO: {@link TCP_SYN_SENT}, 1 for established,
 * ...), or null when `fd` is not a TCP socket or libc cannot be reached.
 */
export function tcpState(fd: number): number | null {
  let l: Libc;
  try {
    l = loadLibc();
  } catch {
    return null;
  }
  tcpInfoLength[0] = tcpInfo.length;
  return l.getsockopt(fd, IPPROTO_TCP, TCP_INFO, ptr(tcpInfo), ptr(tcpInfoLength)) === 0 ? tcpInfo[0]! : null;
}

/**
 * shutdown(2) both directions. On a socket still in SYN-SENT this aborts the connect at once
 * (Linux disconnects it), so its owner sees the connect fail and closes the fd. Throws
 * {@link SockoptError}.
 */
export function shutdownSocket(fd: number): void {
  const l = loadLibc();
  if (l.shutdown(fd, 2 /* SHUT_RDWR */) !== 0) throw new SockoptError("shutdown", read.i32(l.__errno_location(), 0));
}

/** An fd on /dev/null kept open for {@link lowestFreeFd} to dup; -1 until first needed. */
let spareFd = -1;

/**
 * The fd the next socket(2) will get: the lowest free one (POSIX), found with dup(2) and close(2)
 * of a /dev/null fd kept open for the purpose (two syscalls, a few µs). Null when none is free or
 * libc cannot be reached.
 */
export function lowestFreeFd(): number | null {
  try {
    const l = loadLibc();
    if (spareFd < 0) spareFd = openSync("/dev/null", "r");
    const fd = l.dup(spareFd);
    if (fd < 0) return null;
    l.close(fd);
    return fd;
  } catch {
    return null;
  }
}
