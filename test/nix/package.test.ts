/**
 * flake.nix and nix/package.nix, evaluated with nixpkgs' lib and a stub nixpkgs (test/nix/flake-eval.nix),
 * and the package's build phases run outside Nix: the fixed-output `bun install` (whose NAR hash must
 * equal outputHash), then `bun build --compile`, install and the version check.
 *
 * What this does not cover: the Nix sandbox, and nixpkgs' own bun (these phases run with the bun from
 * node_modules). `nix build .#default` on a machine with nixpkgs covers both.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { BUN, needsLib, nixEval, ROOT, run, SKIP_EVAL } from "./helpers.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

const REV = "0123456789abcdef0123456789abcdef01234567";

function evalFlake(stubRoot: string, rev = ""): any {
  const r = nixEval("test/nix/flake-eval.nix", { stubRoot, rev });
  if (!r.ok) throw new Error(`evaluation failed:\n${r.error}`);
  return r.value;
}

/** Runs derivation phases with bash, as stdenv would (runHook is a no-op: no hooks are set). */
function runPhases(phases: string[], opts: { cwd: string; out: string; path: string; tmp: string }) {
  mkdirSync(opts.tmp, { recursive: true });
  const script = ["runHook() { :; }", ...phases].join("\n");
  return run(["bash", "-euo", "pipefail", "-c", script], {
    cwd: opts.cwd,
    env: { PATH: opts.path, TMPDIR: opts.tmp, out: opts.out, NO_COLOR: "1" },
    timeout: 300_000,
  });
}

