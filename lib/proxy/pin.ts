/**
 * Which exit a connection must leave by, once its user is known: the listener's pin
 * (`pinned`, set at accept), the authenticated user's pin (`Credentials.source`), both, or
 * neither. A pin is the set of source addresses the outbound socket binds (dial.ts), which policy
 * routing turns into that exit's table and no other.
 *
 *   listener pin   user pin      outcome
 *   none           none          the kernel picks (the active exit)
 *   X              none          X
 *   none           Y             Y
 *   X              X             X
 *   X              Y (Y != X)    refused: every request is denied with a reason naming both
 *
 * The last row is the tight choice: either pin alone promises "this exit and no other", and
 * honouring one would break the other's promise, so the connection leaves by neither.
 *
 * Pure: it sets fields of the connection record and does no I/O; the core refuses a connection
 * with `pinRefusal` set (core.ts) before resolving anything.
 */
import type { AuthUser } from "./auth.ts";
import type { SourceAddresses } from "./dial.ts";
import { Failure, type FailureKind } from "./errors.ts";
import type { ClientConn } from "./protocol.ts";

/** True when two pins are the same exit: by name when both are named, else by their addresses. */
export function sameExit(a: SourceAddresses, b: SourceAddresses): boolean {
  if (a.exit !== undefined && b.exit !== undefined) return a.exit === b.exit;
  return a[4] === b[4] && a[6] === b[6];
}

/** A pin as words for a log line or a refusal: `exit ovh` or `source 10.8.0.2`. */
function describePin(s: SourceAddresses): string {
  return s.exit !== undefined ? `exit ${s.exit}` : `source ${[s[4], s[6]].filter((a) => a !== undefined).join(",")}`;
}

/**
 * The pin a connection of `user`, accepted by a listener pinned to `listener` (null: not pinned),
 * must follow: its source addresses, or why it may not connect at all.
 */
export function combinePins(listener: SourceAddresses | null, user: AuthUser): { source: SourceAddresses | null } | { refusal: string } {
  if (user.source === null) return { source: listener };
  if (listener === null || sameExit(listener, user.source)) return { source: user.source };
  return { refusal: `user ${user.username} is pinned to ${describePin(user.source)} but this listener to ${describePin(listener)}; a connection leaves by neither` };
}

/**
 * Records that `conn` authenticated as `user`: its user for the log line, and the source its
 * outbound connections bind (or the refusal the core answers every request with). Called once per
 * authentication; HTTP authenticates each request, so the listener's own pin is kept apart.
 */
export function authenticated(conn: ClientConn, user: AuthUser): void {
  conn.user = user.username;
  const pin = combinePins(conn.listenerSource, user);
  if ("refusal" in pin) {
    conn.source = conn.listenerSource;
    conn.pinRefusal = pin.refusal;
  } else {
    conn.source = pin.source;
    conn.pinRefusal = null;
  }
}

/**
 * Why `conn` may not open an outbound connection now, or null: its pins disagree (denied), or the
 * exit it is pinned to is known to be down (unreachable at once, rather than a connect timeout in
 * a dead tunnel). Checked before every request resolves or dials.
 */
export function pinProblem(conn: ClientConn, health: { readonly exitDown: ((exit: string) => boolean) | null }): { kind: FailureKind; reason: string } | null {
  if (conn.pinRefusal !== null) return { kind: Failure.denied, reason: conn.pinRefusal };
  const exit = conn.source?.exit;
  if (exit === undefined || health.exitDown === null || !health.exitDown(exit)) return null;
  const who = conn.user !== undefined && conn.source !== conn.listenerSource ? `user ${conn.user} is` : "this listener is";
  return { kind: Failure.networkUnreachable, reason: `exit ${exit} is down, and ${who} pinned to it` };
}
