/**
 * The relay thread of the splice engine (../splice-forwarder.ts): moves the bytes of handed-off
 * connections with splice(2) through one pipe per direction, driven by a level-triggered epoll,
 * all through `bun:ffi`. It blocks in epoll_wait and never returns to its own event loop, so
 * commands come over a pipe (16-byte records: op, slot, client fd, target fd), not postMessage.
 *
 * Per direction (source socket → pipe → destination socket):
 * - Backpressure: at most one pipe's worth is in flight. A full pipe stops reading the source
 *   (its EPOLLIN interest is dropped); a destination that returns EAGAIN is waited for with EPOLLOUT.
 * - Half-close: the source's EOF is forwarded with shutdown(SHUT_WR) once the pipe is empty; the
 *   connection is over once both directions have been forwarded so.
 * - Resets: an error reading the source or writing the destination resets the other socket
 *   (SO_LINGER 0, then close), so neither peer takes a truncated stream for a complete one.
 * - Counters: bytes read from each source are added to the shared Float64Array, two per slot.
 *
 * Does not time anything out: the main thread may send an abort command (resets both sockets).
 */
import { dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";
import { SpliceOp, type SpliceDone, type SpliceInit } from "./ops.ts";

declare const self: Worker;

const EPOLLIN = 0x1;
const EPOLLOUT = 0x4;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_SETPIPE_SZ = 1031;
const F_GETPIPE_SZ = 1032;
const SPLICE_F_MOVE = 1;
const SPLICE_F_NONBLOCK = 2;
const SOL_SOCKET = 1;
const SO_ERROR = 4;
const SO_LINGER = 13;
const SHUT_WR = 1;
const EAGAIN = 11;
const EINTR = 4;
const ERRNO_NAMES: Record<number, string> = { 32: "EPIPE", 104: "ECONNRESET", 110: "ETIMEDOUT", 113: "EHOSTUNREACH", 111: "ECONNREFUSED", 103: "ECONNABORTED", 101: "ENETUNREACH" };

// struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere (16).
const EV_SIZE = process.arch === "x64" ? 12 : 16;
const EV_DATA = process.arch === "x64" ? 4 : 8;
const MAX_EVENTS = 64;
/** Read-write rounds per direction per wakeup, so that one busy connection cannot starve the rest. */
const ROUNDS = 16;

const libc = dlopen("libc.so.6", {
  splice: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.u32], returns: FFIType.i32 },
  pipe2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  epoll_create1: { args: [FFIType.i32], returns: FFIType.i32 },
  epoll_ctl: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  epoll_wait: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  shutdown: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
}).symbols;

const errnoPtr = libc.__errno_location() as Pointer;
function errno(): number {
  return read.i32(errnoPtr, 0);
}

/** One direction: source socket → pipe → destination socket. */
class Dir {
  inPipe = 0;
  /** The pipe took no more although it holds less than its size (it counts buffers, not bytes). */
  full = false;
  eof = false;
  shut = false;
  /** The destination returned EAGAIN: wait for EPOLLOUT. */
  blocked = false;
  constructor(
    readonly src: number,
    readonly dst: number,
    readonly pr: number,
    readonly pw: number,
    readonly counter: number,
    /** The pipe's size in bytes. */
    readonly cap: number,
  ) {}

  get wantsRead(): boolean {
    return !this.eof && !this.full;
  }
}

class Conn {
  done = false;
  /** The epoll interest of each socket (client, target); -1: taken out of the set (see {@link service}). */
  masks = [-1, -1];
  constructor(
    readonly slot: number,
    readonly fds: readonly [number, number],
    readonly up: Dir,
    readonly down: Dir,
  ) {}
}

class Abortive extends Error {
  constructor(
    readonly code: string,
    readonly side: "client" | "target",
  ) {
    super(code);
  }
}

const byFd = new Map<number, Conn>();
const bySlot = new Map<number, Conn>();
let counters: Float64Array<ArrayBufferLike> = new Float64Array(0);
let pipeSize = 0;
let epfd = -1;
const ev = new Uint8Array(EV_SIZE);
const evView = new DataView(ev.buffer);
const events = new Uint8Array(EV_SIZE * MAX_EVENTS);
const eventsView = new DataView(events.buffer);
const cmdBuf = new Int32Array(4 * 64);
const pipeFds = new Int32Array(2);
const linger = new Int32Array([1, 0]);
const soError = new Int32Array(1);
const soErrorLen = new Uint32Array([4]);

