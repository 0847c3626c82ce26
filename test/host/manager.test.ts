/**
 * The host manager against a scripted host: golden argv for up, down and every repair, and the errors
 * for bad host states. The real-kernel counterparts are in netns.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { MissingToolError } from "../../lib/exec/errors.ts";
import { formatArgv } from "../../lib/exec/argv.ts";
import {
  HostNotUpError,
  HostSetupError,
  InterfaceConflictError,
  MissingCapabilityError,
  ReconcileError,
  RouteTableConflictError,
  RulePriorityConflictError,
  UnsafeUidError,
  WireGuardUnavailableError,
} from "../../lib/host/errors.ts";
import { HostManager, buildParts, type HostManagerOptions } from "../../lib/host/manager.ts";
import { validateExits } from "../../lib/host/exits.ts";
import { validateSpec } from "../../lib/host/spec.ts";
import { silentLogger } from "../../lib/log/logger.ts";
import type { Repair } from "../../lib/host/change.ts";
import { expectGolden } from "./golden.ts";
import { HEALTHY_ROUTES, dumpText, fakeHost, link, nftJson, testSpec, twoExitSpec } from "./fixtures.ts";

const NOW = 1_700_000_100_000; // 100 s after the fixtures' handshake

function setup(initial: Parameters<typeof fakeHost>[0] = {}, spec = testSpec(), extra: HostManagerOptions = {}) {
  const host = fakeHost(initial, spec.interface.name);
  const repairs: Repair[] = [];
  const manager = new HostManager(spec, {
    runner: host.runner,
    sysctl: host.sysctl,
    readSecret: host.readSecret,
    now: () => NOW,
    resolve: async () => ["198.51.100.2"],
    onRepair: (r) => repairs.push(r),
    ...extra,
  });
  return { ...host, manager, repairs };
}

/** Brings a simulated host up and forgets the calls that took. */
async function upAndHealthy(s: ReturnType<typeof setup>) {
  await s.manager.up();
  s.runner.clear();
}

function renderRepairs(repairs: readonly Repair[]): string {
  return repairs.map((r) => [`# ${r.component}/${r.action}: ${r.reason}`, ...r.commands.map((c) => formatArgv(c))].join("\n")).join("\n") + "\n";
}

