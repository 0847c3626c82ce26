/**
 * lib/host: the part of egressd that changes the host — WireGuard interface, policy routing, nftables,
 * reconciliation, teardown. The daemon needs {@link HostManager} and {@link startReconcileLoop}; metrics
 * need {@link readWgDump}/{@link parseWgDump} and {@link readLeakCounter} (or the manager's methods).
 * It never imports lib/proxy, and lib/proxy never imports it.
 */
export { HostManager } from "./manager.ts";
export type { HostManagerOptions, HostObservation, HostStatus, UpResult } from "./manager.ts";
export { startReconcileLoop, runPass, Transaction } from "./reconcile.ts";
export type { PlannedComponent, ReconcileLoop, ReconcileLoopOptions, ReconcileResult } from "./reconcile.ts";
export type { Change, Component, Repair, Step } from "./change.ts";
export { MAIN_RULE_PRIORITY, formatMark, validateSpec } from "./spec.ts";
export type { Endpoint, ExitSpec, HostSpec, IfAddress, Implementation, InterfaceSpec, NormalizedSpec, RoutingSpec } from "./spec.ts";
export { parseWgDump, readWgDump, WgDumpParseError } from "./wgdump.ts";
export type { WgDump, WgInterfaceDump, WgPeerDump } from "./wgdump.ts";
export { LEAK_COUNTER, NFT_FAMILY, NFT_TABLE, parseLeakCounter, readLeakCounter, renderRuleset } from "./nftables.ts";
export type { FirewallObservation, LeakCounter } from "./nftables.ts";
export { KILL_SWITCH_METRIC, RT_PROTOCOL, RULE_COUNT, TUNNEL_METRIC, rulePriorities } from "./routing.ts";
export { IFALIAS, renderWgConfig } from "./wireguard.ts";
export type { ActiveImplementation, LinkState, WgConfig } from "./wireguard.ts";
export { STALE_HANDSHAKE_SECONDS, isHandshakeStale, systemResolver } from "./endpoint.ts";
export type { Resolver } from "./endpoint.ts";
export { SRC_VALID_MARK, SysctlError, procSysctl, runnerSysctl } from "./sysctl.ts";
export type { SysctlAccess } from "./sysctl.ts";
export {
  HostNotUpError,
  HostSetupError,
  InterfaceConflictError,
  KeyFileError,
  MissingCapabilityError,
  ReconcileError,
  RouteTableConflictError,
  RulePriorityConflictError,
  SpecError,
  TeardownError,
  UnsafeUidError,
  WireGuardStartError,
  WireGuardUnavailableError,
} from "./errors.ts";
export type { StepFailure } from "./errors.ts";
export { CommandError, MissingToolError } from "../exec/errors.ts";