function ctl(op: number, fd: number, mask: number): void {
  evView.setUint32(0, mask, true);
  evView.setUint32(EV_DATA, fd, true);
  evView.setUint32(EV_DATA + 4, 0, true);
  libc.epoll_ctl(epfd, op, fd, ptr(ev));
}

function newPipe(): [number, number, number] {
  if (libc.pipe2(ptr(pipeFds), O_NONBLOCK | O_CLOEXEC) !== 0) throw new Error(`pipe2 failed (errno ${errno()})`);
  const r = pipeFds[0]!;
  const w = pipeFds[1]!;
  if (pipeSize > 0) libc.fcntl(w, F_SETPIPE_SZ, pipeSize); // best effort: the default is 64 KiB
  return [r, w, Math.max(4096, libc.fcntl(w, F_GETPIPE_SZ, 0))];
}

function add(slot: number, client: number, target: number): void {
  let p1: [number, number, number] | null = null;
  let p2: [number, number, number] | null = null;
  try {
    p1 = newPipe();
    p2 = newPipe();
  } catch {
    for (const fd of [...(p1 ? [p1[0], p1[1]] : []), client, target]) libc.close(fd);
    post({ slot, error: { code: "EMFILE", side: "client" } });
    return;
  }
  const conn = new Conn(slot, [client, target], new Dir(client, target, p1[0], p1[1], slot * 2, p1[2]), new Dir(target, client, p2[0], p2[1], slot * 2 + 1, p2[2]));
  byFd.set(client, conn);
  byFd.set(target, conn);
  bySlot.set(slot, conn);
  ctl(EPOLL_CTL_ADD, client, EPOLLIN);
  ctl(EPOLL_CTL_ADD, target, EPOLLIN);
  conn.masks = [EPOLLIN, EPOLLIN];
  // Whatever arrived between the hand-off and now is picked up by the level-triggered epoll.
}

/**
 * Moves what it can one way. Throws {@link Abortive}. Leaves the direction either waiting to
 * read (nothing in the pipe, or room in it) or waiting for EPOLLOUT (bytes in the pipe): never
 * with bytes in the pipe and nothing to wake it.
 */
function pump(d: Dir, srcSide: "client" | "target"): void {
  step(d, srcSide);
  if (d.inPipe > 0 && !d.shut) d.blocked = true; // level-triggered: fires at once if there is room
}

function step(d: Dir, srcSide: "client" | "target"): void {
  const dstSide = srcSide === "client" ? "target" : "client";
  for (let round = 0; round < ROUNDS; round++) {
    let progressed = false;
    if (d.inPipe > 0) {
      const n = libc.splice(d.pr, null, d.dst, null, d.inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.inPipe -= n;
        d.full = false;
        progressed = true;
      } else {
        const e = errno();
        if (e === EAGAIN) return;
        if (e !== EINTR) throw new Abortive(ERRNO_NAMES[e] ?? `errno ${e}`, dstSide);
      }
    }
    if (d.inPipe === 0) d.blocked = false;
    if (d.eof) {
      if (d.inPipe === 0 && !d.shut) {
        d.shut = true;
        libc.shutdown(d.dst, SHUT_WR);
      }
      return;
    }
    if (!d.full) {
      const n = libc.splice(d.src, null, d.pw, null, d.cap - d.inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.inPipe += n;
        counters[d.counter]! += n;
        if (d.inPipe >= d.cap) d.full = true;
        progressed = true;
      } else if (n === 0) {
        d.eof = true;
        progressed = true;
      } else {
        const e = errno();
        if (e === EAGAIN) {
          // No data, or a pipe full in buffers though not in bytes: read again after a write.
          if (d.inPipe > 0) d.full = true;
          else return;
        } else if (e !== EINTR) throw new Abortive(ERRNO_NAMES[e] ?? `errno ${e}`, srcSide);
      }
    }
    if (!progressed) return;
  }
}

function socketError(fd: number): number {
  soErrorLen[0] = 4;
  soError[0] = 0;
  libc.getsockopt(fd, SOL_SOCKET, SO_ERROR, ptr(soError), ptr(soErrorLen));
  return soError[0]!;
}

function finish(conn: Conn, error: SpliceDone["error"], reset: readonly number[]): void {
  if (conn.done) return;
  conn.done = true;
  for (const fd of reset) libc.setsockopt(fd, SOL_SOCKET, SO_LINGER, ptr(linger), 8);
  for (const fd of conn.fds) {
    byFd.delete(fd);
    libc.close(fd); // the last reference to the socket: removes it from the epoll set too
  }
  for (const fd of [conn.up.pr, conn.up.pw, conn.down.pr, conn.down.pw]) libc.close(fd);
  bySlot.delete(conn.slot);
  post({ slot: conn.slot, error });
}

