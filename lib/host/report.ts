/**
 * What the host manager reports: `up()`'s result, the cheap status snapshot, and the full machine-form
 * observation of the host, each with one entry per exit.
 */
import type { Repair } from "./change.ts";
import type { ActiveImplementation, LinkState } from "./interface.ts";
import type { FirewallObservation } from "./nftables.ts";
import type { Family, ObservedRoute, ObservedRule } from "./routing.ts";
import type { WgDump } from "./wgdump.ts";

/** What `up()` reports. */
export interface UpResult {
  /** Which WireGuard implementation is in use. */
  readonly implementation: ActiveImplementation;
  /** wireguard-go's pid, or null for the kernel implementation. */
  readonly pid: number | null;
  /** Address families managed. */
  readonly families: readonly Family[];
  /** Every change up() made, in order (on a stale host this includes the cleanup). */
  readonly changes: readonly Repair[];
}

/** What `changeExits()` did (manager.ts). */
export interface ExitChangeResult {
  /** Exits brought up, by name. */
  readonly added: readonly string[];
  /** Exits torn down, by name (a replaced exit is in both lists). */
  readonly removed: readonly string[];
  /** Every change made, in order. */
  changes: readonly Repair[];
}

/** A snapshot for `egressd status`, metrics and readiness. Cheap: no commands run. */
export interface HostStatus {
  readonly state: "down" | "up";
  readonly implementation: ActiveImplementation | null;
  readonly pid: number | null;
  readonly families: readonly Family[];
  readonly resolvedEndpoints: readonly string[];
  readonly resolveError: string | null;
  /** Times the exit's DNS name was re-resolved because the handshake was stale. */
  readonly endpointReresolutions: number;
  /** Reconcile passes completed successfully. */
  readonly reconcileRuns: number;
  /** End of the last successful reconcile pass (ms epoch), or null. */
  readonly lastReconcileAt: number | null;
  /** Why the last reconcile pass failed, or null if it succeeded. */
  readonly lastReconcileError: string | null;
  /** Repairs applied since construction, by component. */
  readonly repairsByComponent: Readonly<Record<string, number>>;
  /** Every exit, in priority order (one with the one-exit form). The top-level fields above are the first exit's, except the re-resolution count, which sums them. */
  readonly exits: readonly ExitStatus[];
  /** The exit the shared table routes through; null when none is (every exit down: fail closed). */
  readonly active: string | null;
}

/** One exit's part of {@link HostStatus}. */
export interface ExitStatus {
  readonly name: string;
  readonly interface: string;
  /** Its route table: the shared one with one exit, its own with several. */
  readonly table: number;
  /** Its tunnel addresses, without prefix length (what a pinned socket binds). */
  readonly addresses: readonly string[];
  readonly implementation: ActiveImplementation | null;
  readonly pid: number | null;
  readonly resolvedEndpoints: readonly string[];
  readonly resolveError: string | null;
  readonly endpointReresolutions: number;
}

/** Everything the manager can read about the host, in machine form. */
export interface HostObservation {
  /** The first exit's link and WireGuard state (the one exit's, with one). */
  readonly link: LinkState | null;
  readonly wireguard: WgDump | null;
  /** Our rules at every one of our priorities. */
  readonly rules: readonly ObservedRule[];
  /** The shared table's routes. */
  readonly routes: readonly ObservedRoute[];
  /** Each exit's link, WireGuard state and (with several exits) own table, in priority order. */
  readonly exits: readonly ExitObservation[];
  readonly firewall: FirewallObservation;
  readonly srcValidMark: string | null;
}

/** One exit's part of {@link HostObservation}. */
export interface ExitObservation {
  readonly name: string;
  readonly interface: string;
  readonly table: number;
  readonly link: LinkState | null;
  readonly wireguard: WgDump | null;
  /** Its own table's routes (the shared table's, with one exit). */
  readonly routes: readonly ObservedRoute[];
}
