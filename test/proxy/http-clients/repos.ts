/**
 * Repositories for real clients to fetch through the proxy, built at test time under a directory
 * the target server serves (target-server.ts `root`):
 * - a flat apt repository (`<root>/apt/`) holding one dummy package built with dpkg-deb, indexed
 *   with apt-ftparchive (apt-utils);
 * - a bare git repository (`<root>/git/lab.git`) with one commit, prepared for git's "dumb" HTTP
 *   protocol with `git update-server-info`, so static files over HTTPS are enough to clone it.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

function run(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): string {
  const r = Bun.spawnSync(argv, { cwd: opts.cwd, env: opts.env, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (exit ${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** A built apt repository. */
export interface AptRepo {
  /** `<root>/apt`. */
  readonly dir: string;
  /** The dummy package's name, version and file. */
  readonly packageName: string;
  readonly version: string;
  /** A sources.list line for the repository served at `baseUrl` (e.g. `http://host:port`). */
  sourcesLine(baseUrl: string): string;
}

/** The dummy package's name. */
export const APT_PACKAGE = "egressd-lab-dummy";

/** Builds the flat apt repository under `<root>/apt`. Needs dpkg-deb and apt-ftparchive. */
export function buildAptRepo(root: string): AptRepo {
  const dir = join(root, "apt");
  const pkg = join(root, "apt-build", APT_PACKAGE);
  mkdirSync(join(pkg, "DEBIAN"), { recursive: true });
  mkdirSync(join(pkg, "usr/share/doc", APT_PACKAGE), { recursive: true });
  mkdirSync(dir, { recursive: true });
  const version = "1.0";
  writeFileSync(
    join(pkg, "DEBIAN/control"),
    `Package: ${APT_PACKAGE}\nVersion: ${version}\nArchitecture: all\nMaintainer: egressd tests <tests@example.test>\nDescription: dummy package for egressd proxy tests\n`,
  );
  writeFileSync(join(pkg, "usr/share/doc", APT_PACKAGE, "README"), "fetched through the proxy\n");
  run(["dpkg-deb", "--root-owner-group", "--build", pkg, join(dir, `${APT_PACKAGE}_${version}_all.deb`)]);
  writeFileSync(join(dir, "Packages"), run(["apt-ftparchive", "packages", "."], { cwd: dir }));
  writeFileSync(join(dir, "Release"), run(["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=egressd-tests", "release", "."], { cwd: dir }));
  return {
    dir,
    packageName: APT_PACKAGE,
    version,
    // trusted=yes: the repository is unsigned; it lives for one test.
    sourcesLine: (baseUrl) => `deb [trusted=yes] ${baseUrl}/apt ./`,
  };
}

/** A built git repository. */
export interface GitRepo {
  /** `<root>/git/lab.git`. */
  readonly dir: string;
  /** The path to clone under the server's base URL: `/git/lab.git`. */
  readonly urlPath: string;
  /** The commit id of HEAD, to check a clone. */
  readonly head: string;
  /** The one file in the commit and its content. */
  readonly file: string;
  readonly content: string;
}

/** Builds a bare repository with one commit under `<root>/git/lab.git`, ready for dumb HTTP. */
export function buildGitRepo(root: string): GitRepo {
  const work = join(root, "git-work");
  const dir = join(root, "git", "lab.git");
  mkdirSync(work, { recursive: true });
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: work,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "egressd tests",
    GIT_AUTHOR_EMAIL: "tests@example.test",
    GIT_COMMITTER_NAME: "egressd tests",
    GIT_COMMITTER_EMAIL: "tests@example.test",
  };
  const file = "README";
  const content = "cloned through the proxy\n";
  run(["git", "init", "-q", "-b", "main", work], { env });
  writeFileSync(join(work, file), content);
  run(["git", "add", file], { cwd: work, env });
  run(["git", "commit", "-q", "-m", "Lab commit"], { cwd: work, env });
  run(["git", "clone", "-q", "--bare", work, dir], { env });
  run(["git", "update-server-info"], { cwd: dir, env });
  const head = run(["git", "rev-parse", "HEAD"], { cwd: dir, env }).trim();
  return { dir, urlPath: "/git/lab.git", head, file, content };
}
