/**
 * The .deb: `npm run deb` builds it, lintian (when installed) finds nothing, and it installs,
 * upgrades and purges on this machine with dpkg.
 *
 * This installs a package, creates a system user and /etc/egressd on the host, so it runs only as
 * root, only when none of them exists beforehand (a machine with egressd on it is left alone), and
 * afterAll purges the package and removes what is left even when a test failed: the machine ends
 * as it began.
 *
 * Purging removes /etc/egressd only when it is empty, and the egressd user and group only with it:
 * a leftover key keeps its owner, so that no later account inherits the ids and reads it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { have, ROOT } from "../cli/spawn.ts";

function sh(argv: string[], opts: { env?: Record<string, string> } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, encoding: "utf8", timeout: 300_000, env: { ...process.env, ...opts.env } });
  return { code: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

const installed = () => sh(["dpkg-query", "-W", "-f=${Status}", "egressd"]).stdout.includes("install ok installed");
const known = () => sh(["dpkg-query", "-W", "egressd"]).code === 0; // installed, or config-files left
const userExists = () => sh(["getent", "passwd", "egressd"]).code === 0;
const groupExists = () => sh(["getent", "group", "egressd"]).code === 0;

function skipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root: it installs the package on this machine";
  for (const t of ["dpkg", "dpkg-deb", "dpkg-query", "getent", "userdel"]) if (!have(t)) return `needs ${t}`;
  if (known()) return "egressd is already installed here; this test only runs on a machine without it";
  if (userExists() || groupExists()) return "an egressd user or group exists already; this test would remove it";
  if (existsSync("/etc/egressd")) return "/etc/egressd exists already; this test would remove it";
  return null;
}

const why = skipReason();
const name = (n: string) => (why ? `${n} [skipped: ${why}]` : n);
const arch = sh(["dpkg", "--print-architecture"]).stdout.trim();
const deb = join(ROOT, `dist/egressd_${pkg.version}_${arch}.deb`);

/** dpkg, retried while another dpkg or apt holds the lock (a shared CI machine). */
function dpkg(args: string[]): { code: number; stdout: string; stderr: string } {
  for (let i = 0; ; i++) {
    const r = sh(["dpkg", ...args]);
    if (r.code === 0 || !/lock/.test(r.stderr) || i === 30) return r;
    Bun.sleepSync(2000);
  }
}

/** Every path the package ships, from its own file list. */
function shipped(): string[] {
  return sh(["dpkg-deb", "-c", deb]).stdout.split("\n").filter(Boolean).map((l) => l.split(/\s+/).slice(5).join(" ").replace(/^\./, ""));
}

beforeAll(() => {
  if (why) return;
  const built = sh(["bash", "scripts/build-deb.sh"]);
  if (built.code !== 0) throw new Error(`npm run deb failed:\n${built.stderr}`);
}, 300_000);

afterAll(() => {
  if (why) return;
  if (known()) dpkg(["--purge", "egressd"]);
  rmSync("/etc/egressd", { recursive: true, force: true });
  if (userExists()) sh(["userdel", "egressd"]);
  if (groupExists()) sh(["groupdel", "egressd"]);
});

