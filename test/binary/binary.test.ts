/**
 * The compiled binary is one file that runs on its own: built here with `bun build --compile` (so the
 * test never runs a stale dist/egressd), copied alone into an empty temp dir with no node_modules in
 * it or above it, and run from there with a PATH that has no bun on it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { isKey } from "../../lib/keys/keys.ts";
import { makeConfigDir, minimalConfig } from "../config/fixtures.ts";
import { BUN, have, ROOT, type Ran, run, wgPubkey } from "../cli/spawn.ts";

let buildDir = "";
let runDir = "";
let binary = "";

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** Runs the copied binary in its own dir, with no bun and no node_modules within reach. */
function egressd(args: string[], opts: { stdin?: string } = {}): Promise<Ran> {
  return run([binary, ...args], { cwd: runDir, env: { PATH, HOME: runDir }, ...opts });
}

beforeAll(async () => {
  buildDir = mkdtempSync(join(tmpdir(), "egressd-build-"));
  // `npm run build`'s script, into a dir of our own.
  const built = await run(["bash", "scripts/build.sh", join(buildDir, "egressd")], { env: { ...process.env, BUN } });
  if (built.code !== 0) throw new Error(`bun build failed (${built.code}): ${built.stderr}`);
  runDir = mkdtempSync(join(tmpdir(), "egressd-bin-"));
  binary = join(runDir, "egressd");
  copyFileSync(join(buildDir, "egressd"), binary);
  rmSync(buildDir, { recursive: true, force: true });
}, 60_000);

afterAll(() => {
  rmSync(runDir, { recursive: true, force: true });
  rmSync(buildDir, { recursive: true, force: true });
});

describe("the copied binary runs alone", () => {
  test("it is alone in its dir, and no node_modules is in that dir or any dir above it", () => {
    expect(readdirSync(runDir)).toEqual(["egressd"]);
    expect(statSync(binary).mode & 0o111).not.toBe(0);
    for (let dir = runDir; ; dir = dirname(dir)) {
      expect(existsSync(join(dir, "node_modules"))).toBe(false);
      if (dirname(dir) === dir) break;
    }
    expect(runDir.startsWith(ROOT)).toBe(false);
    expect(Bun.which("bun", { PATH })).toBeNull();
  });

  test("version shows the commit scripts/build.sh embedded", async () => {
    const head = (await run(["git", "rev-parse", "--short=12", "HEAD"])).stdout.trim();
    expect(head).toMatch(/^[0-9a-f]{12}$/);
    const ran = await egressd(["version"]);
    const version = pkg.version.replaceAll(".", "\\.");
    expect(ran).toEqual({ code: 0, stdout: expect.stringMatching(new RegExp(`^egressd ${version} \\(commit ${head}(-dirty)?, bun \\d`)), stderr: "" });
    expect(JSON.parse((await egressd(["version", "--json"])).stdout).commit).toMatch(new RegExp(`^${head}(-dirty)?$`));
  });

  test("built outside a git checkout (a release tarball), the commit is unknown", async () => {
    const src = mkdtempSync(join(tmpdir(), "egressd-tarball-"));
    try {
      for (const f of ["main.ts", "lib", "package.json", "tsconfig.json", "scripts/build.sh"]) cpSync(join(ROOT, f), join(src, f), { recursive: true });
      symlinkSync(join(ROOT, "node_modules"), join(src, "node_modules"));
      const built = await run(["bash", "scripts/build.sh", join(src, "egressd")], { cwd: src, env: { ...process.env, BUN } });
      expect(built.code).toBe(0);
      const ran = await run([join(src, "egressd"), "version", "--json"], { cwd: src, env: { PATH } });
      expect(JSON.parse(ran.stdout)).toEqual({ version: pkg.version, commit: "unknown", runtime: expect.stringMatching(/^bun /) });
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  }, 60_000);

  test.skipIf(!have("wg"))("genkey | pubkey equals wg pubkey (5 keys)", async () => {
    for (let i = 0; i < 5; i++) {
      const key = await egressd(["genkey"]);
      expect(key.code).toBe(0);
      expect(isKey(key.stdout)).toBe(true);
      const pub = await egressd(["pubkey"], { stdin: key.stdout });
      expect(pub).toEqual({ code: 0, stdout: wgPubkey(key.stdout.trim()) + "\n", stderr: "" });
    }
  });

  test("check-config on a valid config: exit 0 and the effective config", async () => {
    const d = makeConfigDir();
    try {
      const ran = await egressd(["check-config", "--config", d.configFile]);
      expect([ran.code, ran.stderr]).toEqual([0, ""]);
      expect(JSON.parse(ran.stdout).interface.privateKeyFile).toBe(d.keyFile);
    } finally {
      d.remove();
    }
  });

  test("check-config on a bad config: exit 2 and the field named", async () => {
    const d = makeConfigDir({ ...minimalConfig(), routing: { table: 254 } });
    try {
      const ran = await egressd(["check-config", "--config", d.configFile]);
      expect({ code: ran.code, stdout: ran.stdout }).toEqual({ code: 2, stdout: "" });
      expect(ran.stderr).toBe(`${d.configFile}: routing.table: 254 is reserved by the kernel (253 default, 254 main, 255 local); use e.g. 51820\n`);
    } finally {
      d.remove();
    }
  });

  test("an unknown command: exit 2", async () => {
    expect((await egressd(["frobnicate"])).code).toBe(2);
  });
});
