/**
 * The process's file-descriptor budget: the soft RLIMIT_NOFILE, how many fds are open now, and
 * whether the next socket would fail for want of one.
 *
 * Bun reports a connect that failed because socket(2) returned EMFILE as `ECONNREFUSED`, and its
 * accept loop retries an accept that fails with EMFILE without telling JavaScript; so the proxy
 * cannot learn about fd exhaustion from its sockets and asks here instead (Linux /proc).
 *
 * Does not change the limit and knows nothing about sockets.
 */
import { closeSync, fstatSync, openSync, readdirSync, readFileSync } from "node:fs";

/**
 * The soft limit on open files (RLIMIT_NOFILE), from /proc/self/limits; null when it is
 * unlimited or cannot be read.
 */
export function fdLimit(limitsText?: string): number | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/limits", "utf8");
    } catch {
      return null;
    }
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m || m[1] === "unlimited") return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** File descriptors open in this process now, or null when /proc/self/fd cannot be read. */
export function openFdCount(): number | null {
  try {
    return readdirSync("/proc/self/fd").length - 1; // minus the fd reading the directory
  } catch {
    return null;
  }
}

/**
 * `EMFILE` (this process is at its limit) or `ENFILE` (the system is) when no fd can be opened
 * now, else null. Costs an open and a close.
 */
export function fdsExhausted(): "EMFILE" | "ENFILE" | null {
  let fd: number;
  try {
    fd = openSync("/dev/null", "r");
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return code === "EMFILE" || code === "ENFILE" ? code : null;
  }
  closeSync(fd);
  return null;
}

/**
 * The inode of what `fd` refers to now, or null when it is closed. Tells a socket from a later one
 * that got the same fd number: inode numbers are not reused while the first is open.
 */
export function fdInode(fd: number): number | null {
  try {
    return fstatSync(fd).ino;
  } catch {
    return null;
  }
}
