/**
 * Reading a file that a user named (the config, a key, a password) without trusting what is
 * there: only a regular file is read, never more than a limit, and every way of failing becomes
 * one {@link FileReadError} that {@link describeFileError} turns into words.
 *
 * A FIFO with no writer would block `open()` forever, and `/dev/zero` never ends, so the file is
 * opened with O_NONBLOCK and checked with fstat on the same descriptor before a byte is read.
 * It does not check permissions: the caller decides what mode it accepts, from the returned stat.
 */
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, type Stats, statSync } from "node:fs";
import { resolve } from "node:path";

/** Why a file could not be read: an errno code (`ENOENT`, `ELOOP`, ...) or one of these two. */
export const FileFault = {
  /** Not a regular file: a FIFO, a socket, a device or a directory. */
  notRegular: "NOT_REGULAR",
  /** Larger than the caller's limit. */
  tooLarge: "TOO_LARGE",
} as const;

/** A file that could not be read. The message names the file; {@link describeFileError} words the reason. */
export class FileReadError extends Error {
  override name = "FileReadError";
  /** The path as given. */
  readonly file: string;
  /** An errno code, or a {@link FileFault}. */
  readonly code: string;
  /** For {@link FileFault.notRegular}: what it is instead, e.g. "a FIFO (named pipe)". */
  readonly kind: string | undefined;
  /** For {@link FileFault.notRegular}: where a symlink leads, when that is not the path itself. */
  readonly target: string | undefined;
  /** For {@link FileFault.tooLarge}: the size, or null when the file grew while being read. */
  readonly size: number | null;
  /** For {@link FileFault.tooLarge}: the limit, in bytes. */
  readonly limit: number;
  /** What the file is for, in the too-large message: "a config file". */
  readonly purpose: string;

  constructor(
    file: string,
    code: string,
    opts: { kind?: string; target?: string; size?: number | null; limit?: number; purpose?: string; cause?: unknown } = {},
  ) {
    super(`${file}: ${code}`, { cause: opts.cause });
    this.file = file;
    this.code = code;
    this.kind = opts.kind;
    this.target = opts.target;
    this.size = opts.size ?? null;
    this.limit = opts.limit ?? 0;
    this.purpose = opts.purpose ?? "this file";
  }
}

/** Options for {@link readRegularFile}. */
export interface ReadOptions {
  /** Refuse a file larger than this many bytes. Required: nothing here is read unbounded. */
  maxBytes: number;
  /** What the file is for, in the too-large message. Default "this file". */
  purpose?: string;
}

/** What a non-regular file is, as a noun phrase. */
function kindOf(st: Stats): string {
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isDirectory()) return "a directory";
  return "not a regular file";
}

function notRegular(file: string, st: Stats): FileReadError {
  let target: string | undefined;
  try {
    const real = realpathSync(file);
    if (real !== resolve(file)) target = real;
  } catch {
    // Where a symlink leads is a hint only; the refusal stands without it.
  }
  return new FileReadError(file, FileFault.notRegular, { kind: kindOf(st), target });
}

/**
 * Reads a regular file of at most `opts.maxBytes` bytes, and returns its bytes and the stat of the
 * descriptor it read them from. Throws {@link FileReadError} for every failure.
 */
export function readRegularFile(file: string, opts: ReadOptions): { bytes: Buffer; stat: Stats } {
  const purpose = opts.purpose;
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    // open() of a Unix socket fails with ENXIO; say what the path is rather than the errno.
    if (code === "ENXIO") {
      try {
        const st = statSync(file);
        if (!st.isFile()) throw notRegular(file, st);
      } catch (inner) {
        if (inner instanceof FileReadError) throw inner;
      }
    }
    throw new FileReadError(file, code, { cause: e });
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw notRegular(file, stat);
    if (stat.size > opts.maxBytes) throw new FileReadError(file, FileFault.tooLarge, { size: stat.size, limit: opts.maxBytes, purpose });
    // Read to the end rather than trusting the size: /proc files say 0, and a file can grow.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, opts.maxBytes + 1 - total));
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        throw new FileReadError(file, (e as NodeJS.ErrnoException).code ?? "EIO", { cause: e });
      }
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > opts.maxBytes) throw new FileReadError(file, FileFault.tooLarge, { size: null, limit: opts.maxBytes, purpose });
    }
    return { bytes: Buffer.concat(chunks, total), stat };
  } finally {
    closeSync(fd);
  }
}

/** `1 MiB (1048576 bytes)`, `64 KiB (65536 bytes)`, `100 bytes`. */
function formatLimit(bytes: number): string {
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2} MiB (${bytes} bytes)`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB (${bytes} bytes)`;
  return `${bytes} bytes`;
}

/**
 * Words why a file could not be read, to follow its name: `"/etc/k" is not reachable: ...`.
 * Every caller (config file, key files, password files) goes through this one function, so that
 * the same failure reads the same everywhere.
 */
export function describeFileError(e: FileReadError): string {
  switch (e.code) {
    case FileFault.notRegular:
      return `is ${e.kind}${e.target ? ` (${e.target})` : ""}, not a regular file`;
    case FileFault.tooLarge: {
      const limit = `the ${formatLimit(e.limit)} limit for ${e.purpose}`;
      return e.size === null ? `grew past ${limit} while being read` : `is ${e.size} bytes, over ${limit}`;
    }
    case "ENOENT":
      return "does not exist";
    case "EACCES":
      return `cannot be read by uid ${process.getuid?.() ?? "?"} (permission denied)`;
    case "EPERM":
      return `cannot be read by uid ${process.getuid?.() ?? "?"} (operation not permitted, EPERM)`;
    case "ENOTDIR":
      return "is not reachable: a component of the path is not a directory (ENOTDIR)";
    case "ELOOP":
      return "is not reachable: too many levels of symbolic links (ELOOP)";
    case "ENAMETOOLONG":
      return "is not reachable: the path or one of its names is too long (ENAMETOOLONG)";
    case "EISDIR":
      return "is a directory, not a regular file";
    case "ENXIO":
      return "is a device or socket with nothing behind it (ENXIO), not a regular file";
    case "EMFILE":
    case "ENFILE":
      return `cannot be opened: out of file descriptors (${e.code})`;
    case "EIO":
      return "cannot be read: input/output error (EIO)";
    default:
      return `cannot be read (${e.code})`;
  }
}
