/**
 * The exits of a host spec, as the host parts need them: one {@link NormalizedSpec} per exit, and the
 * shared one the policy rules and the shared table are built from.
 *
 * One exit (the `interface` + `exit` form): exactly today's layout, byte for byte: the exit's routes in
 * `routing.table`, six rules per family.
 *
 * Several exits (`exits`, failover): exit i gets its own WireGuard interface (`interfaceName`), its own
 * tunnel addresses, and its own route table `routing.table + 1 + i` (its routes plus its own
 * `unreachable default`). The shared table `routing.table` holds the ACTIVE exit's routes plus the
 * unreachable default; with no exit active it holds only the unreachable default (fail closed). Per
 * family the rules are (routing.ts, {@link FAILOVER_RULE_COUNT} priorities):
 * ```
 * P+0  fwmark <wireguardFwmark> lookup main
 * P+1  fwmark <fwmark> lookup main suppress_prefixlength 0
 * P+2  uidrange <uid>-<uid> lookup main suppress_prefixlength 0
 * P+3  from <address of exit i> lookup <table + 1 + i>                          one per exit address
 * P+4  from <address of exit i> fwmark <fwmark> lookup <table + 1 + i>          one per exit address
 * P+5  fwmark <fwmark> lookup <table>
 * P+6  uidrange <uid>-<uid> lookup <table>
 * ```
 * A socket bound to exit i's address (a pinned listener or user) always takes exit i's table, whichever
 * exit is active, and fails when exit i is down; so does any packet with that source, the kernel's
 * own (a TIME_WAIT ACK or RST of a closed socket has neither the uid nor the mark). A connection opened through the active exit has that
 * exit's source address, so after a failover it stays on the exit it started on instead of leaving by
 * another tunnel with the wrong source. Everything else takes the shared table, i.e. the active exit.
 *
 * This module is pure: it validates and derives; nothing here touches the host.
 */
import { cidrContains, parseCidr, type Cidr } from "../net/ip.ts";
import { SpecError } from "./errors.ts";
import { RULE_COUNT, validateSpec, type HostSpec, type NormalizedSpec } from "./spec.ts";

/** Priorities the rules take with several exits (see the module comment). */
export const FAILOVER_RULE_COUNT = 7;

/** A validated spec, split by exit. */
export interface ExitLayout {
  /** Routing, uid, the shared table and the rule range. With one exit it is that exit's spec. */
  readonly shared: NormalizedSpec;
  /** One per exit, in priority order; each with its own interface, addresses and (failover) table. */
  readonly exits: readonly NormalizedSpec[];
  /** True with several exits: per-exit tables, the shared table follows the active exit. */
  readonly failover: boolean;
  /** How many consecutive priorities from `rulePriority` the rules take. */
  readonly ruleCount: number;
}

/** The route table of exit `index` with several exits: `table + 1 + index`. */
export function exitTable(table: number, index: number): number {
  return table + 1 + index;
}

/**
 * Validates a spec and splits it by exit. Throws `SpecError` listing every problem, with paths that
 * name the exit (`exits[1].interfaceName`), and `UnsafeUidError` for uid 0.
 */
export function validateExits(spec: HostSpec): ExitLayout {
  const list = spec.exits;
  if (list === undefined) {
    const n = validateSpec(spec);
    return { shared: n, exits: [n], failover: false, ruleCount: RULE_COUNT };
  }
  const problems: string[] = [];
  if (list.length < 2) problems.push(`exits: needs two or more exits, got ${list.length}; one exit uses the "exit" form`);
  if (spec.interface.listenPort !== null) {
    problems.push("interface.listenPort: must be null with several exits (each exit's interface needs a port of its own)");
  }
  const out: NormalizedSpec[] = [];
  const seenNames = new Map<string, number>();
  const seenIfs = new Map<string, number>();
  const seenAddrs: { cidr: Cidr; text: string; at: number }[] = [];
  list.forEach((e, i) => {
    const where = `exits[${i}]`;
    const first = seenNames.get(e.exit.name);
    if (first !== undefined) problems.push(`${where}.name: "${e.exit.name}" is already the name of exits[${first}]`);
    else seenNames.set(e.exit.name, i);
    const firstIf = seenIfs.get(e.interfaceName);
    if (firstIf !== undefined) problems.push(`${where}.interfaceName: "${e.interfaceName}" is already the interface of exits[${firstIf}]`);
    else seenIfs.set(e.interfaceName, i);
    for (const text of e.addresses) {
      let c;
      try {
        c = parseCidr(text, { allowHostBits: true });
      } catch {
        continue; // reported by validateSpec below
      }
      const other = seenAddrs.find((s) => s.at !== i && overlaps(s.cidr, c));
      if (other) problems.push(`${where}.addresses: ${text} overlaps ${other.text} of exits[${other.at}]`);
      seenAddrs.push({ cidr: c, text, at: i });
    }
    const table = exitTable(spec.routing.table, i);
    if (table > 0xffffffff || [253, 254, 255].includes(table)) {
      problems.push(`routing.table: exit ${i} would use table ${table}, which is reserved or out of range; choose another routing.table`);
    }
    try {
      out.push(
        validateSpec(
          {
            interface: { ...spec.interface, name: e.interfaceName, addresses: e.addresses },
            exit: e.exit,
            routing: { ...spec.routing, table },
            uid: spec.uid,
          },
          { ruleCount: FAILOVER_RULE_COUNT },
        ),
      );
    } catch (err) {
      if (!(err instanceof SpecError)) throw err;
      for (const p of err.problems) {
        if (p.startsWith("routing.") || p.startsWith("uid") || p.startsWith("interface.") && !/^interface\.(name|addresses)/.test(p)) {
          if (i === 0) problems.push(p); // shared settings: report once
          continue;
        }
        problems.push(p.replace(/^interface\.name/, `${where}.interfaceName`).replace(/^interface\.addresses/, `${where}.addresses`).replace(/^exit\./, `${where}.`));
      }
    }
  });
  if (problems.length > 0) throw new SpecError(problems);
  // The shared spec carries routing and uid; its interface fields are the first exit's.
  const shared = validateSpec(
    { interface: { ...spec.interface, name: list[0]!.interfaceName, addresses: list[0]!.addresses }, exit: list[0]!.exit, routing: spec.routing, uid: spec.uid },
    { ruleCount: FAILOVER_RULE_COUNT },
  );
  return { shared, exits: out, failover: true, ruleCount: FAILOVER_RULE_COUNT };
}

/** Two interface addresses clash when either's prefix holds the other: their connected routes would collide. */
function overlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}