describe("up", () => {
  test("empty host without the kernel module: falls back to wireguard-go (golden argv)", async () => {
    const s = setup();
    const r = await s.manager.up();
    expect(r.implementation).toBe("userspace");
    expect(r.pid).toBe(4000);
    expect(s.manager.status().state).toBe("up");
    expectGolden("up-userspace.txt", s.runner.lines().join("\n") + "\n");
    expect(s.runner.children[0]!.argv).toEqual(["setpriv", "--pdeathsig", "TERM", "wireguard-go", "-f", "wg-egress"]);
    expect(s.runner.calls.find((c) => c.kind === "start")!.env).toMatchObject({ WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" });
  });

  test("empty host with the kernel module (golden argv)", async () => {
    const s = setup({ kernelWireguard: true });
    const r = await s.manager.up();
    expect(r.implementation).toBe("kernel");
    expect(r.pid).toBeNull();
    expectGolden("up-kernel.txt", s.runner.lines().join("\n") + "\n");
  });

  test("secrets go on stdin, never in argv", async () => {
    const s = setup();
    await s.manager.up();
    const setconf = s.runner.calls.find((c) => c.argv[1] === "setconf")!;
    expect(setconf.argv).toEqual(["wg", "setconf", "wg-egress", "/dev/stdin"]);
    expect(setconf.stdin).toContain("PrivateKey = ");
    for (const c of s.runner.calls) expect(c.argv.join(" ")).not.toContain("UD4zlLY");
  });

  test("up twice: the second is a reconcile pass that changes nothing", async () => {
    const s = setup();
    await upAndHealthy(s);
    const again = await s.manager.up();
    expect(again.changes).toEqual([]);
    expect(s.runner.mutations()).toEqual([]);
  });

  test("after a crash (stale rules, routes, table, interface of ours): converges without duplicates (golden)", async () => {
    const s = setup();
    s.makeHealthy(); // what a crashed run leaves behind
    s.state.rules[4].push({ priority: 5002, src: "all", fwmark: "0x1234", table: "51820", protocol: "212" }); // an old config's rule
    await s.manager.up();
    const mutations = s.runner.mutations();
    expect(mutations.filter((m) => m.includes(" rule add "))).toEqual([]);
    expect(mutations.filter((m) => m.includes(" route add "))).toEqual([]);
    expectGolden("up-after-crash.txt", mutations.join("\n") + "\n");
  });

  test("a failed step rolls back the finished ones in reverse (golden)", async () => {
    const s = setup();
    s.runner.on("nft -f -", { exitCode: 1, stderr: "Error: Could not process rule: No buffer space available" });
    const err = await s.manager.up().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostSetupError);
    expect((err as HostSetupError).step).toBe("applyFirewall");
    expect((err as HostSetupError).rollbackFailures).toEqual([]);
    expect(s.manager.status().state).toBe("down");
    expect(s.state.srcValidMark).toBe("0");
    expectGolden("up-rollback.txt", s.runner.mutations().join("\n") + "\n");
  });
});

describe("down", () => {
  test("removes exactly what we own, in reverse order (golden)", async () => {
    const s = setup();
    await upAndHealthy(s);
    await s.manager.down();
    expect(s.manager.status().state).toBe("down");
    expect(s.child()!.exitStatus).not.toBeNull();
    expect(s.state.srcValidMark).toBe("0");
    expectGolden("down.txt", s.runner.lines().join("\n") + "\n");
  });

  test("down twice: already gone is success", async () => {
    const s = setup();
    await upAndHealthy(s);
    await s.manager.down();
    s.runner.clear();
    await s.manager.down();
    expect(s.runner.mutations()).toEqual(["nft delete table inet egressd"]); // answered "No such file", counted as gone
  });

  test("leaves foreign routes and rules alone", async () => {
    const s = setup();
    s.makeHealthy();
    s.state.routes[4].push({ dst: "192.0.2.0/24", dev: "eth0", protocol: "static", scope: "link", flags: [] });
    await s.manager.down();
    expect(s.runner.mutations().some((m) => m.includes("192.0.2.0/24"))).toBe(false);
  });
});

describe("reconcile", () => {
  test("before up: HostNotUpError", async () => {
    await expect(setup().manager.reconcile()).rejects.toBeInstanceOf(HostNotUpError);
  });

  test("healthy host: only reads, twice", async () => {
    const s = setup();
    await upAndHealthy(s);
    expect((await s.manager.reconcile()).repairs).toEqual([]);
    expect((await s.manager.reconcile()).repairs).toEqual([]);
    expect(s.runner.mutations()).toEqual([]);
  });

  // Each row: a drift applied to a healthy host, and the repair that must follow. Golden: repairs.txt.
  const drifts: [string, (s: ReturnType<typeof setup>) => void, string[]][] = [
    ["nft delete table inet egressd", (s) => (s.state.nft = null), ["apply-ruleset"]],
    ["a rule added inside our table", (s) => (s.state.nft = nftJson({ extraRule: true })), ["apply-ruleset"]],
    ["ip rule del (the v4 fwmark suppress_prefixlength rule)", (s) => s.state.rules[4].splice(2, 1), ["add-rule"]],
    ["ip -6 rule del (the uidrange lookup rule)", (s) => s.state.rules[6].splice(5, 1), ["add-rule"]],
    ["ip rule del (WireGuard's own mark, trap 4)", (s) => s.state.rules[4].splice(1, 1), ["add-rule"]],
    ["ip route flush table 51820", (s) => (s.state.routes = { 4: [], 6: [] }), ["add-route", "add-route", "add-route", "add-route"]],
    ["a foreign route in our table", (s) => s.state.routes[4].push({ dst: "192.0.2.0/24", dev: "eth0", protocol: "boot", scope: "link", flags: [] }), ["delete-route"]],
    ["ip link del (interface gone)", (s) => (s.state.link = null), ["create-interface"]],
    ["changed peer endpoint", (s) => (s.state.dump = dumpText({ endpoint: "192.0.2.99:51820" })), ["set-endpoint"]],
    ["wg set fwmark 0 (trap 4)", (s) => (s.state.dump = dumpText({ fwmark: "off" })), ["configure-wireguard"]],
    ["ip link set mtu 1500", (s) => (s.state.link!.mtu = 1500), ["set-mtu"]],
    ["ip link set down", (s) => (s.state.link!.up = false), ["set-link-up"]],
    ["ip addr del the v6 address", (s) => (s.state.link!.addrs = [["10.100.0.2", 32, "inet"]]), ["add-address"]],
    ["src_valid_mark reset to 0", (s) => (s.state.srcValidMark = "0"), ["enable-src-valid-mark"]],
  ];

  test.each(drifts)("repairs: %s", async (_name, drift, actions) => {
    const s = setup();
    await upAndHealthy(s);
    drift(s);
    const result = await s.manager.reconcile();
    expect(result.repairs.map((r) => r.action)).toEqual(actions);
    expect(s.repairs.map((r) => r.action)).toEqual(actions);
    for (const r of result.repairs) expect(r.at).toBe(NOW);
  });

  test.each(drifts)("drift() reports without repairing: %s", async (_name, drift, actions) => {
    let resolved = 0;
    const s = setup({}, testSpec(), { resolve: async () => (resolved++, ["198.51.100.2"]) });
    await upAndHealthy(s);
    expect(await s.manager.drift()).toEqual([]);
    drift(s);
    const before = resolved;
    const seen = await s.manager.drift();
    expect(seen.map((d) => d.action)).toEqual(actions);
    expect(s.runner.mutations()).toEqual([]);
    expect(resolved).toBe(before);
    // What drift() reported is exactly what the next pass repairs, reason for reason.
    const { repairs } = await s.manager.reconcile();
    expect(repairs.map((r) => [r.component, r.action, r.reason])).toEqual(seen.map((d) => [d.component, d.action, d.reason]));
  });

  test("repair argv (golden)", async () => {
    let text = "";
    for (const [name, drift] of drifts) {
      const s = setup();
      await upAndHealthy(s);
      drift(s);
      const { repairs } = await s.manager.reconcile();
      text += `## ${name}\n${renderRepairs(repairs)}\n`;
    }
    expectGolden("repairs.txt", text);
  });

  test("a failed repair rolls back the pass and says what failed", async () => {
    const s = setup();
    await upAndHealthy(s);
    s.state.rules[4].splice(2, 1);
    s.state.nft = null;
    s.runner.on("nft -f -", { exitCode: 1, stderr: "Error: out of memory" });
    const err = await s.manager.reconcile().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReconcileError);
    const e = err as ReconcileError;
    expect(e.failed).toMatchObject({ component: "firewall", action: "apply-ruleset" });
    expect(e.rolledBack.map((r) => r.action)).toEqual(["add-rule"]);
    expect(s.runner.mutations().slice(-2)).toEqual([
      "nft -f -  <stdin " + s.runner.calls.find((c) => c.argv[0] === "nft" && c.argv[1] === "-f")!.stdin!.length + " bytes>",
      "ip -4 rule del priority 5001 fwmark 0xca6c lookup main suppress_prefixlength 0 protocol 212",
    ]);
    expect(s.manager.status().lastReconcileError).toContain("apply-ruleset");
    expect(s.repairs.map((r) => r.action)).toEqual(["add-rule"]); // reported as applied before the failure
  });

  test("a device that replaced ours is not touched: InterfaceConflictError", async () => {
    const s = setup();
    await upAndHealthy(s);
    s.state.link = link({ kind: "veth", alias: null });
    await expect(s.manager.reconcile()).rejects.toBeInstanceOf(InterfaceConflictError);
    expect(s.runner.mutations()).toEqual([]);
  });

  test("leak counter stays monotonic when the table is re-applied", async () => {
    const s = setup();
    await upAndHealthy(s);
    s.state.nft = nftJson({ packets: 5 });
    expect(await s.manager.leakCounter()).toEqual({ packets: 5, bytes: 300 });
    s.state.nft = nftJson({ packets: 5, extraRule: true }); // modified → re-applied → kernel counter restarts at 0
    await s.manager.reconcile();
    expect(await s.manager.leakCounter()).toEqual({ packets: 5, bytes: 300 });
  });
});

