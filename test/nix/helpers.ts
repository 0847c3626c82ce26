/**
 * Helpers for test/nix: find the tools, evaluate the harnesses, and build the stub package tree.
 *
 * The module tests need nixpkgs' `lib` (the nix-community/nixpkgs.lib repository, or any nixpkgs):
 * set EGRESSD_NIXPKGS_LIB to its directory (the repository root or its lib/), or have a `nixpkgs`
 * channel that `nix-instantiate --find-file nixpkgs` finds. Without it those tests are skipped, and
 * their names say why.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

/** The repository root. */
export const ROOT = resolve(import.meta.dir, "../..");

/**
 * Evaluation needs no build users, but Debian's nix-bin ships `build-users-group = nixbld` without the
 * group, and then every command warns on stderr. Clearing it keeps the tests independent of whether a
 * machine happens to have that group.
 */
function nixEnv(env: Record<string, string | undefined>): Record<string, string | undefined> {
  return { ...env, NIX_CONFIG: `${env.NIX_CONFIG ? env.NIX_CONFIG + "\n" : ""}build-users-group =` };
}

/** Runs a command; never throws for a non-zero exit. Nix commands get {@link nixEnv}. */
export function run(
  argv: string[],
  opts: { env?: Record<string, string | undefined>; cwd?: string; input?: string; timeout?: number } = {},
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    cwd: opts.cwd ?? ROOT,
    env: argv[0]!.startsWith("nix") ? nixEnv(opts.env ?? process.env) : (opts.env ?? process.env),
    input: opts.input,
    encoding: "utf8",
    timeout: opts.timeout ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== "ENOENT") throw r.error;
  return { code: r.status ?? (r.error ? 127 : 1), stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => d && existsSync(join(d, tool)));
}

/** Whether nix-instantiate (Debian: nix-bin) is installed. */
export const HAVE_NIX = onPath("nix-instantiate");

/** nixpkgs' lib directory, or null; see the module comment. */
export const NIXPKGS_LIB: string | null = findLib();

function findLib(): string | null {
  const env = process.env.EGRESSD_NIXPKGS_LIB;
  if (env) {
    for (const dir of [join(env, "lib"), env]) {
      if (existsSync(join(dir, "default.nix")) && existsSync(join(dir, "modules.nix"))) return dir;
    }
    throw new Error(`EGRESSD_NIXPKGS_LIB=${env} holds neither lib/default.nix nor default.nix with modules.nix`);
  }
  if (!HAVE_NIX) return null;
  const r = run(["nix-instantiate", "--find-file", "nixpkgs"]);
  const dir = r.code === 0 ? join(r.stdout.trim(), "lib") : "";
  return dir && existsSync(join(dir, "modules.nix")) ? dir : null;
}

/** Why the evaluation tests cannot run here, or null when they can. */
export const SKIP_EVAL: string | null = !HAVE_NIX
  ? "needs nix-instantiate (Debian package nix-bin)"
  : !NIXPKGS_LIB
    ? "needs nixpkgs' lib: set EGRESSD_NIXPKGS_LIB to a nix-community/nixpkgs.lib checkout"
    : null;

/** A test name that says why it is skipped, when it is. */
export function needsLib(name: string): string {
  return SKIP_EVAL ? `${name} [skipped: ${SKIP_EVAL}]` : name;
}

/** Evaluates a harness with `nix-instantiate --eval --strict --json --readonly-mode`. */
export function nixEval(
  file: string,
  args: Record<string, string>,
  rawArgs: Record<string, string> = {},
): { ok: true; value: any } | { ok: false; error: string } {
  const argv = ["nix-instantiate", "--eval", "--strict", "--json", "--readonly-mode", join(ROOT, file)];
  argv.push("--arg", "nixpkgsLib", NIXPKGS_LIB!);
  for (const [k, v] of Object.entries(args)) argv.push("--argstr", k, v);
  for (const [k, v] of Object.entries(rawArgs)) argv.push("--arg", k, v);
  const r = run(argv);
  if (r.code !== 0) return { ok: false, error: r.stderr };
  return { ok: true, value: JSON.parse(r.stdout) };
}

