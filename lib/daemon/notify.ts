/**
 * sd_notify(3) without libsystemd: one datagram per message to `$NOTIFY_SOCKET`, a Unix datagram
 * socket given as a path or, with a leading `@`, as an abstract name.
 *
 * Node and Bun have no AF_UNIX datagram sockets, so this calls libc `socket(2)`/`sendto(2)` through
 * `bun:ffi`. It does not implement fd passing (FDSTORE) or the `sd_notify` barrier.
 */
import { dlopen, FFIType, type Pointer, ptr, read } from "bun:ffi";

/** A message could not be sent to the notify socket. */
export class NotifyError extends Error {
  override name = "NotifyError";
  /** The socket address, as given in `$NOTIFY_SOCKET`. */
  readonly socket: string;
  /** errno, when the kernel refused. */
  readonly errno: number | undefined;
  constructor(message: string, socket: string, errno?: number) {
    super(message);
    this.socket = socket;
    this.errno = errno;
  }
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(struct sockaddr_un.sun_path) on Linux. */
const SUN_PATH_MAX = 108;

type Libc = {
  socket: (domain: number, type: number, protocol: number) => number;
  sendto: (fd: number, buf: Pointer, len: number, flags: number, addr: Pointer, addrlen: number) => number | bigint;
  close: (fd: number) => number;
  __errno_location: () => Pointer;
  clock_gettime: (clock: number, ts: Pointer) => number;
};

let libc: Libc | null = null;
function loadLibc(): Libc {
  if (libc) return libc;
  const lib = dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: {
      args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
      returns: FFIType.i64,
    },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
    clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  });
  libc = lib.symbols as unknown as Libc;
  return libc;
}

function errno(l: Libc): number {
  return read.i32(l.__errno_location() as Pointer, 0);
}

/**
 * Encodes a `struct sockaddr_un` for `address`: `@name` is abstract (leading NUL, no terminator),
 * anything else a filesystem path (NUL-terminated). Returns the bytes and the address length.
 */
export function encodeSockaddrUn(address: string): { bytes: Uint8Array; length: number } {
  const abstract = address.startsWith("@");
  const name = new TextEncoder().encode(abstract ? address.slice(1) : address);
  if (name.length + 1 > SUN_PATH_MAX) throw new NotifyError(`socket address is longer than ${SUN_PATH_MAX - 1} bytes`, address);
  const bytes = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(bytes.buffer).setUint16(0, AF_UNIX, true);
  bytes.set(name, abstract ? 3 : 2); // abstract: sun_path[0] stays 0
  // Abstract: the leading NUL plus the name. Path: the name plus its terminating NUL.
  return { bytes, length: 2 + name.length + 1 };
}

/** Sends one notification datagram. Separate fields with newlines: `RELOADING=1\nMONOTONIC_USEC=...`. */
export function sendNotify(address: string, message: string): void {
  const l = loadLibc();
  const addr = encodeSockaddrUn(address);
  const payload = new TextEncoder().encode(message);
  const fd = l.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const e = errno(l);
    throw new NotifyError(`socket(AF_UNIX, SOCK_DGRAM) failed (errno ${e})`, address, e);
  }
  try {
    const sent = Number(
      l.sendto(fd, ptr(payload.length ? payload : new Uint8Array(1)), payload.length, MSG_NOSIGNAL, ptr(addr.bytes), addr.length),
    );
    if (sent < 0) {
      const e = errno(l);
      throw new NotifyError(`sendto ${address} failed (errno ${e})`, address, e);
    }
  } finally {
    l.close(fd);
  }
}

const CLOCK_MONOTONIC = 1;

/**
 * CLOCK_MONOTONIC in microseconds, as `MONOTONIC_USEC=` wants it: systemd compares it with its own
 * clock to match a RELOADING=1 to the reload it asked for. Bun's `process.hrtime` counts from
 * process start, not from boot, so this asks libc.
 */
export function monotonicUsec(): bigint {
  const l = loadLibc();
  const ts = new BigInt64Array(2); // struct timespec { time_t tv_sec; long tv_nsec; } on 64-bit
  if (l.clock_gettime(CLOCK_MONOTONIC, ptr(ts)) !== 0) throw new Error(`clock_gettime failed (errno ${errno(l)})`);
  return ts[0]! * 1_000_000n + ts[1]! / 1000n;
}

/** The notifications the daemon sends. Every method is a no-op without `$NOTIFY_SOCKET`. */
export interface Notifier {
  /** True when a notify socket is configured. */
  readonly enabled: boolean;
  ready(status?: string): void;
  status(status: string): void;
  reloading(): void;
  stopping(): void;
  watchdog(): void;
}

/** Options for {@link createNotifier}. */
export interface NotifierOptions {
  /** Environment to read `NOTIFY_SOCKET` from. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Transport, for tests. Default {@link sendNotify}. */
  send?: (address: string, message: string) => void;
  /** Called when a send fails; notification failures never crash the daemon. Default: ignored. */
  onError?: (error: unknown) => void;
}

/** Creates a {@link Notifier} for `$NOTIFY_SOCKET`. */
export function createNotifier(opts: NotifierOptions = {}): Notifier {
  const address = (opts.env ?? process.env).NOTIFY_SOCKET;
  const send = opts.send ?? sendNotify;
  const onError = opts.onError ?? (() => {});
  const emit = (msg: string) => {
    if (!address) return;
    try {
      send(address, msg);
    } catch (e) {
      onError(e);
    }
  };
  const oneLine = (s: string) => s.replace(/\n/g, " ");
  return {
    enabled: Boolean(address),
    ready: (status) => emit(status ? `READY=1\nSTATUS=${oneLine(status)}` : "READY=1"),
    status: (status) => emit(`STATUS=${oneLine(status)}`),
    reloading: () => emit(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`),
    stopping: () => emit("STOPPING=1"),
    watchdog: () => emit("WATCHDOG=1"),
  };
}