describe("endpoint re-resolution", () => {
  const dnsSpec = testSpec({ exit: { endpoint: "exit.example.net:51820" } });

  test("fresh handshake: no DNS query", async () => {
    let queries = 0;
    const s = setup({}, dnsSpec, { resolve: async () => (queries++, ["198.51.100.2"]), reresolveIntervalMs: 0 });
    await upAndHealthy(s);
    expect(queries).toBe(1); // at up
    await s.manager.reconcile();
    expect(queries).toBe(1);
  });

  test("handshake older than 135 s and the name moved: re-resolve and set the endpoint (golden)", async () => {
    const answers = [["198.51.100.2"], ["198.51.100.3"]];
    let clock = NOW;
    const s = setup({}, dnsSpec, { resolve: async () => answers.shift() ?? [], now: () => clock, reresolveIntervalMs: 30_000 });
    await upAndHealthy(s);
    clock = 1_700_000_000_000 + 136_000; // 136 s after the fixtures' handshake
    const { repairs } = await s.manager.reconcile();
    expect(repairs.map((r) => r.action)).toEqual(["reresolve-endpoint"]);
    expect(s.manager.status().resolvedEndpoints).toEqual(["198.51.100.3:51820"]);
    expectGolden("repair-reresolve.txt", renderRepairs(repairs));
    // Rate limited: the next pass (same stale handshake) does not query again.
    s.state.dump = dumpText({ endpoint: "198.51.100.3:51820" });
    expect((await s.manager.reconcile()).repairs).toEqual([]);
  });

  test("drift() never queries DNS: a stale handshake shows no drift until a pass re-resolves", async () => {
    const answers = [["198.51.100.2"], ["198.51.100.3"]];
    let queries = 0;
    let clock = NOW;
    const s = setup({}, dnsSpec, { resolve: async () => (queries++, answers.shift() ?? []), now: () => clock, reresolveIntervalMs: 0 });
    await upAndHealthy(s);
    clock = 1_700_000_000_000 + 136_000;
    expect(await s.manager.drift()).toEqual([]);
    expect(queries).toBe(1); // the one at up
    expect(s.manager.status().endpointReresolutions).toBe(0);
    expect((await s.manager.reconcile()).repairs.map((r) => r.action)).toEqual(["reresolve-endpoint"]);
    expect(queries).toBe(2);
  });

  test("resolution failure at up: the tunnel comes up without an endpoint and a later pass sets it", async () => {
    let fail = true;
    let clock = NOW;
    const s = setup({}, dnsSpec, { resolve: async () => (fail ? Promise.reject(new Error("SERVFAIL")) : ["198.51.100.2"]), now: () => clock });
    await s.manager.up();
    expect(s.runner.calls.find((c) => c.argv[1] === "setconf")!.stdin).not.toContain("Endpoint");
    expect(s.manager.status().resolveError).toContain("SERVFAIL");
    s.makeHealthy();
    s.state.dump = dumpText({ endpoint: "(none)", handshake: 0 });
    fail = false;
    clock += 31_000;
    const { repairs } = await s.manager.reconcile();
    expect(repairs.map((r) => r.action)).toEqual(["reresolve-endpoint"]);
    expect(s.manager.status().resolveError).toBeNull();
  });
});

