/**
 * Errors of the host manager. Each names the cause in words an operator can act on, and carries the
 * facts as typed fields (and the underlying error as `cause`) for the daemon and tests.
 */
import { CommandError } from "../exec/errors.ts";
import { formatArgv } from "../exec/argv.ts";
import type { Repair } from "./change.ts";

/** The {@link HostSpec} is not something the host can accept. */
export class SpecError extends Error {
  override name = "SpecError";
  /** One line per problem, `path: message`. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid host spec:\n  ${problems.join("\n  ")}`);
    this.problems = problems;
  }
}

/** Refusing to mark uid 0: every root process on the host would be routed into the tunnel. */
export class UnsafeUidError extends Error {
  override name = "UnsafeUidError";
  readonly uid: number;
  constructor(uid: number) {
    super(
      `refusing to mark uid ${uid}: marking root would send every root process on the host into the tunnel; ` +
        `run egressd as a dedicated user with AmbientCapabilities=CAP_NET_ADMIN`,
    );
    this.uid = uid;
  }
}

/** A command failed because the process lacks CAP_NET_ADMIN. */
export class MissingCapabilityError extends Error {
  override name = "MissingCapabilityError";
  /** Always `CAP_NET_ADMIN` today. */
  readonly capability: string;
  /** The command that was refused. */
  readonly argv: readonly string[];
  constructor(argv: readonly string[], options: { cause?: unknown } = {}) {
    super(
      `\`${formatArgv(argv)}\` was refused (Operation not permitted): egressd needs CAP_NET_ADMIN; ` +
        `under systemd set AmbientCapabilities=CAP_NET_ADMIN (and CapabilityBoundingSet) for its user`,
      options,
    );
    this.capability = "CAP_NET_ADMIN";
    this.argv = argv;
  }
}

/** The interface name is already used by a device egressd did not create. */
export class InterfaceConflictError extends Error {
  override name = "InterfaceConflictError";
  readonly ifname: string;
  /** `linkinfo.info_kind` of the existing device (e.g. `veth`), or null for a plain device. */
  readonly kind: string | null;
  /** Its ifalias (egressd marks its own with `egressd`), or null. */
  readonly alias: string | null;
  constructor(ifname: string, kind: string | null, alias: string | null) {
    super(
      `interface "${ifname}" already exists and is not egressd's (kind ${kind ?? "unknown"}, ` +
        `alias ${alias === null ? "unset" : JSON.stringify(alias)}); choose another interface.name or remove that device`,
    );
    this.ifname = ifname;
    this.kind = kind;
    this.alias = alias;
  }
}

/** The routing table already holds routes egressd did not add. */
export class RouteTableConflictError extends Error {
  override name = "RouteTableConflictError";
  readonly table: number;
  /** The foreign routes, as `ip route` would print them. */
  readonly routes: readonly string[];
  constructor(table: number, routes: readonly string[]) {
    super(
      `routing table ${table} is already used by routes egressd did not add (${routes.join("; ")}); ` +
        `choose another routing.table or remove them`,
    );
    this.table = table;
    this.routes = routes;
  }
}

/** Policy rules that egressd did not add sit at egressd's rule priorities. */
export class RulePriorityConflictError extends Error {
  override name = "RulePriorityConflictError";
  readonly priorities: readonly number[];
  /** The foreign rules, summarised. */
  readonly rules: readonly string[];
  constructor(priorities: readonly number[], rules: readonly string[]) {
    super(
      `ip rule priorities ${priorities[0]}..${priorities[priorities.length - 1]} are already used by rules egressd did not add (${rules.join("; ")}); ` +
        `choose another routing.rulePriority or remove them`,
    );
    this.priorities = priorities;
    this.rules = rules;
  }
}

/** The requested WireGuard implementation is not available on this host. */
export class WireGuardUnavailableError extends Error {
  override name = "WireGuardUnavailableError";
  readonly implementation: "kernel" | "userspace";
  constructor(implementation: "kernel" | "userspace", reason: string, options: { cause?: unknown } = {}) {
    super(`WireGuard ${implementation} implementation is unavailable: ${reason}`, options);
    this.implementation = implementation;
  }
}

/** wireguard-go exited or never became ready. */
export class WireGuardStartError extends Error {
  override name = "WireGuardStartError";
  readonly ifname: string;
  /** The last lines wireguard-go printed. */
  readonly output: string;
  constructor(ifname: string, what: string, output: string, options: { cause?: unknown } = {}) {
    const hint = /permission denied/i.test(output)
      ? `; wireguard-go must be able to create /var/run/wireguard/${ifname}.sock: make /run/wireguard writable by egressd's user (e.g. systemd-tmpfiles "d /run/wireguard 0750 egressd egressd")`
      : "";
    super(`wireguard-go for ${ifname} ${what}${output ? `: ${lastLine(output)}` : ""}${hint}`, options);
    this.ifname = ifname;
    this.output = output;
  }
}

/** A key file could not be read or does not hold a WireGuard key. */
export class KeyFileError extends Error {
  override name = "KeyFileError";
  /** Which key: `interface.privateKeyFile` or `exit.presharedKeyFile`. */
  readonly field: string;
  readonly path: string;
  constructor(field: string, path: string, what: string, options: { cause?: unknown } = {}) {
    super(`${field} ${path}: ${what}`, options);
    this.field = field;
    this.path = path;
  }
}

/** One failure while undoing or tearing down. */
export interface StepFailure {
  /** The step that failed, e.g. `removePolicyRules`. */
  readonly step: string;
  readonly error: Error;
}

/** `up()` failed at a step; the steps before it were rolled back. */
export class HostSetupError extends Error {
  override name = "HostSetupError";
  /** The step that failed, e.g. `addInterface`. */
  readonly step: string;
  /** Undo steps that failed in turn (empty when the rollback was clean). */
  readonly rollbackFailures: readonly StepFailure[];
  constructor(step: string, cause: Error, rollbackFailures: readonly StepFailure[]) {
    const rb = rollbackFailures.length === 0 ? "rolled back" : `rollback incomplete: ${rollbackFailures.map((f) => `${f.step}: ${f.error.message}`).join("; ")}`;
    super(`host setup failed at ${step}: ${cause.message} (${rb})`, { cause });
    this.step = step;
    this.rollbackFailures = rollbackFailures;
  }
}

/** `down()` could not remove everything; it still tried every step. */
export class TeardownError extends Error {
  override name = "TeardownError";
  readonly failures: readonly StepFailure[];
  constructor(failures: readonly StepFailure[]) {
    super(`teardown incomplete: ${failures.map((f) => `${f.step}: ${f.error.message}`).join("; ")}`, { cause: failures[0]?.error });
    this.failures = failures;
  }
}

/** A reconcile pass failed to apply a change; the changes it had applied were undone. */
export class ReconcileError extends Error {
  override name = "ReconcileError";
  /** The change that failed. */
  readonly failed: { readonly component: string; readonly action: string; readonly reason: string };
  /** Changes applied earlier in the pass and then rolled back. */
  readonly rolledBack: readonly Repair[];
  /** Undo steps that failed in turn. */
  readonly rollbackFailures: readonly StepFailure[];
  constructor(
    failed: { component: string; action: string; reason: string },
    cause: Error,
    rolledBack: readonly Repair[],
    rollbackFailures: readonly StepFailure[],
  ) {
    const rb = rollbackFailures.length === 0 ? `${rolledBack.length} earlier change(s) rolled back` : `rollback incomplete: ${rollbackFailures.map((f) => `${f.step}: ${f.error.message}`).join("; ")}`;
    super(`reconcile failed at ${failed.component}/${failed.action} (${failed.reason}): ${cause.message} (${rb})`, { cause });
    this.failed = failed;
    this.rolledBack = rolledBack;
    this.rollbackFailures = rollbackFailures;
  }
}

/** A change of the exits that the running host cannot take without a gap in the kill switch (exit-change.ts). */
export class ExitChangeRefusedError extends Error {
  override name = "ExitChangeRefusedError";
  /** What is refused and why, naming the exit and the field. */
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.reason = reason;
  }
}

