/**
 * The compiled egressd for the namespace tests (daemon, metrics, e2e): dist/egressd when it is newer
 * than every source file (test/run.sh builds it first), otherwise compiled here once per `bun test`
 * process. Either way tests run a private copy in $TMPDIR/egressd-test-binaries, executable by the
 * lab uid, so that a concurrent `bun run build` cannot swap the file under a running daemon. Copies
 * are named after what they were made from, so concurrent runs share one, and copies nobody used for
 * an hour are removed, as are the per-process run dirs of test processes that are gone.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** The repository root. */
const ROOT = resolve(import.meta.dir, "../..");
/** Where binary copies (and the daemon tests' run dirs) live. */
export const TEST_CACHE = join(tmpdir(), "egressd-test-binaries");
const STALE_BINARY_MS = 3_600_000;

/** True while `pid` exists (EPERM: it exists but is not ours to signal). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function newestSource(): number {
  let newest = 0;
  const visit = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  visit(join(ROOT, "lib"));
  for (const f of ["main.ts", "package.json"]) newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs);
  return newest;
}

/** Removes the run dirs of test processes that are gone, and binaries nobody made for an hour. */
function pruneCache(keep: string): void {
  for (const e of readdirSync(TEST_CACHE)) {
    const p = join(TEST_CACHE, e);
    const run = /^run-(\d+)$/.exec(e);
    if (run) {
      if (!pidAlive(Number(run[1]))) rmSync(p, { recursive: true, force: true });
    } else if (e !== keep && Date.now() - statSync(p).mtimeMs > STALE_BINARY_MS) {
      rmSync(p, { force: true });
    }
  }
}

let binary: string | null = null;

/**
 * A private copy of the compiled egressd, executable by any uid. See the module comment for where
 * it comes from. Throws when the build fails.
 */
export function egressdBinary(): string {
  if (binary) return binary;
  mkdirSync(TEST_CACHE, { recursive: true, mode: 0o755 });
  chmodSync(TEST_CACHE, 0o755);
  const dist = join(ROOT, "dist/egressd");
  const newest = newestSource();
  const fresh = existsSync(dist) && statSync(dist).mtimeMs >= newest;
  const name = fresh ? `egressd-dist-${statSync(dist).size}-${Math.floor(statSync(dist).mtimeMs)}` : `egressd-src-${Math.floor(newest)}`;
  const out = join(TEST_CACHE, name);
  pruneCache(name);
  if (!existsSync(out)) {
    // Made under a temporary name and renamed, so a concurrent run never sees half a file.
    const tmp = `${out}.${process.pid}.tmp`;
    if (fresh) {
      copyFileSync(dist, tmp);
    } else {
      const r = spawnSync(process.execPath, ["build", "--compile", "--minify-syntax", "--sourcemap=none", "main.ts", "--outfile", tmp], {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, NO_COLOR: "1" },
      });
      if (r.status !== 0) throw new Error(`bun build --compile failed:\n${r.stderr}`);
    }
    chmodSync(tmp, 0o755);
    renameSync(tmp, out);
  }
  utimesSync(out, new Date(), statSync(out).mtime); // in use: not stale
  binary = out;
  return out;
}