describe("bad host states name the cause", () => {
  async function upError(s: ReturnType<typeof setup>): Promise<Error> {
    const err = await s.manager.up().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostSetupError);
    expect(s.runner.mutations()).toEqual([]); // nothing changed
    return (err as HostSetupError).cause as Error;
  }

  test.each([
    ["nft", "nftables"],
    ["wg", "wireguard-tools"],
    ["ip", "iproute2"],
  ])("no %s: MissingToolError names the Debian package", async (tool, pkg) => {
    const s = setup();
    s.runner.missing(tool);
    const cause = await upError(s);
    expect(cause).toBeInstanceOf(MissingToolError);
    expect((cause as MissingToolError).package).toBe(pkg);
    expect(cause.message).toContain(`install the Debian package "${pkg}"`);
  });

  test("no CAP_NET_ADMIN", async () => {
    const s = setup();
    s.runner.on("nft list tables", { exitCode: 1, stderr: "Operation not permitted (you must be root)" });
    const cause = await upError(s);
    expect(cause).toBeInstanceOf(MissingCapabilityError);
    expect(cause.message).toContain("CAP_NET_ADMIN");
  });

  test("interface name taken by a device that is not ours", async () => {
    const s = setup({ link: link({ kind: "veth", alias: null }) });
    const cause = await upError(s);
    expect(cause).toBeInstanceOf(InterfaceConflictError);
    expect(cause.message).toContain('interface "wg-egress" already exists and is not egressd\'s (kind veth');
  });

  test("route table already used by foreign routes", async () => {
    const s = setup({ routes: { 4: [{ dst: "10.0.0.0/8", dev: "eth1", protocol: "static", scope: "link", flags: [] }], 6: [] } });
    const cause = await upError(s);
    expect(cause).toBeInstanceOf(RouteTableConflictError);
    expect(cause.message).toContain("routing table 51820 is already used by routes egressd did not add (10.0.0.0/8 dev eth1 metric 0 proto static (IPv4))");
  });

  test("rule priority already used by a foreign rule", async () => {
    const s = setup({ rules: { 4: [{ priority: 5000, src: "all", table: "100" }], 6: [] } });
    expect(await upError(s)).toBeInstanceOf(RulePriorityConflictError);
  });

  test("implementation kernel without the module", async () => {
    const s = setup({}, testSpec({ interface: { implementation: "kernel" } }));
    const err = await s.manager.up().catch((e: unknown) => e);
    expect((err as HostSetupError).cause).toBeInstanceOf(WireGuardUnavailableError);
    expect(s.runner.children).toEqual([]);
  });

  test("auto without the module and without wireguard-go", async () => {
    const s = setup();
    s.runner.missing("wireguard-go");
    const err = await s.manager.up().catch((e: unknown) => e);
    const cause = (err as HostSetupError).cause as Error;
    expect(cause).toBeInstanceOf(WireGuardUnavailableError);
    expect(cause.message).toContain("the kernel has no WireGuard module and wireguard-go is not installed (Debian package wireguard-go)");
  });

  test("uid 0 is refused before anything runs", () => {
    expect(() => setup({}, testSpec({ uid: 0 }))).toThrow(UnsafeUidError);
  });
});