/** How far a connection has got: changes whenever a byte, a FIN or a shutdown moved. */
function progress(conn: Conn): number {
  const u = conn.up;
  const d = conn.down;
  return u.inPipe + d.inPipe + counters[u.counter]! + counters[d.counter]! + (u.eof ? 1 : 0) + (d.eof ? 2 : 0) + (u.shut ? 4 : 0) + (d.shut ? 8 : 0);
}

function service(conn: Conn, fd: number, mask: number): void {
  const [client, target] = conn.fds;
  const side = fd === client ? "client" : "target";
  const i = fd === client ? 0 : 1;
  try {
    if (mask & EPOLLERR) {
      const e = socketError(fd);
      if (e !== 0) throw new Abortive(ERRNO_NAMES[e] ?? `errno ${e}`, side);
    }
    const before = progress(conn);
    const readDir = fd === client ? conn.up : conn.down;
    const writeDir = fd === client ? conn.down : conn.up;
    if (mask & (EPOLLIN | EPOLLHUP | EPOLLERR)) pump(readDir, side);
    if (mask & (EPOLLOUT | EPOLLHUP | EPOLLERR)) pump(writeDir, side === "client" ? "target" : "client");
    if (conn.up.shut && conn.down.shut) return finish(conn, null, []);
    // A hang-up cannot be masked: one that moves nothing (its FIN waits behind a full pipe) would
    // wake us in a loop, so the socket leaves the epoll set until the other side makes room.
    if (mask & (EPOLLHUP | EPOLLERR) && progress(conn) === before) {
      ctl(EPOLL_CTL_DEL, fd, 0);
      conn.masks[i] = -1;
      rearm(conn, i);
      return;
    }
  } catch (err) {
    if (!(err instanceof Abortive)) throw err;
    const other = err.side === "client" ? target : client;
    return finish(conn, { code: err.code, side: err.side }, [other]);
  }
  rearm(conn, -1);
}

/** Sets each socket's interest from the state; `skip` (0, 1) stays out of the set. */
function rearm(conn: Conn, skip: number): void {
  const want = [(conn.up.wantsRead ? EPOLLIN : 0) | (conn.down.blocked ? EPOLLOUT : 0), (conn.down.wantsRead ? EPOLLIN : 0) | (conn.up.blocked ? EPOLLOUT : 0)];
  for (let i = 0; i < 2; i++) {
    if (i === skip || want[i] === conn.masks[i]) continue;
    if (conn.masks[i] === -1 && want[i] === 0) continue; // nothing wanted of a socket out of the set
    ctl(conn.masks[i] === -1 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, conn.fds[i]!, want[i]!);
    conn.masks[i] = want[i]!;
  }
}

function commands(cmdFd: number): void {
  const n = libc.read(cmdFd, ptr(cmdBuf), cmdBuf.byteLength);
  if (n <= 0) return;
  for (let i = 0; i + 4 <= n / 4; i += 4) {
    const op = cmdBuf[i]!;
    const slot = cmdBuf[i + 1]!;
    if (op === SpliceOp.add) add(slot, cmdBuf[i + 2]!, cmdBuf[i + 3]!);
    else if (op === SpliceOp.abort) {
      const conn = bySlot.get(slot);
      if (conn) finish(conn, null, conn.fds);
    }
  }
}

function post(done: SpliceDone): void {
  self.postMessage(done);
}

function loop(cmdFd: number): void {
  epfd = libc.epoll_create1(O_CLOEXEC);
  ctl(EPOLL_CTL_ADD, cmdFd, EPOLLIN);
  for (;;) {
    const n = libc.epoll_wait(epfd, ptr(events), MAX_EVENTS, -1);
    if (n < 0) continue; // EINTR
    for (let i = 0; i < n; i++) {
      const mask = eventsView.getUint32(i * EV_SIZE, true);
      const fd = eventsView.getUint32(i * EV_SIZE + EV_DATA, true);
      if (fd === cmdFd) {
        commands(cmdFd);
        continue;
      }
      const conn = byFd.get(fd);
      if (conn && !conn.done) service(conn, fd, mask);
      else ctl(EPOLL_CTL_DEL, fd, 0); // stale: should not happen
    }
  }
}

self.onmessage = (e: MessageEvent<SpliceInit>) => {
  counters = new Float64Array(e.data.counters);
  pipeSize = e.data.pipeSize;
  const cmdFd = e.data.cmdFd;
  self.postMessage("ready");
  setTimeout(() => loop(cmdFd), 0);
};