/** The bun that runs these tests (node_modules/.bin/bun), for building. */
export const BUN = process.execPath;

/**
 * A directory laid out like the stub `pkgs` of test/nix/eval.nix: pkgs/<name>/bin/... . egressd's
 * binary is compiled from the working tree (the package's own build command), so the unit's
 * ExecStart exists and the module's build-time check runs the real program.
 */
export function makeStubRoot(): { root: string; egressd: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), "egressd-nix-"));
  const bin = join(root, "pkgs/egressd/bin/egressd");
  mkdirSync(dirname(bin), { recursive: true });
  const built = run(
    [BUN, "build", "--compile", "--minify-syntax", "--sourcemap=none", "main.ts", "--outfile", join(root, "egressd.bin")],
    { env: { ...process.env, NO_COLOR: "1" } },
  );
  if (built.code !== 0) throw new Error(`bun build --compile failed:\n${built.stderr}`);
  symlinkSync(join(root, "egressd.bin"), bin);
  mkdirSync(join(root, "store"), { recursive: true });
  return { root, egressd: bin, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** systemd-analyze 252 or later (the oldest the unit supports), preferring a newer copy in .cache/, or why there is none. */
export function systemdAnalyze(): { argv: string[]; env: Record<string, string | undefined> } | { skip: string } {
  const cached = join(ROOT, ".cache/systemd/usr/bin/systemd-analyze");
  if (existsSync(cached)) {
    const libdir = join(ROOT, ".cache/systemd/usr/lib/x86_64-linux-gnu/systemd");
    return { argv: [cached], env: { ...process.env, LD_LIBRARY_PATH: libdir } };
  }
  if (!onPath("systemd-analyze")) return { skip: "needs systemd-analyze" };
  const v = /systemd (\d+)/.exec(run(["systemd-analyze", "--version"]).stdout);
  if (!v || Number(v[1]) < 252) {
    return { skip: "needs systemd-analyze >= 252" };
  }
  return { argv: ["systemd-analyze"], env: process.env };
}

/** Every .nix file in the repository that is ours (not node_modules, not .cache). */
export function nixFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      if (name === "node_modules" || name.startsWith(".")) continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".nix")) out.push(p.slice(ROOT.length + 1));
    }
  };
  walk(ROOT);
  return out.sort();
}

/** Parses a systemd unit into section -> key -> values (repeated keys accumulate). */
export function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      current = sections.get(s[1]!) ?? new Map();
      sections.set(s[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq < 0) throw new Error(`not a unit line: ${line}`);
    const key = line.slice(0, eq).trim();
    const values = current.get(key) ?? [];
    values.push(line.slice(eq + 1).trim());
    current.set(key, values);
  }
  return sections;
}

/** A user's NixOS configuration for services.egressd, as the JSON the harness reads. */
export function nixosConfig(egressd: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...extra, services: { egressd: { enable: true, ...egressd } } });
}

/** A throwaway public key in WireGuard's format (the exit's, in these tests). */
export const EXIT_PUBLIC_KEY = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

/** The design gateway (docs/design.md): pods -> 10.1.0.1:1080 -> wg tunnel -> VPS; metrics on the LAN at 10.0.0.1:9586. */
export const GATEWAY = {
  privateKeyFile: "/run/secrets/egressd/private-key",
  openFirewall: true,
  firewallInterfaces: { proxy: ["cni0"], metrics: ["lan0"] },
  settings: {
    interface: { addresses: ["10.100.0.2/32"] },
    exit: { name: "hetzner", publicKey: EXIT_PUBLIC_KEY, endpoint: "vps.example.net:51820" },
    proxy: { listen: ["10.1.0.1:1080"], allowClients: ["10.1.0.0/24"] },
    metrics: { listen: "10.0.0.1:9586" },
  },
};
