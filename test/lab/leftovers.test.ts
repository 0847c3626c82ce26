/**
 * The demo's check for what egressd left behind, against a real network namespace holding each
 * kind of leftover: our rules (protocol 212) and a foreign one at our priorities, a route of ours
 * in our table, a link of the interface's name with and without our alias, and our nft table.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRunner, type Runner } from "../../lib/exec/runner.ts";
import { egressdLeftovers } from "../../lib/lab/leftovers.ts";
import { labUnsupported } from "./index.ts";

const skip = labUnsupported();
// Named like a lab (egt-<pid>-<seq>-...), so a crashed run's namespace is swept by cleanupStaleLabs.
const NS = `egt-${process.pid}-900-leftovers`;
const own = { interfaceName: "wg-left", rulePriority: 5000, table: 51820 };
let root: Runner;
let ns: Runner;

beforeAll(async () => {
  if (skip) return;
  root = createRunner();
  await root.run(["ip", "netns", "add", NS]);
  ns = createRunner({ prefix: ["ip", "netns", "exec", NS] });
});

afterAll(async () => {
  if (!skip) await root.run(["ip", "netns", "del", NS]).catch(() => undefined);
});

describe.skipIf(skip !== null)("egressdLeftovers", () => {
  test("a clean namespace has none", async () => {
    expect(await egressdLeftovers(ns, own)).toEqual([]);
  });

  test("names each leftover by egressd's markers, and foreign things at our places", async () => {
    await ns.run(["ip", "-4", "rule", "add", "priority", "5000", "fwmark", "0xca6d", "lookup", "main", "protocol", "212"]);
    await ns.run(["ip", "-4", "rule", "add", "priority", "5001", "lookup", "51820", "protocol", "212"]);
    await ns.run(["ip", "-6", "rule", "add", "priority", "5002", "lookup", "main"]); // not ours: no protocol 212
    await ns.run(["ip", "-4", "rule", "add", "priority", "4000", "lookup", "main", "protocol", "212"]); // not at our priorities
    await ns.run(["ip", "-4", "route", "add", "unreachable", "default", "table", "51820", "metric", "4294967295", "proto", "212"]);
    await ns.run(["ip", "tuntap", "add", "dev", "wg-left", "mode", "tun"]); // the name, without our alias
    await ns.run(["nft", "add", "table", "inet", "egressd"]);
    expect(await egressdLeftovers(ns, own)).toEqual([
      "interface wg-left (not marked as egressd's)",
      "2 ip -4 rules",
      "1 ip -4 routes in table 51820",
      "1 foreign ip -6 rules at egressd's priorities",
      "nft table inet egressd",
    ]);
    await ns.run(["ip", "link", "set", "dev", "wg-left", "alias", "egressd"]); // now as egressd marks its own
    expect((await egressdLeftovers(ns, own))[0]).toBe("interface wg-left");
  });
});
