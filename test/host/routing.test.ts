import { describe, expect, test } from "bun:test";
import { FakeRunner } from "../exec/fake.ts";
import {
  desiredRoutes,
  desiredRules,
  foreignRoutes,
  planRoutes,
  planRules,
  routeAddArgv,
  ruleAddArgv,
} from "../../lib/host/routing.ts";
import { parseRoutes, parseRules } from "../../lib/host/routing-parse.ts";
import { observeRoutes } from "../../lib/host/policy.ts";
import { validateSpec } from "../../lib/host/spec.ts";
import { formatArgv } from "../../lib/exec/argv.ts";
import { HEALTHY_ROUTES, HEALTHY_RULES, testSpec } from "./fixtures.ts";

const n = validateSpec(testSpec());

describe("desired state", () => {
  test("rules: WireGuard's mark exempt, then suppress_prefixlength before each table lookup (traps 1, 3, 4)", () => {
    const v4 = [
      "ip -4 rule add priority 5000 fwmark 0xca6d lookup main protocol 212",
      "ip -4 rule add priority 5001 fwmark 0xca6c lookup main suppress_prefixlength 0 protocol 212",
      "ip -4 rule add priority 5002 fwmark 0xca6c lookup 51820 protocol 212",
      "ip -4 rule add priority 5003 uidrange 64000-64000 lookup main suppress_prefixlength 0 protocol 212",
      "ip -4 rule add priority 5004 uidrange 64000-64000 lookup 51820 protocol 212",
    ];
    // Last, the tunnel address: the kernel's own packets of a closed socket (no uid, no mark).
    const v6 = [...v4.map((l) => l.replace("ip -4", "ip -6")), "ip -6 rule add priority 5005 from fd00::2 lookup 51820 protocol 212"];
    expect(desiredRules(n, [4, 6]).map(ruleAddArgv).map(formatArgv)).toEqual([...v4, "ip -4 rule add priority 5005 from 10.100.0.2 lookup 51820 protocol 212", ...v6]);
  });
  test("routes: tunnel default plus unreachable default with the worst metric", () => {
    expect([...desiredRoutes(n, 4), ...desiredRoutes(n, 6)].map((r) => formatArgv(routeAddArgv(r, 51820)))).toEqual([
      "ip -4 route add default dev wg-egress metric 100 table 51820 proto 212",
      "ip -4 route add unreachable default metric 4294967295 table 51820 proto 212",
      "ip -6 route add default dev wg-egress metric 100 table 51820 proto 212",
      "ip -6 route add unreachable default metric 4294967295 table 51820 proto 212",
    ]);
  });
  test("a family without a tunnel address still gets the kill switch, not a tunnel route", () => {
    const v4only = validateSpec(testSpec({ interface: { addresses: ["10.100.0.2/32"] } }));
    expect(desiredRoutes(v4only, 6).map((r) => r.type)).toEqual(["unreachable"]);
  });
  test("kill switch off: no unreachable route", () => {
    const off = validateSpec(testSpec({ routing: { killSwitch: false } }));
    expect(desiredRoutes(off, 4).map((r) => r.type)).toEqual(["unicast"]);
  });
});

