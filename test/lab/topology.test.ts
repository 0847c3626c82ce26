import { describe, expect, test } from "bun:test";
import { planLab } from "../../lib/lab/topology.ts";
import { nsPrefix } from "../../lib/lab/lab.ts";

describe("planLab", () => {
  test("names carry prefix, pid and sequence; WireGuard names are unique and short", () => {
    const p = planLab({ prefix: "egt", pid: 4194303, seq: 12 });
    expect(p.ns).toEqual({ client: "egt-4194303-12-client", gw: "egt-4194303-12-gw", exit: "egt-4194303-12-exit", inet: "egt-4194303-12-inet" });
    expect(p.ifs.gatewayWg).toBe("eg2hwcf-cg");
    expect(p.ifs.gatewayWg.length).toBeLessThanOrEqual(15);
    expect(p.ifs.exitWg).not.toBe(p.ifs.gatewayWg);
    expect(planLab({ pid: 1, seq: 0 }).ifs.gatewayWg).not.toBe(planLab({ pid: 1, seq: 1 }).ifs.gatewayWg);
  });
  test("only documentation ranges and 10.x / fd00::/8, only inside the lab's namespaces", () => {
    const p = planLab({ pid: 1 });
    const addrs = p.steps.flatMap((s) => s.argv).filter((w) => /^\d+\.\d+\.\d+\.\d+|:/.test(w) && /\d/.test(w));
    for (const a of addrs) expect(a).toMatch(/^(10\.|192\.0\.2\.|198\.51\.100\.|203\.0\.113\.|2001:db8:|fd00:|net\.)/);
    for (const s of p.steps) {
      const named = s.argv.filter((w) => w.startsWith("egt-"));
      for (const n of named) expect(n.startsWith(p.id)).toBe(true);
    }
  });
  test("exits: 3 adds a third VPS namespace with addresses and WireGuard names of its own", () => {
    const p = planLab({ prefix: "egt", pid: 77, seq: 3, exits: 3 });
    expect(p.ns.exit2).toBe("egt-77-3-exit2");
    expect(p.ns.exit3).toBe("egt-77-3-exit3");
    const wgs = [p.ifs.gatewayWg, p.ifs.gatewayWg2, p.ifs.gatewayWg3, p.ifs.exitWg, p.ifs.exit2Wg, p.ifs.exit3Wg];
    expect(new Set(wgs).size).toBe(6);
    expect(p.steps.some((s) => s.argv.join(" ") === "ip -n egt-77-3-exit3 address add 203.0.113.66/26 dev wan")).toBe(true);
    expect(p.steps.filter((s) => s.name.endsWith("masquerade")).map((s) => s.name)).toEqual(["exit masquerade", "exit2 masquerade", "exit3 masquerade"]);
    expect(planLab({ exits: 2 }).ns.exit3).toBeUndefined();
  });
  test("nsPrefix: ambient CAP_NET_ADMIN only when asked", () => {
    expect(nsPrefix("n")).toEqual(["ip", "netns", "exec", "n"]);
    expect(nsPrefix("n", { uid: 64000 })).toEqual(["ip", "netns", "exec", "n", "setpriv", "--reuid=64000", "--regid=64000", "--clear-groups"]);
    expect(nsPrefix("n", { uid: 64000, netAdmin: true }).slice(-2)).toEqual(["--inh-caps=+net_admin", "--ambient-caps=+net_admin"]);
  });
});
