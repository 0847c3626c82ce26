/**
 * Adding and removing standby exits on a running host (HostManager.changeExits, exit-apply.ts) against
 * a simulated host with one table per exit: the recorded argv (golden), what is left untouched (the
 * active exit's interface, its table, the shared table, the other exits' rules), refusals that change
 * nothing, and failed steps rolled back to the host as it was.
 */
import { describe, expect, test } from "bun:test";
import { ExitChangeError, ExitChangeRefusedError } from "../../lib/host/errors.ts";
import { HostManager } from "../../lib/host/manager.ts";
import type { HostSpec } from "../../lib/host/spec.ts";
import { fakeExitsHost } from "./fake-exits.ts";
import { twoExitSpec } from "./fixtures.ts";
import { expectGolden } from "./golden.ts";

const NOW = 1_700_000_100_000;

function setup(spec: HostSpec) {
  const host = fakeExitsHost();
  const manager = new HostManager(spec, { runner: host.runner, sysctl: host.sysctl, readSecret: host.readSecret, now: () => NOW, resolve: async () => ["198.51.100.2"] });
  return { ...host, manager };
}

async function upAndClear(spec: HostSpec) {
  const s = setup(spec);
  await s.manager.up();
  s.runner.clear();
  return s;
}

const TWO = twoExitSpec({ count: 2 });
const THREE = twoExitSpec({ count: 3 });

/** Every mutation that names the first exit's interface, its table or the shared table, or deletes a rule of a kept exit. */
function touchesKept(lines: readonly string[], keptIfs: readonly string[], keptTables: readonly number[], keptSources: readonly string[]): string[] {
  return lines.filter(
    (l) =>
      keptIfs.some((i) => l.includes(` ${i} `) || l.endsWith(` ${i}`)) ||
      [51820, ...keptTables].some((t) => l.startsWith("ip ") && l.includes(`table ${t} `)) ||
      (l.includes(" rule del ") && (keptSources.some((s) => l.includes(`from ${s} `)) || !l.includes(" from "))),
  );
}

