import { describe, expect, test } from "bun:test";
import { FakeRunner } from "../exec/fake.ts";
import { MissingCapabilityError } from "../../lib/host/errors.ts";
import { applyRuleset, observeFirewall, parseFirewall, parseLeakCounter, readLeakCounter, removeRuleset, renderRuleset } from "../../lib/host/nftables.ts";
import { expectGolden } from "./golden.ts";
import { nftJson, testSpec } from "./fixtures.ts";

describe("renderRuleset", () => {
  test("default spec (golden)", () => {
    expectGolden("ruleset-default.nft", renderRuleset(testSpec()));
  });
  test("allowed destinations, both families (golden)", () => {
    expectGolden("ruleset-allow.nft", renderRuleset(testSpec({ routing: { allowDestinations: ["10.1.0.0/24", "192.0.2.53/32", "2001:db8::/32"] } })));
  });
  test("kill switch off: no leak guard chain (golden)", () => {
    const text = renderRuleset(testSpec({ routing: { killSwitch: false } }));
    expect(text).not.toContain("chain leak_guard");
    expectGolden("ruleset-no-killswitch.nft", text);
  });

  test("marks only unmarked packets of the daemon's uid (trap 4)", () => {
    const text = renderRuleset(testSpec({ uid: 4242, routing: { fwmark: 0x1234 } }));
    expect(text).toContain("meta mark 0 meta skuid 4242 meta mark set 0x1234");
  });
  test("replaces only its own table, atomically", () => {
    const text = renderRuleset(testSpec());
    const statements = text.split("\n").filter((l) => /^(table|delete|flush|add)\b/.test(l));
    expect(statements).toEqual(["table inet egressd", "delete table inet egressd", "table inet egressd {"]);
  });
  test("is pure", () => {
    expect(renderRuleset(testSpec())).toBe(renderRuleset(testSpec()));
  });
});

describe("observation", () => {
  test("fingerprint ignores handles and counter values but not rules", () => {
    const base = parseFirewall(nftJson());
    expect(base.present).toBe(true);
    expect(parseFirewall(nftJson({ packets: 99 })).fingerprint).toBe(base.fingerprint);
    const renumbered = nftJson().replaceAll('"handle":9', '"handle":77');
    expect(parseFirewall(renumbered).fingerprint).toBe(base.fingerprint);
    expect(parseFirewall(nftJson({ extraRule: true })).fingerprint).not.toBe(base.fingerprint);
  });
  test("reads the leak counter", () => {
    expect(parseFirewall(nftJson({ packets: 3 })).leak).toEqual({ packets: 3, bytes: 180 });
    const counterOnly = JSON.stringify({ nftables: [{ metainfo: {} }, { counter: { family: "inet", name: "leak_guard", table: "egressd", handle: 5, packets: 7, bytes: 420 } }] });
    expect(parseLeakCounter(counterOnly)).toEqual({ packets: 7, bytes: 420 });
    expect(parseLeakCounter(JSON.stringify({ nftables: [] }))).toBeNull();
  });
  test("an absent table is not an error", async () => {
    const r = new FakeRunner().on(/^nft/, { exitCode: 1, stderr: "Error: No such file or directory\nlist table inet egressd\n                ^^^^^^^" });
    expect(await observeFirewall(r)).toEqual({ present: false, fingerprint: null, leak: null });
    expect(await readLeakCounter(r)).toBeNull();
    expect(await removeRuleset(r)).toBe(false);
  });
  test("apply feeds the script on stdin; EPERM becomes MissingCapabilityError", async () => {
    const r = new FakeRunner();
    await applyRuleset(r, "table inet egressd {}\n");
    expect(r.calls[0]).toMatchObject({ argv: ["nft", "-f", "-"], stdin: "table inet egressd {}\n" });
    const denied = new FakeRunner().on("nft -f -", { exitCode: 1, stderr: "Operation not permitted (you must be root)" });
    await expect(applyRuleset(denied, "x")).rejects.toBeInstanceOf(MissingCapabilityError);
  });
});
