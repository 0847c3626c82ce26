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
  test("nsPrefix: ambient CAP_NET_ADMIN only when asked", () => {
    expect(nsPrefix("n")).toEqual(["ip", "netns", "exec", "n"]);
    expect(nsPrefix("n", { uid: 64000 })).toEqual(["ip", "netns", "exec", "n", "setpriv", "--reuid=64000", "--regid=64000", "--clear-groups"]);
    expect(nsPrefix("n", { uid: 64000, netAdmin: true }).slice(-2)).toEqual(["--inh-caps=+net_admin", "--ambient-caps=+net_admin"]);
  });
});
