/**
 * readRegularFile and describeFileError: every way a named file can fail, on a real filesystem
 * (FIFO, socket, device, directory, symlink loop, long name, size limit), and the one table of
 * words for each failure.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeFileError, FileFault, FileReadError, readRegularFile } from "../../lib/config/read-file.ts";

const dir = mkdtempSync(join(tmpdir(), "egressd-read-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The FileReadError reading `file` throws; fails the test when it reads. */
function failure(file: string, maxBytes = 1024): FileReadError {
  try {
    readRegularFile(file, { maxBytes, purpose: "a test file" });
  } catch (e) {
    if (e instanceof FileReadError) return e;
    throw e;
  }
  throw new Error(`${file} was read`);
}

describe("describeFileError: one phrase per failure", () => {
  const uid = process.getuid?.();
  test.each([
    ["ENOENT", {}, "does not exist"],
    ["EACCES", {}, `cannot be read by uid ${uid} (permission denied)`],
    ["EPERM", {}, `cannot be read by uid ${uid} (operation not permitted, EPERM)`],
    ["ENOTDIR", {}, "is not reachable: a component of the path is not a directory (ENOTDIR)"],
    ["ELOOP", {}, "is not reachable: too many levels of symbolic links (ELOOP)"],
    ["ENAMETOOLONG", {}, "is not reachable: the path or one of its names is too long (ENAMETOOLONG)"],
    ["EISDIR", {}, "is a directory, not a regular file"],
    ["ENXIO", {}, "is a device or socket with nothing behind it (ENXIO), not a regular file"],
    ["EMFILE", {}, "cannot be opened: out of file descriptors (EMFILE)"],
    ["ENFILE", {}, "cannot be opened: out of file descriptors (ENFILE)"],
    ["EIO", {}, "cannot be read: input/output error (EIO)"],
    ["EWHATEVER", {}, "cannot be read (EWHATEVER)"],
    [FileFault.notRegular, { kind: "a FIFO (named pipe)" }, "is a FIFO (named pipe), not a regular file"],
    [FileFault.notRegular, { kind: "a character device", target: "/dev/zero" }, "is a character device (/dev/zero), not a regular file"],
    [FileFault.tooLarge, { size: 2_000_000, limit: 1024 * 1024, purpose: "a config file" }, "is 2000000 bytes, over the 1 MiB (1048576 bytes) limit for a config file"],
    [FileFault.tooLarge, { size: 70_000, limit: 64 * 1024, purpose: "a secret file" }, "is 70000 bytes, over the 64 KiB (65536 bytes) limit for a secret file"],
    [FileFault.tooLarge, { size: 101, limit: 100 }, "is 101 bytes, over the 100 bytes limit for this file"],
    [FileFault.tooLarge, { size: null, limit: 100 }, "grew past the 100 bytes limit for this file while being read"],
  ] as const)("%s %o", (code, opts, phrase) => {
    expect(describeFileError(new FileReadError("/f", code, opts))).toBe(phrase);
  });
});

describe("readRegularFile on a real filesystem", () => {
  test("a regular file within the limit: its bytes and its stat", () => {
    const file = join(dir, "ok");
    writeFileSync(file, "hello", { mode: 0o640 });
    const { bytes, stat } = readRegularFile(file, { maxBytes: 5 });
    expect(bytes.toString()).toBe("hello");
    expect(stat.isFile()).toBe(true);
  });

  test("an empty file", () => {
    const file = join(dir, "empty");
    writeFileSync(file, "");
    expect(readRegularFile(file, { maxBytes: 5 }).bytes.length).toBe(0);
  });

  test("one byte over the limit is refused", () => {
    const file = join(dir, "six");
    writeFileSync(file, "hello!");
    expect(failure(file, 5)).toMatchObject({ code: FileFault.tooLarge, size: 6, limit: 5 });
  });

  test("a sparse 1 GiB file is refused by its size without being read", () => {
    const file = join(dir, "sparse");
    writeFileSync(file, "");
    truncateSync(file, 1024 ** 3);
    expect(failure(file)).toMatchObject({ code: FileFault.tooLarge, size: 1024 ** 3 });
  });

  test("a procfs file whose stat says 0 bytes is still bounded", () => {
    // /proc/self/maps reports size 0 and holds more than 64 bytes.
    expect(failure("/proc/self/maps", 64)).toMatchObject({ code: FileFault.tooLarge, size: null });
  });

  test("a FIFO with no writer is refused at once", () => {
    const fifo = join(dir, "fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    expect(failure(fifo)).toMatchObject({ code: FileFault.notRegular, kind: "a FIFO (named pipe)", target: undefined });
  });

  test("a symlink to /dev/zero names the device it leads to", () => {
    const link = join(dir, "zero");
    symlinkSync("/dev/zero", link);
    expect(failure(link)).toMatchObject({ code: FileFault.notRegular, kind: "a character device", target: "/dev/zero" });
  });

  test("a directory", () => {
    const sub = join(dir, "sub");
    mkdirSync(sub);
    expect(failure(sub)).toMatchObject({ code: FileFault.notRegular, kind: "a directory" });
  });

  test("a Unix socket", async () => {
    const path = join(dir, "sock");
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      expect(failure(path)).toMatchObject({ code: FileFault.notRegular, kind: "a socket" });
    } finally {
      server.close();
    }
  });

  test.each([
    ["ENOENT", () => join(dir, "missing")],
    ["ENOTDIR", () => join(dir, "ok", "x")],
    ["ENAMETOOLONG", () => join(dir, "n".repeat(256))],
    [
      "ELOOP",
      () => {
        symlinkSync(join(dir, "loop-b"), join(dir, "loop-a"));
        symlinkSync(join(dir, "loop-a"), join(dir, "loop-b"));
        return join(dir, "loop-a");
      },
    ],
  ])("%s", (code, path) => {
    expect(failure(path())).toMatchObject({ code });
  });
});