describe("changeExits on a running host", () => {
  test("adding a third exit brings up only its interface, its table, its source rules and the re-rendered nft table", async () => {
    const s = await upAndClear(TWO);
    const r = await s.manager.changeExits(THREE);
    expect(r.added).toEqual(["scaleway"]);
    expect(r.removed).toEqual([]);
    const lines = s.runner.mutations();
    expectGolden("exits-add-third.txt", lines.join("\n") + "\n");
    expect(touchesKept(lines, ["wg-egress-0", "wg-egress-1"], [51821, 51822], ["10.100.0.2", "fd00::2", "10.100.1.2", "fd00:1::2"])).toEqual([]);
    expect(lines.filter((l) => l.startsWith("nft "))).toEqual(["nft -f -  <stdin " + String(s.state.nft!.length) + " bytes>"]);
    expect(s.state.nft).toContain('"wg-egress-0", "wg-egress-1", "wg-egress-2"');
    expect(s.state.links.get("wg-egress-2")?.alias).toBe("egressd");
    expect(s.state.tables.get("4:51823")?.map((x) => x.dev ?? x.type)).toEqual(["wg-egress-2", "unreachable"]);
    expect(s.manager.exits.map((e) => e.spec.exit.name)).toEqual(["hetzner", "ovh", "scaleway"]);
    expect(s.manager.status().exits.map((e) => [e.name, e.interface, e.table])).toEqual([
      ["hetzner", "wg-egress-0", 51821],
      ["ovh", "wg-egress-1", 51822],
      ["scaleway", "wg-egress-2", 51823],
    ]);
    // The host is what a fresh up() of the three exits would leave: a reconcile finds nothing to do.
    expect(await s.manager.drift()).toEqual([]);
  });

  test("removing the last exit tears down only its interface, its source rules and its table, after the rules", async () => {
    const s = await upAndClear(THREE);
    const r = await s.manager.changeExits(TWO);
    expect(r).toMatchObject({ added: [], removed: ["scaleway"] });
    const lines = s.runner.mutations();
    expectGolden("exits-remove-third.txt", lines.join("\n") + "\n");
    expect(touchesKept(lines, ["wg-egress-0", "wg-egress-1"], [51821, 51822], ["10.100.0.2", "fd00::2", "10.100.1.2", "fd00:1::2"])).toEqual([]);
    const ruleDel = lines.findIndex((l) => l.includes("rule del"));
    const tableDel = lines.findIndex((l) => l.includes("unreachable default") && l.includes("table 51823"));
    expect(ruleDel).toBeGreaterThan(-1);
    expect(tableDel).toBeGreaterThan(ruleDel); // the source rules go before the table they point at
    expect(s.state.links.has("wg-egress-2")).toBe(false);
    expect(s.state.tables.get("4:51823") ?? []).toEqual([]);
    expect(s.state.nft).not.toContain("wg-egress-2");
    expect(JSON.stringify(s.state.rules)).not.toContain("10.100.2.2");
    expect(await s.manager.drift()).toEqual([]);
  });

  test("add then remove is a round trip to the same host", async () => {
    const s = await upAndClear(TWO);
    const before = s.snapshot();
    await s.manager.changeExits(THREE);
    await s.manager.changeExits(TWO);
    expect(s.snapshot()).toBe(before);
  });

  test("replacing a standby at its index: the old interface goes, the new one takes its table without the kill switch leaving it", async () => {
    const s = await upAndClear(TWO);
    const replaced: HostSpec = { ...TWO, exits: [TWO.exits![0]!, { ...THREE.exits![2]!, interfaceName: "wg-egress-1" }] };
    const r = await s.manager.changeExits(replaced);
    expect(r).toMatchObject({ added: ["scaleway"], removed: ["ovh"] });
    const lines = s.runner.mutations();
    expectGolden("exits-replace-standby.txt", lines.join("\n") + "\n");
    expect(lines.filter((l) => l.includes("unreachable"))).toEqual([]);
    // Same interface names: the nft table is not re-applied at all.
    expect(lines.filter((l) => l.startsWith("nft "))).toEqual([]);
    expect(JSON.stringify(s.state.rules)).toContain("10.100.2.2");
    expect(JSON.stringify(s.state.rules)).not.toContain("10.100.1.2");
    expect(await s.manager.drift()).toEqual([]);
  });

  test("refused: removing the active exit changes nothing and says why", async () => {
    const s = await upAndClear(THREE);
    await s.manager.setActive("scaleway");
    s.runner.clear();
    const before = s.snapshot();
    const err = await s.manager.changeExits(TWO).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitChangeRefusedError);
    expect((err as ExitChangeRefusedError).reason).toMatch(/removing the active exit "scaleway" \(exits\[2\]\) is refused/);
    expect(s.runner.mutations()).toEqual([]);
    expect(s.snapshot()).toBe(before);
    expect(s.manager.exits).toHaveLength(3);
  });

  test("a new interface that cannot be created: rolled back, the running exits untouched", async () => {
    const s = await upAndClear(TWO);
    const before = s.snapshot();
    s.state.failCreate.add("wg-egress-2");
    const err = await s.manager.changeExits(THREE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitChangeError);
    expect((err as ExitChangeError).step).toBe("addInterface:scaleway");
    expect((err as ExitChangeError).message).toContain("Cannot allocate memory");
    expect((err as ExitChangeError).rollbackFailures).toEqual([]);
    expect(s.snapshot()).toBe(before);
    expect(s.manager.exits.map((e) => e.spec.exit.name)).toEqual(["hetzner", "ovh"]);
    expect(touchesKept(s.runner.mutations(), ["wg-egress-0", "wg-egress-1"], [51821, 51822], ["10.100.0.2", "fd00::2", "10.100.1.2", "fd00:1::2"])).toEqual([]);
    // And a later attempt, once the cause is gone, works.
    s.state.failCreate.clear();
    await s.manager.changeExits(THREE);
    expect(await s.manager.drift()).toEqual([]);
  });

  test("a failing nft apply after the new exit is up: its interface, table and rules are undone", async () => {
    const s = await upAndClear(TWO);
    const before = JSON.parse(s.snapshot());
    s.runner.once("nft -f -", { exitCode: 1, stderr: "Error: Could not process rule: No buffer space available" });
    const err = await s.manager.changeExits(THREE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitChangeError);
    expect((err as ExitChangeError).step).toBe("applyFirewall");
    const after = JSON.parse(s.snapshot());
    expect({ ...after, nft: null }).toEqual({ ...before, nft: null });
    expect(s.manager.exits).toHaveLength(2);
  });

  test("removing a removed exit's table fails: the exit is brought back whole", async () => {
    const s = await upAndClear(THREE);
    const before = JSON.parse(s.snapshot());
    s.runner.once(/^ip -4 route del unreachable default metric 4294967295 table 51823/, { exitCode: 2, stderr: "RTNETLINK answers: Operation not supported" });
    const err = await s.manager.changeExits(TWO).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitChangeError);
    expect((err as ExitChangeError).step).toBe("removeRoutes:scaleway");
    expect({ ...JSON.parse(s.snapshot()), nft: null }).toEqual({ ...before, nft: null });
    expect(s.manager.exits).toHaveLength(3);
    expect(await s.manager.drift()).toEqual([]);
  });

  test("before up(): the new exits are adopted without a command", async () => {
    const s = setup(TWO);
    await s.manager.changeExits(THREE);
    expect(s.runner.calls).toEqual([]);
    expect(s.manager.exits).toHaveLength(3);
  });
});