/** Adding or removing exits on a running host failed at a step; the steps before it were rolled back. */
export class ExitChangeError extends Error {
  override name = "ExitChangeError";
  /** The step that failed, e.g. `addInterface:ovh`. */
  readonly step: string;
  /** Undo steps that failed in turn (empty when the rollback was clean). */
  readonly rollbackFailures: readonly StepFailure[];
  constructor(step: string, cause: Error, rollbackFailures: readonly StepFailure[]) {
    const rb = rollbackFailures.length === 0 ? "rolled back; the running exits are as they were" : `rollback incomplete: ${rollbackFailures.map((f) => `${f.step}: ${f.error.message}`).join("; ")}`;
    super(`changing the exits failed at ${step}: ${cause.message} (${rb})`, { cause });
    this.step = step;
    this.rollbackFailures = rollbackFailures;
  }
}

/** `reconcile()` was called before `up()` (or after `down()`). */
export class HostNotUpError extends Error {
  override name = "HostNotUpError";
  constructor() {
    super("the host is not up: call up() before reconcile()");
  }
}

/** True when a command failed with EPERM, i.e. for lack of CAP_NET_ADMIN. */
export function isPermissionDenied(err: unknown): err is CommandError {
  return err instanceof CommandError && /Operation not permitted|you must be root|Permission denied/i.test(err.stderr);
}

/** Rethrows EPERM command failures as {@link MissingCapabilityError}; other errors pass through unchanged. */
export function explainCommandError(err: unknown): unknown {
  if (isPermissionDenied(err)) return new MissingCapabilityError(err.argv, { cause: err });
  return err;
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n").filter((l) => l.trim() !== "");
  return lines[lines.length - 1] ?? "";
}