test("fixtures are what real routes look like", () => {
  expect(HEALTHY_ROUTES(4)[1]).toMatchObject({ type: "unreachable", dst: "default" });
});

describe("the parts list", () => {
  test("one ordered list: up builds it in order, down removes it in reverse", async () => {
    const host = fakeHost();
    const parts = buildParts([validateSpec(testSpec())], { ctx: { runner: host.runner, log: silentLogger, now: () => NOW, families: () => [4, 6] }, sysctl: host.sysctl });
    expect(parts.ordered.map((p) => [p.name, p.steps.add, p.steps.remove])).toEqual([
      ["sysctl", "enableSrcValidMark", "restoreSrcValidMark"],
      ["interface", "addInterface", "removeInterface"],
      ["routes", "addRoutes", "removeRoutes"],
      ["rules", "addPolicyRules", "removePolicyRules"],
      ["firewall", "applyFirewall", "removeFirewall"],
    ]);
    expect(parts.exits).toHaveLength(1);
    expect(parts.ordered).toContain(parts.exits[0]!.interface);
  });

  test("several exits: each exit's parts named after it, then the shared table, the rules and one firewall", () => {
    const host = fakeHost();
    const layout = validateExits(twoExitSpec());
    const parts = buildParts(layout.exits, { ctx: { runner: host.runner, log: silentLogger, now: () => NOW, families: () => [4] }, sysctl: host.sysctl, shared: layout.shared });
    expect(parts.ordered.map((p) => [p.name, p.exit ?? null])).toEqual([
      ["sysctl", null],
      ["interface:hetzner", "hetzner"],
      ["routes:hetzner", "hetzner"],
      ["interface:ovh", "ovh"],
      ["routes:ovh", "ovh"],
      ["routes:active", null],
      ["rules", null],
      ["firewall", null],
    ]);
    expect(parts.firewall.ruleset).toContain('oifname { "lo", "wg-egress-0", "wg-egress-1" } accept');
  });

  test("several exits need the shared spec", () => {
    const host = fakeHost();
    const layout = validateExits(twoExitSpec());
    expect(() => buildParts(layout.exits, { ctx: { runner: host.runner, log: silentLogger, now: () => NOW, families: () => [4] }, sysctl: host.sysctl })).toThrow("shared spec");
  });
});
