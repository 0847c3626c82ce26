/**
 * The standard `process_*` families, read from procfs the way client_golang's process collector
 * does, with its names and HELP texts so existing process dashboards apply unchanged.
 *
 * Linux only. Clock ticks and page size come from the process's own auxiliary vector
 * (`/proc/self/auxv`: AT_CLKTCK, AT_PAGESZ) rather than being assumed; the boot time comes from
 * `btime` in `/proc/stat`. It does not report Bun heap internals.
 */
import { readdir, readFile } from "node:fs/promises";
import { endianness } from "node:os";
import { ProcfsError } from "./errors.ts";
import { scalarFamily, type MetricFamily } from "./exposition.ts";
import type { Collector } from "./registry.ts";

/** One reading of the process, in base units. */
export interface ProcessSample {
  /** User + system CPU time, seconds. */
  cpuSeconds: number;
  /** Resident set size, bytes. */
  residentBytes: number;
  /** Virtual memory size, bytes. */
  virtualBytes: number;
  /** Open file descriptors (the entries of `/proc/self/fd`). */
  openFds: number;
  /** Soft `RLIMIT_NOFILE`; `Infinity` for unlimited. */
  maxFds: number;
  /** Process start, Unix seconds (fractional, clock-tick resolution). */
  startTimeSeconds: number;
}

/** Options for {@link readProcess} and {@link processCollector}. */
export interface ProcessOptions {
  /** The procfs mount. Default `/proc`. Tests point it at a fixture tree. */
  procRoot?: string;
  /** The process directory under `procRoot`. Default `self`. */
  pid?: string;
}

const AT_PAGESZ = 6n;
const AT_CLKTCK = 17n;

/** The fields of `/proc/<pid>/stat` this module uses; `comm` may contain spaces and parentheses. */
export function parseStat(text: string): { utime: number; stime: number; starttime: number; vsize: number; rss: number } {
  const close = text.lastIndexOf(")");
  if (close < 0) throw new ProcfsError("<pid>/stat", "no ')' after comm");
  // Fields after "(comm) ": index 0 is field 3 (state), so field N is at index N - 3.
  const f = text.slice(close + 2).trim().split(/\s+/);
  const field = (n: number) => {
    const v = Number(f[n - 3]);
    if (!Number.isFinite(v)) throw new ProcfsError("<pid>/stat", `field ${n} is not a number`);
    return v;
  };
  return { utime: field(14), stime: field(15), starttime: field(22), vsize: field(23), rss: field(24) };
}

/** The soft limit of "Max open files" in `/proc/<pid>/limits`; `Infinity` for unlimited. */
export function parseMaxFds(text: string): number {
  const line = text.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
  if (soft === "unlimited") return Infinity;
  const v = Number(soft);
  if (soft === undefined || !Number.isFinite(v)) throw new ProcfsError("<pid>/limits", "no \"Max open files\" line");
  return v;
}

/** `btime` (boot time, Unix seconds) from `/proc/stat`. */
export function parseBootTime(text: string): number {
  const m = /^btime\s+(\d+)$/m.exec(text);
  if (!m) throw new ProcfsError("stat", "no btime line");
  return Number(m[1]);
}

/**
 * Clock ticks per second and page size from an auxiliary vector (pairs of native-endian 64-bit
 * words; Bun runs on 64-bit platforms only). Falls back to Linux's fixed USER_HZ of 100 and 4 KiB.
 */
export function parseAuxv(buf: Uint8Array): { clockTicks: number; pageSize: number } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const le = endianness() === "LE";
  let clockTicks = 100;
  let pageSize = 4096;
  for (let off = 0; off + 16 <= buf.byteLength; off += 16) {
    const type = view.getBigUint64(off, le);
    const value = Number(view.getBigUint64(off + 8, le));
    if (type === 0n) break;
    if (type === AT_CLKTCK && value > 0) clockTicks = value;
    if (type === AT_PAGESZ && value > 0) pageSize = value;
  }
  return { clockTicks, pageSize };
}

/** Reads the process once. Rejects if procfs is missing or malformed. See {@link ProcessOptions}. */
export async function readProcess(opts: ProcessOptions = {}): Promise<ProcessSample> {
  const root = opts.procRoot ?? "/proc";
  const dir = `${root}/${opts.pid ?? "self"}`;
  const [stat, limits, fds, procStat, auxv] = await Promise.all([
    readFile(`${dir}/stat`, "utf8"),
    readFile(`${dir}/limits`, "utf8"),
    readdir(`${dir}/fd`),
    readFile(`${root}/stat`, "utf8"),
    readFile(`${dir}/auxv`),
  ]);
  const s = parseStat(stat);
  const { clockTicks, pageSize } = parseAuxv(auxv);
  return {
    cpuSeconds: (s.utime + s.stime) / clockTicks,
    residentBytes: s.rss * pageSize,
    virtualBytes: s.vsize,
    openFds: fds.length,
    maxFds: parseMaxFds(limits),
    startTimeSeconds: parseBootTime(procStat) + s.starttime / clockTicks,
  };
}

/** Renders a reading with client_golang's names and HELP texts. Pure. */
export function processFamilies(p: ProcessSample): MetricFamily[] {
  return [
    scalarFamily("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", p.cpuSeconds),
    scalarFamily("process_open_fds", "Number of open file descriptors.", "gauge", p.openFds),
    scalarFamily("process_max_fds", "Maximum number of open file descriptors.", "gauge", p.maxFds),
    scalarFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", p.virtualBytes),
    scalarFamily("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", p.residentBytes),
    scalarFamily("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", p.startTimeSeconds),
  ];
}

/** The `process` collector. */
export function processCollector(opts: ProcessOptions = {}): Collector {
  return { name: "process", collect: async () => processFamilies(await readProcess(opts)) };
}
