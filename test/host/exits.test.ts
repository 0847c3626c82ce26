/**
 * Several exits on the host side: validation of the exits list, and golden text of the rules, routes
 * and nft ruleset rendered for two and three exits. The one-exit form keeps its own goldens
 * (ruleset-default.nft, up-kernel.txt, ...), which these changes must leave byte for byte.
 */
import { describe, expect, test } from "bun:test";
import { formatArgv } from "../../lib/exec/argv.ts";
import { SpecError } from "../../lib/host/errors.ts";
import { FAILOVER_RULE_COUNT, exitTable, validateExits } from "../../lib/host/exits.ts";
import { renderRuleset } from "../../lib/host/nftables.ts";
import {
  desiredActiveRoutes,
  desiredRoutes,
  desiredRules,
  planRules,
  planSwitch,
  routeAddArgv,
  ruleAddArgv,
  rulePriorities,
  type RouteSpec,
} from "../../lib/host/routing.ts";
import { parseRoutes, parseRules } from "../../lib/host/routing-parse.ts";
import type { HostSpec } from "../../lib/host/spec.ts";
import { FakeRunner } from "../exec/fake.ts";
import { expectGolden } from "./golden.ts";
import { testSpec, twoExitSpec } from "./fixtures.ts";

function problems(spec: HostSpec): readonly string[] {
  try {
    validateExits(spec);
  } catch (e) {
    if (e instanceof SpecError) return e.problems;
    throw e;
  }
  return [];
}

/** Everything the host gets for a layout, as the commands that create it: rules, then each table. */
function renderLayout(spec: HostSpec): string {
  const l = validateExits(spec);
  const out = ["# rules", ...desiredRules(l.shared, [4, 6], l.exits).map((r) => formatArgv(ruleAddArgv(r)))];
  for (const e of l.exits) {
    out.push(`# table of exit ${e.spec.exit.name} (${e.ifname})`);
    for (const f of [4, 6] as const) out.push(...desiredRoutes(e, f).map((r) => formatArgv(routeAddArgv(r, e.spec.routing.table))));
  }
  out.push(`# shared table, ${l.exits[0]!.spec.exit.name} active`);
  for (const f of [4, 6] as const) out.push(...desiredActiveRoutes(l.shared, l.exits[0]!, f).map((r) => formatArgv(routeAddArgv(r, l.shared.spec.routing.table))));
  out.push("# shared table, no exit up");
  for (const f of [4, 6] as const) out.push(...desiredActiveRoutes(l.shared, null, f).map((r) => formatArgv(routeAddArgv(r, l.shared.spec.routing.table))));
  return out.join("\n") + "\n";
}

