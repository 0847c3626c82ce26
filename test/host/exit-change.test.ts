/**
 * The reload plan for a change of exits (lib/host/exit-change.ts), as a table: every case the
 * running host can take without touching the active exit, and every refusal with its reason.
 */
import { describe, expect, test } from "bun:test";
import { validateExits } from "../../lib/host/exits.ts";
import { isEmptyPlan, planExitChange, type ExitChangeDecision } from "../../lib/host/exit-change.ts";
import type { ExitInstanceSpec, HostSpec } from "../../lib/host/spec.ts";
import { KEYS, testSpec, twoExitSpec } from "./fixtures.ts";

/** The three fixture exits, by name: hetzner (index 0), ovh, scaleway; each with its own interface and addresses. */
const BASE = twoExitSpec({ count: 3 }).exits!;
const byName = new Map(BASE.map((e) => [e.exit.name, e]));

/** A spec with these exits, in this order, each interface named after its index as the config derives it. */
function specOf(names: readonly (string | ExitInstanceSpec)[], over: { routing?: Partial<HostSpec["routing"]> } = {}): HostSpec {
  const base = testSpec(over);
  const exits = names.map((n, i) => {
    const e = typeof n === "string" ? byName.get(n)! : n;
    return { ...e, interfaceName: `wg-egress-${i}` };
  });
  return { ...base, interface: { ...base.interface, name: exits[0]!.interfaceName, addresses: exits[0]!.addresses }, exit: exits[0]!.exit, exits };
}

function decide(from: HostSpec, to: HostSpec, active: string | null = "hetzner"): ExitChangeDecision {
  return planExitChange(validateExits(from), validateExits(to), { active });
}

/** The plan as names by index, for compact expectations. */
function summary(d: ExitChangeDecision) {
  if (!d.ok) return { refused: d.reason };
  return { kept: d.plan.kept, remove: d.plan.remove.map((e) => `${e.index}:${e.name}`), add: d.plan.add.map((e) => `${e.index}:${e.name}:${e.spec.ifname}:${e.spec.spec.routing.table}`) };
}

const changedKey = { ...byName.get("ovh")!, exit: { ...byName.get("ovh")!.exit, publicKey: KEYS.strangerPublic } };
const changedActive = { ...byName.get("hetzner")!, exit: { ...byName.get("hetzner")!.exit, endpoint: "198.51.100.99:51820" } };
const movedAddress = { ...byName.get("hetzner")!, addresses: ["10.100.9.2/32"] };
const newExit: ExitInstanceSpec = { exit: { ...byName.get("ovh")!.exit, name: "vultr", endpoint: "198.51.100.50:51820" }, interfaceName: "x", addresses: ["10.100.5.2/32", "fd00:5::2/128"] };

describe("planExitChange: applied in place", () => {
  const cases: [string, (string | ExitInstanceSpec)[], (string | ExitInstanceSpec)[], string | null, ReturnType<typeof summary>][] = [
    ["nothing changes", ["hetzner", "ovh"], ["hetzner", "ovh"], "hetzner", { kept: [0, 1], remove: [], add: [] }],
    ["append a standby", ["hetzner", "ovh"], ["hetzner", "ovh", "scaleway"], "hetzner", { kept: [0, 1], remove: [], add: ["2:scaleway:wg-egress-2:51823"] }],
    ["append two", ["hetzner", "ovh"], ["hetzner", "ovh", "scaleway", newExit], "hetzner", { kept: [0, 1], remove: [], add: ["2:scaleway:wg-egress-2:51823", "3:vultr:wg-egress-3:51824"] }],
    ["remove the last (standby)", ["hetzner", "ovh", "scaleway"], ["hetzner", "ovh"], "hetzner", { kept: [0, 1], remove: ["2:scaleway"], add: [] }],
    ["remove the last two", ["hetzner", "ovh", "scaleway", newExit], ["hetzner", "ovh"], "ovh", { kept: [0, 1], remove: ["2:scaleway", "3:vultr"], add: [] }],
    ["replace a standby at its index", ["hetzner", "ovh"], ["hetzner", "scaleway"], "hetzner", { kept: [0], remove: ["1:ovh"], add: ["1:scaleway:wg-egress-1:51822"] }],
    ["change a standby's key (replaced)", ["hetzner", "ovh"], ["hetzner", changedKey], "hetzner", { kept: [0], remove: ["1:ovh"], add: ["1:ovh:wg-egress-1:51822"] }],
    ["the first exit is a standby while the second is active: it may change", ["hetzner", "ovh"], [changedActive, "ovh"], "ovh", { kept: [1], remove: ["0:hetzner"], add: ["0:hetzner:wg-egress-0:51821"] }],
    ["no exit active: a tail exit may go", ["hetzner", "ovh", "scaleway"], ["hetzner", "ovh"], null, { kept: [0, 1], remove: ["2:scaleway"], add: [] }],
  ];
  for (const [name, from, to, active, want] of cases) {
    test(name, () => {
      expect(summary(decide(specOf(from), specOf(to), active))).toEqual(want);
    });
  }

  test("an unchanged list is the empty plan", () => {
    const d = decide(specOf(["hetzner", "ovh"]), specOf(["hetzner", "ovh"]));
    expect(d.ok && isEmptyPlan(d.plan)).toBe(true);
  });
});