describe.skipIf(SKIP_EVAL !== null)(needsLib("flake.nix"), () => {
  test("outputs: packages, overlays, nixosModules and checks for x86_64-linux and aarch64-linux", () => {
    const f = evalFlake("/nonexistent");
    expect(f.outputNames).toEqual(["checks", "nixosModules", "overlays", "packages"]);
    expect(f.nixpkgsUrl).toBe("github:NixOS/nixpkgs/nixos-unstable");
    for (const system of ["x86_64-linux", "aarch64-linux"]) {
      expect(f.packages[system]).toEqual(["default", "egressd"]);
      expect(f.checks[system]).toEqual(["gateway", "package"]);
    }
    expect(f.nixosModules).toEqual(["default", "egressd"]);
    expect(f.overlayAdds).toEqual(["egressd"]);
    expect(f.overlayPackageName).toBe(`egressd-${pkg.version}`);
  });

  test("nixosModules.default imports nix/module.nix and defaults the package to this flake's", () => {
    const f = evalFlake("/nonexistent");
    expect(f.nixosModule.imports).toEqual([join(ROOT, "nix/module.nix")]);
    expect(f.nixosModule.packageName).toBe(`egressd-${pkg.version}`);
    expect(f.nixosModule.packagePriority).toBe(1000); // mkDefault: services.egressd.package wins
  });

  test("checks.gateway is the VM test with a pod, the gateway, the exit and a web server", () => {
    const f = evalFlake("/nonexistent");
    expect(f.vmTest.name).toBe("egressd-gateway");
    expect(f.vmTest.nodes).toEqual(["gateway", "pod", "vps", "web"]);
  });

  test("the package: version from package.json, mainProgram, never stripped or patched", () => {
    const p = evalFlake("/nonexistent").package;
    expect(p.name).toBe(`egressd-${pkg.version}`);
    expect(p.version).toBe(pkg.version);
    expect(p.mainProgram).toBe("egressd");
    expect(p.dontStrip).toBe(true);
    expect(p.dontPatchELF).toBe(true);
    expect(p.dontFixup).toBe(true);
    expect(p.doInstallCheck).toBe(true);
    expect(p.platforms).toEqual(["x86_64-linux", "aarch64-linux"]);
    // The same build command as package.json's "build" script.
    expect(p.phases.buildPhase).toContain(pkg.scripts.build);
    expect(p.phases.installCheckPhase).toContain(`egressd ${pkg.version} `);
  });

  test("the package builds in the flake's revision: 12 digits when clean, dirtyShortRev when not", () => {
    expect(evalFlake("/nonexistent", REV).package.phases.buildPhase).toContain("EGRESSD_COMMIT=0123456789ab\n");
    expect(evalFlake("/nonexistent").package.phases.buildPhase).toContain("EGRESSD_COMMIT=0000000-dirty\n");
  });

  test("node_modules: a fixed output from the frozen lockfile, runtime dependencies only, no scripts", () => {
    const m = evalFlake("/nonexistent").nodeModules;
    expect(m.outputHashMode).toBe("recursive");
    expect(m.outputHashAlgo).toBe("sha256");
    expect(m.outputHash).toMatch(/^sha256-[A-Za-z0-9+/]{43}=$/);
    for (const flag of ["--frozen-lockfile", "--ignore-scripts", "--production"]) expect(m.phases.buildPhase).toContain(flag);
    expect(m.dontFixup).toBe(true);
  });

  describe("the build phases, run outside Nix", () => {
    // The fixed-output step fetches from the npm registry, as the Nix build does.
    test("bun install gives exactly outputHash, then bun build --compile gives a working egressd", () => {
      const root = tempDir("egressd-nix-build-");
      const f = evalFlake(root, REV);
      mkdirSync(join(root, "pkgs/bun/bin"), { recursive: true });
      symlinkSync(BUN, join(root, "pkgs/bun/bin/bun"));
      const path = `${root}/pkgs/bun/bin:/usr/bin:/bin`;

      // 1. node_modules, from package.json and bun.lock alone.
      const fodSrc = join(root, "src-node-modules");
      mkdirSync(fodSrc);
      for (const file of ["package.json", "bun.lock"]) cpSync(join(ROOT, file), join(fodSrc, file));
      const fodOut = f.package.nodeModulesPath as string;
      const fod = runPhases([f.nodeModules.phases.buildPhase, f.nodeModules.phases.installPhase], {
        cwd: fodSrc,
        out: fodOut,
        path,
        tmp: join(root, "tmp-fod"),
      });
      expect(fod.stderr).not.toContain("error:");
      expect(fod.code).toBe(0);
      expect(readdirSync(join(fodOut, "node_modules")).sort()).toEqual(["@noble", "zod"]);
      const hash = run(["nix", "--extra-experimental-features", "nix-command", "hash", "path", "--type", "sha256", fodOut]);
      expect(hash.stderr).toBe("");
      // On a mismatch after a bun.lock change, this is the new outputHash for nix/package.nix.
      expect(hash.stdout.trim()).toBe(f.nodeModules.outputHash);

      // 2. The binary, from the sources the package's filter keeps.
      const src = join(root, "src");
      mkdirSync(src);
      for (const file of ["main.ts", "lib", "package.json", "bun.lock", "tsconfig.json", "scripts/build.sh"]) {
        cpSync(join(ROOT, file), join(src, file), { recursive: true });
      }
      const out = join(root, "build/egressd");
      const p = f.package.phases;
      const build = runPhases([p.configurePhase, p.buildPhase, p.installPhase, p.installCheckPhase], {
        cwd: src,
        out,
        path,
        tmp: join(root, "tmp-build"),
      });
      expect(build.code).toBe(0);
      expect(build.stdout).toContain(`egressd ${pkg.version} `); // the install check's grep
      expect(existsSync(join(out, "bin/egressd"))).toBe(true);

      // 3. It runs alone, with no node_modules or sources beside it.
      const empty = tempDir("egressd-nix-empty-");
      const version = run([join(out, "bin/egressd"), "version", "--json"], { cwd: empty, env: { PATH: "/usr/bin:/bin" } });
      expect(version.code).toBe(0);
      expect(JSON.parse(version.stdout).version).toBe(pkg.version);
      // The flake's revision, not "unknown": the sources copied here have no .git.
      expect(JSON.parse(version.stdout).commit).toBe(REV.slice(0, 12));
      const key = run([join(out, "bin/egressd"), "genkey", "--output", join(empty, "k")], { cwd: empty });
      expect(key.code).toBe(0);
    }, 300_000);
  });
});
