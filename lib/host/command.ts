/**
 * The one way lib/host runs a host command, and the one list of failures it accepts.
 *
 * Some failures of `ip`, `nft` and `wg` are answers, not errors: deleting a rule that is already gone,
 * reading a route table that was never created. Each such outcome is declared once, here, by name and by
 * the stderr that identifies it (the runner sets `LC_ALL=C`, so the text is stable), the way tailscale's
 * router declares the exit codes its runner accepts. A caller names the outcomes it tolerates:
 *
 * ```ts
 * const r = await runHost(runner, ["ip", "link", "del", "dev", ifname], { tolerate: ["linkGone"] });
 * if (!r.ok) ...  // r.outcome === "linkGone"
 * ```
 * Every other failure is rethrown, EPERM as {@link MissingCapabilityError} (see {@link explainCommandError}).
 * It does not retry, and it knows nothing of what the commands mean beyond these outcomes.
 */
import { CommandError } from "../exec/errors.ts";
import type { RunOptions, Runner } from "../exec/runner.ts";
import { explainCommandError, isPermissionDenied } from "./errors.ts";

/** Failures that mean something other than "the command broke", by name. Matched against stderr. */
export const OUTCOMES = {
  /** `ip ... dev <if>`: no device by that name (`Cannot find device`, `Device "x" does not exist.`). */
  linkGone: /does not exist|Cannot find device/,
  /** `ip rule del` (ENOENT), `ip route del` (ESRCH), or their device vanished: already removed. */
  alreadyGone: /No such file or directory|No such process|Cannot find device/,
  /** `ip route show table N` before anything was ever added to table N. */
  tableMissing: /FIB table does not exist/,
  /** `nft ... table inet egressd` when our table does not exist. */
  nftTableMissing: /No such file or directory/,
  /** `ip link add ... type wireguard` without the kernel module: fall back to wireguard-go. */
  noKernelWireguard: /Unknown device type|not supported/i,
  /** `wg show <if> dump` with no interface, or wireguard-go's control socket gone. */
  wireguardGone: /No such device|Protocol not supported|No such file or directory|Connection refused/,
  /** `ip -6 ...` on a kernel with IPv6 disabled. */
  noIpv6: /Address family not supported/i,
} as const satisfies Record<string, RegExp>;

/** The name of a tolerated outcome. */
export type Outcome = keyof typeof OUTCOMES;

/** What {@link runHost} returns: the output, or which tolerated outcome the command met. */
export type HostRun =
  | { readonly ok: true; readonly stdout: string }
  | { readonly ok: false; readonly outcome: Outcome; readonly error: CommandError };

/** Options for {@link runHost}. */
export interface RunHostOptions extends RunOptions {
  /** Outcomes that are answers for this call, checked in order. Default: none. */
  tolerate?: readonly Outcome[];
}

/** Which of `tolerate` a failure is, or null. Pure. */
export function matchOutcome(err: unknown, tolerate: readonly Outcome[]): Outcome | null {
  if (!(err instanceof CommandError)) return null;
  return tolerate.find((o) => OUTCOMES[o].test(err.stderr)) ?? null;
}

/** Runs `argv`; a tolerated failure is returned, anything else thrown (EPERM as a capability error). */
export async function runHost(runner: Runner, argv: readonly string[], opts: RunHostOptions = {}): Promise<HostRun> {
  const { tolerate = [], ...runOpts } = opts;
  try {
    const { stdout } = await runner.run(argv, runOpts);
    return { ok: true, stdout };
  } catch (err) {
    if (isPermissionDenied(err)) throw explainCommandError(err);
    const outcome = matchOutcome(err, tolerate);
    if (outcome !== null) return { ok: false, outcome, error: err as CommandError };
    throw explainCommandError(err);
  }
}

/** {@link runHost} for a command whose output does not matter. */
export async function runHostCommand(runner: Runner, argv: readonly string[], opts: RunHostOptions = {}): Promise<void> {
  await runHost(runner, argv, opts);
}