describe("planExitChange: refused, with the reason", () => {
  const cases: [string, HostSpec, HostSpec, string | null, RegExp][] = [
    ["remove the active exit from the end", specOf(["hetzner", "ovh", "scaleway"]), specOf(["hetzner", "ovh"]), "scaleway", /removing the active exit "scaleway" \(exits\[2\]\) is refused/],
    ["change the active exit's endpoint", specOf(["hetzner", "ovh"]), specOf([changedActive, "ovh"]), "hetzner", /changing the active exit "hetzner" \(exits\[0\]: endpoint\) is refused/],
    ["change the active exit's addresses", specOf(["hetzner", "ovh"]), specOf([movedAddress, "ovh"]), "hetzner", /changing the active exit "hetzner" \(exits\[0\]: addresses\)/],
    ["change the active exit's key", specOf(["hetzner", "ovh"]), specOf(["hetzner", changedKey]), "ovh", /changing the active exit "ovh" \(exits\[1\]: publicKey\)/],
    ["replace the active exit by another at its index", specOf(["hetzner", "ovh"]), specOf(["hetzner", "scaleway"]), "ovh", /removing the active exit "ovh"/],
    ["insert in the middle: a standby would move", specOf(["hetzner", "ovh"]), specOf(["hetzner", "scaleway", "ovh"]), "hetzner", /exit "ovh" would move from exits\[1\] to exits\[2\], renumbering its table \(51822 -> 51823\) and its interface \(wg-egress-1 -> wg-egress-2\); add exits at the end/],
    ["remove from the middle: the last would move", specOf(["hetzner", "ovh", "scaleway"]), specOf(["hetzner", "scaleway"]), "hetzner", /exit "scaleway" would move from exits\[2\] to exits\[1\]/],
    ["reorder, which changes the active exit's table", specOf(["hetzner", "ovh"]), specOf(["ovh", "hetzner"]), "hetzner", /exit "hetzner" would move from exits\[0\] to exits\[1\].*it is the active exit/],
    ["a shared setting changes too", specOf(["hetzner", "ovh"]), specOf(["hetzner", "ovh", "scaleway"], { routing: { fwmark: 0x1234 } }), "hetzner", /^routing\.fwmark cannot change on reload/],
    ["the table base moves", specOf(["hetzner", "ovh"]), specOf(["hetzner", "ovh"], { routing: { table: 60000 } }), "hetzner", /^routing\.table cannot change/],
    ["from the one-exit form", testSpec(), specOf(["hetzner", "ovh"]), "hetzner", /moving between the "exit" form and the "exits" form/],
  ];
  for (const [name, from, to, active, want] of cases) {
    test(name, () => {
      const d = decide(from, to, active);
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.reason).toMatch(want);
    });
  }

  test("fewer than two exits never reaches the plan: the spec is invalid", () => {
    expect(() => validateExits(specOf(["hetzner"]))).toThrow("needs two or more exits");
  });
});
