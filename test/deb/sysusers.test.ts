/**
 * systemd/egressd.sysusers and systemd/egressd.tmpfiles, applied by the real systemd-sysusers and
 * systemd-tmpfiles to a throwaway root (`--root=DIR`): the host's own users and /etc are never
 * touched.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { have, ROOT } from "../cli/spawn.ts";

const why = process.getuid?.() !== 0 ? "needs root (the tools chown inside the temp root)" : !have("systemd-sysusers") || !have("systemd-tmpfiles") ? "needs systemd-sysusers and systemd-tmpfiles" : null;
const name = (n: string) => (why ? `${n} [skipped: ${why}]` : n);
let root = "";

function tool(argv: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 30_000 });
  return { code: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

beforeAll(() => {
  if (why) return;
  root = mkdtempSync(join(tmpdir(), "egressd-sysroot-"));
  mkdirSync(join(root, "etc"));
  mkdirSync(join(root, "usr/lib/sysusers.d"), { recursive: true });
  mkdirSync(join(root, "usr/lib/tmpfiles.d"), { recursive: true });
  // A root with one system group already, so the new ids must avoid it.
  writeFileSync(join(root, "etc/group"), "root:x:0:\nsystemd-journal:x:999:\n");
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n");
  copyFileSync(join(ROOT, "systemd/egressd.sysusers"), join(root, "usr/lib/sysusers.d/egressd.conf"));
  copyFileSync(join(ROOT, "systemd/egressd.tmpfiles"), join(root, "usr/lib/tmpfiles.d/egressd.conf"));
});
afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("sysusers.d and tmpfiles.d", () => {
  test.skipIf(why !== null)(name("systemd-sysusers creates the egressd system user and group, with no login"), () => {
    const r = tool(["systemd-sysusers", `--root=${root}`]);
    expect(r.code).toBe(0);
    const user = readFileSync(join(root, "etc/passwd"), "utf8").split("\n").find((l) => l.startsWith("egressd:"))!;
    const [, , uid, gid, , home, shell] = user.split(":");
    expect(Number(uid)).toBeLessThan(1000); // a system uid
    expect(Number(uid)).toBeGreaterThan(0);
    expect(home).toBe("/");
    expect(shell).toBe("/usr/sbin/nologin");
    const group = readFileSync(join(root, "etc/group"), "utf8").split("\n").find((l) => l.startsWith("egressd:"))!;
    expect(group.split(":")[2]).toBe(gid!);
    expect(gid).not.toBe("999"); // taken by systemd-journal in this root
    // Again: nothing changes (postinst runs it on every upgrade).
    const before = readFileSync(join(root, "etc/passwd"), "utf8");
    expect(tool(["systemd-sysusers", `--root=${root}`]).code).toBe(0);
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toBe(before);
  });

  test.skipIf(why !== null)(name("systemd-tmpfiles makes /etc/egressd 0750 root:egressd, and repairs its mode"), () => {
    const gid = Number(readFileSync(join(root, "etc/group"), "utf8").split("\n").find((l) => l.startsWith("egressd:"))!.split(":")[2]);
    expect(tool(["systemd-tmpfiles", `--root=${root}`, "--create"])).toMatchObject({ code: 0, stderr: "" });
    const st = statSync(join(root, "etc/egressd"));
    expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o750, 0, gid]);
    // A key written there stays as it is: tmpfiles only sets the directory.
    writeFileSync(join(root, "etc/egressd/private-key"), "k\n", { mode: 0o600 });
    spawnSync("chmod", ["0777", join(root, "etc/egressd")]);
    expect(tool(["systemd-tmpfiles", `--root=${root}`, "--create"]).code).toBe(0);
    expect(statSync(join(root, "etc/egressd")).mode & 0o7777).toBe(0o750);
    expect(readFileSync(join(root, "etc/egressd/private-key"), "utf8")).toBe("k\n");
  });
});