describe("parsing ip -j", () => {
  test("rules at our priorities only, with their protocol and uid range", () => {
    const rules = parseRules(JSON.stringify(HEALTHY_RULES(4)), 4, [5000, 5001, 5002, 5003, 5004, 5005]);
    expect(rules.map((r) => [r.priority, r.fwmark, r.uidStart, r.table, r.suppressPrefixlength, r.protocol])).toEqual([
      [5000, 0xca6d, null, "254", null, "212"],
      [5001, 0xca6c, null, "254", 0, "212"],
      [5002, 0xca6c, null, "51820", null, "212"],
      [5003, null, 64000, "254", 0, "212"],
      [5004, null, 64000, "51820", null, "212"],
      [5005, null, null, "51820", null, "212"],
    ]);
    expect(rules[5]!.src).toBe("10.100.0.2");
    expect(rules.every((r) => !r.hasOtherSelectors)).toBe(true);
    expect(rules[3]!.selector).toEqual(["priority", "5003", "uidrange", "64000-64000", "lookup", "254", "suppress_prefixlength", "0", "protocol", "212"]);
  });
  test("routes: default, unreachable (v6 shows dev lo), host routes", () => {
    const r6 = parseRoutes(JSON.stringify(HEALTHY_ROUTES(6)), 6);
    expect(r6.map((r) => [r.type, r.dst, r.dev, r.metric])).toEqual([
      ["unicast", "::/0", "wg-egress", 100],
      ["unreachable", "::/0", null, 4294967295],
    ]);
    const host = parseRoutes(JSON.stringify([{ dst: "192.0.2.7", dev: "eth0", protocol: "boot", scope: "link", flags: [] }]), 4);
    expect(host[0]).toMatchObject({ dst: "192.0.2.7/32", metric: 0, protocol: "boot" });
    expect(foreignRoutes(host).length).toBe(1);
  });
  test("a table that does not exist reads as empty", async () => {
    const r = new FakeRunner().on(/route show/, { exitCode: 2, stderr: "Error: ipv4: FIB table does not exist.\nDump terminated" });
    expect(await observeRoutes(r, 4, 51820)).toEqual([]);
  });
});

describe("planning", () => {
  test("healthy: nothing to do", () => {
    expect(planRules(desiredRules(n, [4]), parseRules(JSON.stringify(HEALTHY_RULES(4)), 4, [5000, 5001, 5002, 5003, 5004, 5005]))).toEqual([]);
    expect(planRoutes(desiredRoutes(n, 4), parseRoutes(JSON.stringify(HEALTHY_ROUTES(4)), 4), 51820)).toEqual([]);
  });
  test("stale rule of an old config and a duplicate: add the missing, delete the rest", async () => {
    const healthy = HEALTHY_RULES(4).filter((r) => r.priority !== 5002);
    const observed = parseRules(
      JSON.stringify([
        ...healthy,
        { priority: 5001, src: "all", fwmark: "0xca6c", table: "254", suppress_prefixlen: 0, protocol: "212" },
        { priority: 5002, src: "all", fwmark: "0x1234", table: "51820", protocol: "212" },
      ]),
      4,
      [5000, 5001, 5002, 5003, 5004, 5005],
    );
    const changes = planRules(desiredRules(n, [4]), observed);
    expect(changes.map((c) => c.action)).toEqual(["add-rule", "delete-rule", "delete-rule"]);
    const r = new FakeRunner();
    for (const c of changes) await c.apply(r);
    expect(r.lines()).toEqual([
      "ip -4 rule add priority 5002 fwmark 0xca6c lookup 51820 protocol 212",
      "ip -4 rule del priority 5001 fwmark 0xca6c lookup 254 suppress_prefixlength 0 protocol 212",
      "ip -4 rule del priority 5002 fwmark 0x1234 lookup 51820 protocol 212",
    ]);
  });
  test("routes: deletes come before adds, and deleting an already-gone route is fine", async () => {
    const observed = parseRoutes(JSON.stringify([{ dst: "default", dev: "eth0", protocol: "static", metric: 100, flags: [] }]), 4);
    const changes = planRoutes(desiredRoutes(n, 4), observed, 51820);
    expect(changes.map((c) => c.action)).toEqual(["delete-route", "add-route", "add-route"]);
    const r = new FakeRunner().on(/route del/, { exitCode: 2, stderr: "RTNETLINK answers: No such process" });
    for (const c of changes) await c.apply(r);
    expect(r.lines()[0]).toBe("ip -4 route del default dev eth0 metric 100 table 51820");
  });
  test("every planned change has an exact inverse", async () => {
    const observed = parseRules(
      JSON.stringify([...HEALTHY_RULES(4).filter((r) => r.priority !== 5002), { priority: 5002, src: "all", fwmark: "0x1234", table: "51820", protocol: "212" }]),
      4,
      [5000, 5001, 5002, 5003, 5004, 5005],
    );
    const r = new FakeRunner();
    for (const c of planRules(desiredRules(n, [4]), observed)) await c.undo!(r);
    expect(r.lines()).toEqual([
      "ip -4 rule del priority 5002 fwmark 0xca6c lookup 51820 protocol 212",
      "ip -4 rule add priority 5002 fwmark 0x1234 lookup 51820 protocol 212",
    ]);
  });
});
