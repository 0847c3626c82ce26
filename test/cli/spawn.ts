/**
 * Test helpers that run processes: the egressd CLI from source (or a compiled binary) and the real
 * `wg` tool from wireguard-tools, which is the reference our key commands must match.
 */
import { join } from "node:path";

/** The repository root. */
export const ROOT = join(import.meta.dir, "..", "..");

/** The bun binary from node_modules, as the README and CI use it. */
export const BUN = join(ROOT, "node_modules", ".bin", "bun");

/** What a finished process left behind. */
export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options for {@link runCli} and {@link runBinary}. */
export interface RunOptions {
  /** Bytes for stdin. Default: none (stdin is /dev/null). */
  stdin?: string;
  /** Environment. Default: this process's environment. */
  env?: Record<string, string | undefined>;
  /** Working directory. Default: the repository root. */
  cwd?: string;
}

/** Runs an argv and collects its exit code and output. */
export async function run(argv: string[], opts: RunOptions = {}): Promise<Ran> {
  const proc = Bun.spawn(argv, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? (process.env as Record<string, string | undefined>),
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

/** Runs `egressd <args>` from source: `bun main.ts <args>`. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<Ran> {
  return run([BUN, join(ROOT, "main.ts"), ...args], opts);
}

/** `wg pubkey` on `privateKey`; throws when wg fails, so a comparison never passes on two errors. */
export function wgPubkey(privateKey: string): string {
  const r = Bun.spawnSync(["wg", "pubkey"], { stdin: new TextEncoder().encode(privateKey + "\n") });
  if (r.exitCode !== 0) throw new Error(`wg pubkey exited ${r.exitCode}: ${r.stderr.toString()}`);
  return r.stdout.toString().trim();
}

/** True when `wg pubkey` accepts `text` as a private key. */
export function wgAcceptsKey(text: string): boolean {
  return Bun.spawnSync(["wg", "pubkey"], { stdin: new TextEncoder().encode(text) }).exitCode === 0;
}

/** `wg genkey` or `wg genpsk`. */
export function wgGen(what: "genkey" | "genpsk"): string {
  const r = Bun.spawnSync(["wg", what]);
  if (r.exitCode !== 0) throw new Error(`wg ${what} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return r.stdout.toString().trim();
}

/** True when `name` is an executable on PATH. */
export function have(name: string): boolean {
  return Bun.which(name) !== null;
}

/** What a bounded run left behind: {@link Ran}, and whether the deadline killed it. */
export interface BoundedRan extends Ran {
  /** True when the process was still running at the deadline and was killed. */
  readonly killed: boolean;
}

/**
 * Runs `egressd <args>` from source with a deadline and an address-space limit, so that a hang or
 * an unbounded read fails the test instead of stalling the suite or exhausting the machine.
 * Defaults: killed after 10 s, at most 2 GiB of address space.
 */
export async function runCliBounded(args: string[], opts: RunOptions & { timeoutMs?: number; addressSpaceBytes?: number } = {}): Promise<BoundedRan> {
  const limit = opts.addressSpaceBytes ?? 2 * 1024 ** 3;
  const proc = Bun.spawn(["prlimit", `--as=${limit}`, "--", BUN, join(ROOT, "main.ts"), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? (process.env as Record<string, string | undefined>),
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
    timeout: opts.timeoutMs ?? 10_000,
    killSignal: "SIGKILL",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr, killed: proc.signalCode === "SIGKILL" };
}
