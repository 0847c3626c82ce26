import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcfsError } from "../../lib/metrics/errors.ts";
import { renderFamilies } from "../../lib/metrics/exposition.ts";
import { parseAuxv, parseMaxFds, parseStat, processFamilies, readProcess } from "../../lib/metrics/process.ts";

/** An auxv image: (type, value) pairs of little-endian u64, AT_NULL-terminated. */
function auxv(pairs: [number, number][]): Uint8Array {
  const buf = new Uint8Array((pairs.length + 1) * 16);
  const view = new DataView(buf.buffer);
  pairs.forEach(([t, v], i) => {
    view.setBigUint64(i * 16, BigInt(t), true);
    view.setBigUint64(i * 16 + 8, BigInt(v), true);
  });
  return buf;
}

// A stat line whose comm holds spaces and a ") (" that a naive split on ")" would trip over.
const STAT =
  "4242 (egressd ) (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 " +
  "250 130 0 0 20 0 12 0 " + // utime=250 stime=130 (fields 14, 15), ..., field 21
  "5000 " + // starttime (field 22), in clock ticks since boot
  "6713937920 8620 " + // vsize bytes (23), rss pages (24)
  "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

describe("parsers", () => {
  test("stat: fields after the last ')'", () => {
    expect(parseStat(STAT)).toEqual({ utime: 250, stime: 130, starttime: 5000, vsize: 6713937920, rss: 8620 });
  });

  test.each([["no comm close", "1 (x S 1"], ["truncated", "1 (x) S 1 2 3"]])("stat rejects %s", (_, text) => {
    expect(() => parseStat(text)).toThrow(ProcfsError);
  });

  test("limits: the soft limit of Max open files", () => {
    const limits =
      "Limit                     Soft Limit           Hard Limit           Units     \n" +
      "Max processes             96365                96365                processes \n" +
      "Max open files            1024                 524288               files     \n";
    expect(parseMaxFds(limits)).toBe(1024);
    expect(parseMaxFds("Max open files            unlimited            unlimited            files\n")).toBe(Infinity);
    expect(() => parseMaxFds("Limit Soft Hard\n")).toThrow(ProcfsError);
  });

  test("auxv: AT_CLKTCK and AT_PAGESZ, defaults when absent", () => {
    expect(parseAuxv(auxv([[33, 1], [6, 16384], [17, 250]]))).toEqual({ clockTicks: 250, pageSize: 16384 });
    expect(parseAuxv(auxv([]))).toEqual({ clockTicks: 100, pageSize: 4096 });
  });
});

describe("readProcess on a fixture /proc", () => {
  let root = "";
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "egressd-proc-"));
    await mkdir(join(root, "self", "fd"), { recursive: true });
    for (const fd of ["0", "1", "2", "3", "7"]) await writeFile(join(root, "self", "fd", fd), "");
    await writeFile(join(root, "self", "stat"), STAT + "\n");
    await writeFile(join(root, "self", "limits"), "Max open files            4096                 8192                 files     \n");
    await writeFile(join(root, "self", "auxv"), auxv([[6, 4096], [17, 100]]));
    await writeFile(join(root, "stat"), "cpu  1 2 3\nbtime 1763700000\nprocesses 9\n");
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  test("base units: ticks to seconds, pages to bytes, boot time plus start ticks", async () => {
    expect(await readProcess({ procRoot: root })).toEqual({
      cpuSeconds: 3.8,
      residentBytes: 8620 * 4096,
      virtualBytes: 6713937920,
      openFds: 5,
      maxFds: 4096,
      startTimeSeconds: 1763700050,
    });
  });

  test("a missing file rejects", async () => {
    await expect(readProcess({ procRoot: root, pid: "99999999" })).rejects.toThrow(/ENOENT/);
  });
});

describe("the real /proc/self", () => {
  test("sane values", async () => {
    const p = await readProcess();
    const nowS = Date.now() / 1000;
    expect(p.residentBytes).toBeGreaterThan(1024 * 1024);
    expect(p.virtualBytes).toBeGreaterThanOrEqual(p.residentBytes);
    expect(p.cpuSeconds).toBeGreaterThan(0);
    expect(p.cpuSeconds).toBeLessThan(process.uptime() * 4 + 1); // ≤ 4 busy threads for the whole life
    expect(p.openFds).toBeGreaterThanOrEqual(3);
    expect(p.openFds).toBeLessThanOrEqual(p.maxFds);
    // Started before now, and not before this test process could have started.
    expect(p.startTimeSeconds).toBeLessThanOrEqual(nowS + 0.02);
    expect(p.startTimeSeconds).toBeGreaterThan(nowS - process.uptime() - 5);
  });

  test("RSS agrees with /proc/self/status VmRSS within 10%", async () => {
    const status = await Bun.file("/proc/self/status").text();
    const vmRssKb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]);
    const { residentBytes } = await readProcess();
    expect(Math.abs(residentBytes - vmRssKb * 1024) / (vmRssKb * 1024)).toBeLessThan(0.1);
  });

  test("open fds follow files opened and closed", async () => {
    // readProcess's own reads hold up to 5 fds while it counts, so each reading is ±5 of the truth.
    const { open } = await import("node:fs/promises");
    const before = (await readProcess()).openFds;
    const handles = await Promise.all(Array.from({ length: 32 }, () => open("/proc/self/stat")));
    let during: number;
    try {
      during = (await readProcess()).openFds;
    } finally {
      await Promise.all(handles.map((h) => h.close()));
    }
    expect(during - before).toBeGreaterThanOrEqual(32 - 5);
    expect(during - before).toBeLessThanOrEqual(32 + 5);
    expect(before - (await readProcess()).openFds).toBeLessThanOrEqual(5);
  });

  test("client_golang names and types", () => {
    const text = renderFamilies(
      processFamilies({ cpuSeconds: 1.5, residentBytes: 2, virtualBytes: 3, openFds: 4, maxFds: 5, startTimeSeconds: 6.25 }),
    );
    expect(text.split("\n").filter((l) => l.startsWith("# TYPE"))).toEqual([
      "# TYPE process_cpu_seconds_total counter",
      "# TYPE process_open_fds gauge",
      "# TYPE process_max_fds gauge",
      "# TYPE process_virtual_memory_bytes gauge",
      "# TYPE process_resident_memory_bytes gauge",
      "# TYPE process_start_time_seconds gauge",
    ]);
    expect(text).toContain("process_start_time_seconds 6.25\n");
  });
});
