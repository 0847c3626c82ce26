/**
 * The lab options `egressd demo` and the e2e suite use: a private /run/wireguard (the host's is not
 * touched; the lab's processes share the sockets), the home router's NAT, caller-supplied keys, and
 * an exit left for the caller to configure.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createLab, labUnsupported, type Lab, planLab } from "./index.ts";

const skip = labUnsupported();

describe("planLab: homeNat", () => {
  test("off by default; on, one nft step masquerading the LAN prefix out of gw's WAN", () => {
    expect(planLab({ pid: 1 }).steps.some((s) => s.name === "home NAT")).toBe(false);
    const nat = planLab({ pid: 1, homeNat: true }).steps.filter((s) => s.name === "home NAT");
    expect(nat.length).toBe(1);
    expect(nat[0]!.argv).toEqual(["ip", "netns", "exec", "egt-1-0-gw", "nft", "-f", "-"]);
    expect(nat[0]!.stdin).toContain('ip saddr 10.1.0.0/24 oifname "wan" masquerade');
  });
});

describe("planLab: the silent host", () => {
  test("an address of inet whose packets inet's input hook drops, v4 and v6", () => {
    const p = planLab({ pid: 1 });
    const addrs = p.steps.filter((s) => s.argv.includes("address") && s.argv.includes("lo") && s.argv.includes("egt-1-0-inet")).map((s) => s.argv[5]);
    expect(addrs).toContain("203.0.113.11/32");
    expect(addrs).toContain("2001:db8:3::11/128");
    const drop = p.steps.filter((s) => s.name === "silent host");
    expect(drop.length).toBe(1);
    expect(drop[0]!.argv).toEqual(["ip", "netns", "exec", "egt-1-0-inet", "nft", "-f", "-"]);
    expect(drop[0]!.stdin).toContain("type filter hook input priority filter");
    expect(drop[0]!.stdin).toContain("ip daddr 203.0.113.11 drop");
    expect(drop[0]!.stdin).toContain("ip6 daddr 2001:db8:3::11 drop");
  });
});

describe.skipIf(skip !== null)("createLab options", () => {
  const runDir = "/run/wireguard";
  const snapshot = () => (existsSync(runDir) ? { mode: statSync(runDir).mode & 0o7777, entries: readdirSync(runDir).sort() } : null);
  let before: ReturnType<typeof snapshot>;
  let lab: Lab;
  const keys = { exit: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", gateway: "GHuMjHs8y4ggqMXnVnBbAj1r7RW1vKy+6mg8fhfRN0w=" };

  beforeAll(async () => {
    before = snapshot();
    lab = await createLab({ prefix: "eglabopt", wireguardDir: "private", homeNat: true, keys, configureExit: false });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  test("private /run/wireguard: the lab's processes share it; the host's is untouched", async () => {
    const exitSock = `${lab.plan.ifs.exitWg}.sock`;
    const fromGw = await lab.exec(lab.ns.gw, ["ls", runDir], { uid: lab.uid });
    expect(fromGw.stdout.split("\n")).toContain(exitSock);
    const mnt = await lab.exec(lab.ns.client, ["grep", ` ${runDir} `, "/proc/self/mountinfo"]);
    expect(mnt.stdout).toMatch(/ tmpfs egressd-lab .*uid=64000/);
    expect(existsSync(`${runDir}/${exitSock}`)).toBe(false);
    // Other labs may come and go meanwhile; what matters is that nothing of this one is there.
    const now = snapshot();
    // Absent before, it may now be the lab's mount point: created 0755, never chmodded.
    expect(now?.mode ?? null).toBe(before?.mode ?? (now === null ? null : 0o755));
    expect(now?.entries.filter((e) => e.startsWith(lab.plan.ifs.exitWg.slice(0, -1))) ?? []).toEqual([]);
  });

  test("keys: the supplied ones are used; configureExit false leaves the exit without key or peer", async () => {
    const pub = Bun.spawn(["wg", "pubkey"], { stdin: new TextEncoder().encode(keys.exit), stdout: "pipe" });
    expect(lab.exit.publicKey).toBe((await new Response(pub.stdout).text()).trim());
    expect(await Bun.file(lab.gateway.privateKeyFile).text()).toBe(keys.gateway + "\n");
    const dump = await lab.exec(lab.ns.exit, ["wg", "show", lab.plan.ifs.exitWg, "dump"]);
    expect(dump.exitCode).toBe(0);
    expect(dump.stdout.trim().split("\n")).toHaveLength(1); // the interface line, no peer
    expect(dump.stdout.split("\t")[0]).toBe("(none)"); // no private key
  });

  test("home NAT: the client reaches the internet host directly, as the home address", async () => {
    await lab.startEchoServer(8080);
    const r = await lab.exec(lab.ns.client, ["ncat", "--recv-only", "-w", "2", lab.addr.host4, "8080"]);
    expect(r.stdout.trim()).toBe(lab.addr.gwWan4);
  });

  test("the silent host: a connect to it times out, where one to an unused address fails at once", async () => {
    // From gw, which has v4 and v6 routes to inet. ncat exits on its own 2 s connect timeout; a refused or unreachable port fails in milliseconds.
    const silent = await lab.exec(lab.ns.gw, ["ncat", "-w", "2", "--recv-only", lab.addr.silent4, "80"]);
    expect(silent.stderr).toContain("TIMEOUT");
    const silent6 = await lab.exec(lab.ns.gw, ["ncat", "-w", "2", "--recv-only", lab.addr.silent6, "80"]);
    expect(silent6.stderr).toContain("TIMEOUT");
    // The contrast: the same from an address inet has no route for is answered (not swallowed), and
    // a closed port of the live host is refused.
    const unused = await lab.exec(lab.ns.gw, ["ncat", "-w", "2", "--recv-only", "203.0.113.12", "80"]);
    expect(unused.exitCode).not.toBe(0);
    expect(unused.stderr).not.toContain("TIMEOUT");
    expect(unused.stderr).toMatch(/No route to host|unreachable/i); // answered, not a failure of any other kind
    const closed = await lab.exec(lab.ns.gw, ["ncat", "-w", "2", "--recv-only", lab.addr.host4, "81"]);
    expect(closed.stderr).toContain("Connection refused");
  });

  test("destroy: no namespace is left, and the host's /run/wireguard is as before", async () => {
    await lab.destroy();
    const list = await new Response(Bun.spawn(["ip", "netns", "list"], { stdout: "pipe" }).stdout).text();
    expect(list).not.toContain(lab.plan.id);
    expect(snapshot()?.mode ?? null).toBe(before?.mode ?? null);
  });
});