describe("the .deb", () => {
  test.skipIf(why !== null)(name("npm run deb builds dist/egressd_<version>_<arch>.deb with what it should hold"), () => {
    expect(existsSync(deb)).toBe(true);
    const files = shipped();
    for (const f of [
      "/usr/bin/egressd",
      "/lib/systemd/system/egressd.service",
      "/usr/lib/sysusers.d/egressd.conf",
      "/usr/lib/tmpfiles.d/egressd.conf",
      "/usr/share/doc/egressd/copyright",
      "/usr/share/doc/egressd/changelog.gz",
      "/usr/share/doc/egressd/changelog.Debian.gz",
      "/usr/share/doc/egressd/examples/minimal.json",
      "/usr/share/doc/egressd/examples/auth.json",
      "/usr/share/doc/egressd/examples/dns-tunnel.json",
      "/usr/share/man/man1/egressd.1.gz",
      "/usr/share/man/man5/egressd.json.5.gz",
      "/usr/share/bash-completion/completions/egressd",
      "/usr/share/zsh/vendor-completions/_egressd",
      "/usr/share/fish/vendor_completions.d/egressd.fish",
    ]) {
      expect(files).toContain(f);
    }
    // Nothing in /etc: no config or key can ever be overwritten, and none is a conffile.
    expect(files.filter((f) => f.startsWith("/etc"))).toEqual([]);
    const field = (f: string) => sh(["dpkg-deb", "-f", deb, f]).stdout.trim();
    expect(field("Version")).toBe(pkg.version);
    expect(field("Depends")).toContain("wireguard-tools");
    expect(field("Depends")).toContain("nftables");
    expect(field("Depends")).toContain("iproute2");
    expect(field("Suggests")).toContain("wireguard-go");
    // Every file root-owned (--root-owner-group), whoever built it.
    const owners = new Set(sh(["dpkg-deb", "-c", deb]).stdout.split("\n").filter(Boolean).map((l) => l.split(/\s+/)[1]));
    expect([...owners]).toEqual(["root/root"]);
  });

  test.skipIf(why !== null || !have("lintian"))(name(`lintian finds no error or warning${have("lintian") ? "" : " [skipped: needs lintian]"}`), () => {
    const r = sh(["lintian", "--tag-display-limit", "0", deb]);
    const tags = r.stdout.split("\n").filter((l) => /^[EW]: /.test(l));
    expect(tags).toEqual([]);
  }, 300_000);

  test.skipIf(why !== null)(name("dpkg -i creates the user and /etc/egressd, and installs a working binary"), () => {
    const r = dpkg(["-i", deb]);
    if (r.code !== 0) throw new Error(`dpkg -i failed (a missing dependency? run scripts/setup.sh):\n${r.stderr}`);
    expect(installed()).toBe(true);
    // It says what to do next, since it starts nothing without a config.
    expect(r.stdout).toContain("/etc/egressd/config.json");
    const [, , uid, gid, , home, shell] = sh(["getent", "passwd", "egressd"]).stdout.trim().split(":");
    expect(Number(uid)).toBeGreaterThan(0);
    expect(Number(uid)).toBeLessThan(1000);
    expect([home, shell]).toEqual(["/", "/usr/sbin/nologin"]);
    const st = statSync("/etc/egressd");
    expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o750, 0, Number(gid)]);
    expect(sh(["ls", "-A", "/etc/egressd"]).stdout).toBe(""); // no config, no key
    for (const f of shipped().filter((f) => !f.endsWith("/"))) expect(existsSync(f)).toBe(true);

    const version = sh(["/usr/bin/egressd", "version"]);
    expect(version.code).toBe(0);
    expect(version.stdout).toStartWith(`egressd ${pkg.version} (commit `);
    expect(version.stdout).not.toContain("commit unknown"); // built from this checkout
    const unit = readFileSync("/lib/systemd/system/egressd.service", "utf8");
    expect(unit).toContain("\nExecStart=/usr/bin/egressd run --config /etc/egressd/config.json\n");
    expect(unit).toContain("\nExecReload=/usr/bin/egressd reload\n");
    expect(unit).not.toContain("/usr/local/bin/egressd");
  });

  test.skipIf(why !== null || !have("man"))(name("man finds and renders both installed pages"), () => {
    const env = { MANWIDTH: "100", MANPAGER: "cat", PAGER: "cat" };
    const one = sh(["man", "--warnings", "-l", "/usr/share/man/man1/egressd.1.gz"], { env });
    expect(one.stderr).toBe("");
    expect(one.stdout).toContain("EGRESSD(1)");
    const five = sh(["man", "5", "egressd.json"], { env });
    expect(five.code).toBe(0);
    expect(five.stdout).toContain("proxy.listen");
  });

  test.skipIf(why !== null || !have("systemd-analyze"))(name("the installed unit passes systemd-analyze verify, man pages included"), () => {
    const r = sh(["systemd-analyze", "verify", "/lib/systemd/system/egressd.service"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  test.skipIf(why !== null || !have("bash"))(name("the installed bash completion loads"), () => {
    expect(sh(["bash", "-c", "source /usr/share/bash-completion/completions/egressd; complete -p egressd"]).stdout).toBe("complete -F _egressd egressd\n");
  });

  test.skipIf(why !== null)(name("an upgrade (dpkg -i again) keeps the config and the key as they are"), () => {
    writeFileSync("/etc/egressd/private-key", "not a real key\n", { mode: 0o600 });
    writeFileSync("/etc/egressd/config.json", "{}\n", { mode: 0o640 });
    const before = ["private-key", "config.json"].map((f) => [readFileSync(join("/etc/egressd", f), "utf8"), statSync(join("/etc/egressd", f)).mode]);
    const uid = sh(["id", "-u", "egressd"]).stdout;
    const r = dpkg(["-i", deb]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(["private-key", "config.json"].map((f) => [readFileSync(join("/etc/egressd", f), "utf8"), statSync(join("/etc/egressd", f)).mode])).toEqual(before);
    expect(sh(["id", "-u", "egressd"]).stdout).toBe(uid); // the same uid: the nft rules match it
  });

  test.skipIf(why !== null)(name("purge with a key left in /etc/egressd keeps it and its owner, and says so"), () => {
    const r = dpkg(["--purge", "egressd"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("keeping /etc/egressd");
    expect(known()).toBe(false);
    expect(readFileSync("/etc/egressd/private-key", "utf8")).toBe("not a real key\n");
    expect(userExists()).toBe(true);
    for (const f of shipped().filter((f) => !f.endsWith("/"))) expect(existsSync(f)).toBe(false);
  });

  test.skipIf(why !== null)(name("install, then purge with /etc/egressd empty: everything is gone, user and group too"), () => {
    rmSync("/etc/egressd", { recursive: true });
    sh(["userdel", "egressd"]);
    if (groupExists()) sh(["groupdel", "egressd"]);
    expect(dpkg(["-i", deb]).code).toBe(0);
    expect(userExists()).toBe(true);
    const r = dpkg(["--purge", "egressd"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(known()).toBe(false);
    expect(existsSync("/etc/egressd")).toBe(false);
    expect(userExists()).toBe(false);
    expect(groupExists()).toBe(false);
    for (const f of shipped()) {
      // Directories the package shares with others (/usr/bin, /usr/share/man/man1, ...) stay.
      if (f.endsWith("/")) continue;
      expect(existsSync(f)).toBe(false);
    }
    expect(existsSync("/usr/share/doc/egressd")).toBe(false);
  });
});