describe("validateExits", () => {
  test("one exit: exactly the one-exit layout (six rules, routes in the shared table)", () => {
    const l = validateExits(testSpec());
    expect(l.failover).toBe(false);
    expect(l.exits).toEqual([l.shared]);
    expect(l.ruleCount).toBe(6);
    expect(l.shared.spec.routing.table).toBe(51820);
  });

  test("two exits: own interface, own addresses, own table each; shared routing", () => {
    const l = validateExits(twoExitSpec());
    expect(l.failover).toBe(true);
    expect(l.ruleCount).toBe(FAILOVER_RULE_COUNT);
    expect(l.exits.map((e) => [e.spec.exit.name, e.ifname, e.spec.routing.table, e.addresses.map((a) => a.cidr)])).toEqual([
      ["hetzner", "wg-egress-0", 51821, ["10.100.0.2/32", "fd00::2/128"]],
      ["ovh", "wg-egress-1", 51822, ["10.100.1.2/32", "fd00:1::2/128"]],
    ]);
    expect(l.shared.spec.routing.table).toBe(51820);
    expect(exitTable(51820, 2)).toBe(51823);
  });

  const two = twoExitSpec();
  const withExit = (i: number, over: Partial<NonNullable<HostSpec["exits"]>[number]>): HostSpec => ({
    ...two,
    exits: two.exits!.map((e, n) => (n === i ? { ...e, ...over } : e)),
  });
  test.each([
    ["a duplicate exit name", withExit(1, { exit: { ...two.exits![1]!.exit, name: "hetzner" } }), 'exits[1].name: "hetzner" is already the name of exits[0]'],
    ["a duplicate interface", withExit(1, { interfaceName: "wg-egress-0" }), 'exits[1].interfaceName: "wg-egress-0" is already the interface of exits[0]'],
    ["an interface name over 15 characters", withExit(1, { interfaceName: "wg-egress-backup" }), "exits[1].interfaceName:"],
    ["overlapping tunnel addresses", withExit(1, { addresses: ["10.100.0.3/24"] }), "exits[1].addresses: 10.100.0.3/24 overlaps 10.100.0.2/32 of exits[0]"],
    ["the same tunnel address", withExit(1, { addresses: ["10.100.0.2/32"] }), "exits[1].addresses: 10.100.0.2/32 overlaps"],
    ["a bad address", withExit(1, { addresses: ["10.100.1.300/32"] }), "exits[1].addresses[0]:"],
    ["no address", withExit(1, { addresses: [] }), "exits[1].addresses:"],
    ["a bad key", withExit(1, { exit: { ...two.exits![1]!.exit, publicKey: "nope" } }), "exits[1].publicKey:"],
    ["a bad endpoint", withExit(0, { exit: { ...two.exits![0]!.exit, endpoint: "vps" } }), "exits[0].endpoint:"],
    ["a single entry", { ...two, exits: two.exits!.slice(0, 1) }, "exits: needs two or more exits"],
    ["a fixed listen port", { ...two, interface: { ...two.interface, listenPort: 51820 } }, "interface.listenPort: must be null with several exits"],
    ["rules that would reach main", twoExitSpec({ routing: { rulePriority: 32760 } }), "routing.rulePriority: must be 1..32759 so all 7 rules come before main"],
    ["an exit table that is reserved", twoExitSpec({ routing: { table: 252 } }), "routing.table: exit 1 would use table 254"],
  ])("refuses %s, naming the field", (_name, spec, message) => {
    const p = problems(spec);
    expect(p.some((x) => x.startsWith(message))).toBe(true);
  });

  test("shared settings are reported once, not per exit", () => {
    const p = problems(twoExitSpec({ routing: { rulePriority: 32760 } }));
    expect(p.filter((x) => x.startsWith("routing.rulePriority"))).toHaveLength(1);
  });
});

describe("rendered state of several exits (golden)", () => {
  test("two exits: rules, each exit's table, the shared table", () => {
    expectGolden("exits-2-routing.txt", renderLayout(twoExitSpec()));
  });
  test("three exits", () => {
    expectGolden("exits-3-routing.txt", renderLayout(twoExitSpec({ count: 3 })));
  });
  test("two exits: one nft table covering both interfaces", () => {
    expectGolden("ruleset-exits-2.nft", renderRuleset(twoExitSpec()));
  });
  test("two exits without the kill switch: no unreachable routes, no leak guard", () => {
    const text = renderRuleset(twoExitSpec({ routing: { killSwitch: false } }));
    expect(text).not.toContain("chain leak_guard");
    expect(renderLayout(twoExitSpec({ routing: { killSwitch: false } }))).not.toContain("unreachable");
  });
  test("the one-exit ruleset is unchanged by the exits parameter", () => {
    const l = validateExits(testSpec());
    expect(renderRuleset(l.shared, { exits: l.exits })).toBe(renderRuleset(testSpec()));
  });
  test("source rules sit between the suppress rules and the shared lookups, inside our priority block", () => {
    const l = validateExits(twoExitSpec());
    const rules = desiredRules(l.shared, [4], l.exits);
    const block = rulePriorities(5000, FAILOVER_RULE_COUNT);
    expect(rules.every((r) => block.includes(r.priority))).toBe(true);
    const firstSource = rules.findIndex((r) => r.from);
    const lastSuppress = rules.map((r) => r.suppressPrefixlength).lastIndexOf(0);
    const firstShared = rules.findIndex((r) => r.table === 51820);
    expect(lastSuppress).toBeLessThan(firstSource);
    expect(rules.filter((r) => r.from).every((r) => rules.indexOf(r) < firstShared)).toBe(true);
  });
});

describe("observing and diffing failover rules", () => {
  const l = validateExits(twoExitSpec());
  // What `ip -j -N -4 rule show` prints for them (checked on iproute2 6.1: a host source has no srclen).
  const observed = (drop?: number) =>
    desiredRules(l.shared, [4], l.exits)
      .map((r) => ({
        priority: r.priority,
        src: r.from ?? "all",
        ...(r.fwmark !== null ? { fwmark: `0x${r.fwmark.toString(16)}` } : {}),
        ...(r.uid !== null ? { uid_start: r.uid, uid_end: r.uid } : {}),
        table: String(r.table),
        ...(r.suppressPrefixlength !== null ? { suppress_prefixlen: r.suppressPrefixlength } : {}),
        protocol: "212",
      }))
      .filter((_, i) => i !== drop);

  test("a healthy host plans nothing", () => {
    const parsed = parseRules(JSON.stringify(observed()), 4, rulePriorities(5000, FAILOVER_RULE_COUNT));
    expect(parsed.filter((r) => r.src !== null).map((r) => r.src)).toEqual(["10.100.0.2", "10.100.1.2", "10.100.0.2", "10.100.1.2"]);
    expect(planRules(desiredRules(l.shared, [4], l.exits), parsed)).toEqual([]);
  });
  test("one exit's missing source rule is re-added alone", () => {
    const parsed = parseRules(JSON.stringify(observed(4)), 4, rulePriorities(5000, FAILOVER_RULE_COUNT));
    const changes = planRules(desiredRules(l.shared, [4], l.exits), parsed);
    expect(changes.map((c) => c.reason)).toEqual(["rule priority 5003 from 10.100.1.2 lookup 51822 (IPv4) is missing"]);
  });
  test("a source prefix (not a host) reads as network/len and is not ours", () => {
    const parsed = parseRules(JSON.stringify([{ priority: 5003, src: "10.100.0.0", srclen: 24, table: "51821", protocol: "212" }]), 4, [5003]);
    expect(parsed[0]!.src).toBe("10.100.0.0/24");
    expect(planRules(desiredRules(l.shared, [4], l.exits), parsed).some((c) => c.action === "delete-rule")).toBe(true);
  });
});

describe("planSwitch: moving the shared table to another exit", () => {
  const l = validateExits(twoExitSpec());
  const asObserved = (routes: RouteSpec[]) =>
    parseRoutes(
      JSON.stringify(routes.map((r) => ({ ...(r.type === "unicast" ? {} : { type: r.type }), dst: "default", ...(r.dev ? { dev: r.dev } : {}), protocol: "212", metric: r.metric }))),
      4,
    );

  test("each moved route is one `ip route replace`; the unreachable default is never touched", async () => {
    const observed = asObserved(desiredActiveRoutes(l.shared, l.exits[0]!, 4));
    const changes = planSwitch(desiredActiveRoutes(l.shared, l.exits[1]!, 4), observed, 51820);
    expect(changes.map((c) => c.action)).toEqual(["switch-route"]);
    const r = new FakeRunner().on(/.*/, {});
    await changes[0]!.apply(r);
    await changes[0]!.undo!(r);
    expect(r.lines()).toEqual([
      "ip -4 route replace default dev wg-egress-1 metric 100 table 51820 proto 212",
      "ip -4 route replace default dev wg-egress-0 metric 100 table 51820 proto 212",
    ]);
  });
  test("no exit up: the tunnel route goes, after nothing else, and the unreachable default stays", () => {
    const observed = asObserved(desiredActiveRoutes(l.shared, l.exits[0]!, 4));
    const changes = planSwitch(desiredActiveRoutes(l.shared, null, 4), observed, 51820);
    expect(changes.map((c) => [c.action, c.reason])).toEqual([["delete-route", "unexpected route in table 51820: default dev wg-egress-0 metric 100 proto 212"]]);
  });
  test("back from none: the tunnel route is added; a missing kill switch is added before any delete", () => {
    const none = asObserved(desiredActiveRoutes(l.shared, null, 4));
    expect(planSwitch(desiredActiveRoutes(l.shared, l.exits[1]!, 4), none, 51820).map((c) => c.action)).toEqual(["add-route"]);
    const onlyTunnel = asObserved(desiredActiveRoutes(l.shared, l.exits[0]!, 4).filter((r) => r.type === "unicast"));
    expect(planSwitch(desiredActiveRoutes(l.shared, null, 4), onlyTunnel, 51820).map((c) => c.action)).toEqual(["add-route", "delete-route"]);
  });
  test("already on the wanted exit: nothing to do", () => {
    const observed = asObserved(desiredActiveRoutes(l.shared, l.exits[1]!, 4));
    expect(planSwitch(desiredActiveRoutes(l.shared, l.exits[1]!, 4), observed, 51820)).toEqual([]);
  });
});
