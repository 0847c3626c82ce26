/** The harness itself: topology, uid/capability exec, captures, cleanup. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { cleanupStaleLabs, createLab, labUnsupported, type Lab } from "./index.ts";

const skip = labUnsupported();
let lab: Lab;
const runDirMode = () => (existsSync("/run/wireguard") ? statSync("/run/wireguard").mode & 0o7777 : null);
let runDirBefore: number | null;

beforeAll(async () => {
  if (skip === null) {
    runDirBefore = runDirMode();
    lab = await createLab();
    await lab.startEchoServer(8080);
  }
});
afterAll(async () => {
  await lab?.destroy();
});

describe.skipIf(skip !== null)("lab", () => {
  // Regression: the default lab made the host's /run/wireguard mode 1777, so that any local user
  // could plant a socket that root's `wg` would then talk to.
  test("the default lab leaves the host's /run/wireguard mode alone", () => {
    // Absent before, it may now be the lab's mount point: created 0755, never chmodded.
    expect(runDirMode()).toBe(runDirBefore ?? (runDirMode() === null ? null : 0o755));
    expect(runDirMode() === null || (runDirMode()! & 0o002) === 0).toBe(true); // not world-writable
  });

  test("without egressd, gw reaches the internet host from its home address and the exit from its own", async () => {
    const gw = await lab.exec(lab.ns.gw, ["ncat", "--recv-only", "-w", "2", lab.addr.host4, "8080"], { uid: lab.uid });
    expect(gw.stdout.trim()).toBe(lab.addr.gwWan4);
    const gw6 = await lab.exec(lab.ns.gw, ["ncat", "--recv-only", "-w", "2", lab.addr.host6, "8080"], { uid: lab.uid });
    expect(gw6.stdout.trim()).toBe(lab.addr.gwWan6);
    const exit = await lab.exec(lab.ns.exit, ["ncat", "--recv-only", "-w", "2", lab.addr.host4, "8080"]);
    expect(exit.stdout.trim()).toBe(lab.addr.exitWan4);
  });

  test("exec as a uid, with and without ambient CAP_NET_ADMIN", async () => {
    expect((await lab.exec(lab.ns.gw, ["id", "-u"], { uid: lab.uid })).stdout.trim()).toBe(String(lab.uid));
    const amb = (opts: { uid: number; netAdmin?: boolean }) => lab.exec(lab.ns.gw, ["grep", "CapAmb", "/proc/self/status"], opts);
    expect((await amb({ uid: lab.uid, netAdmin: true })).stdout).toContain("0000000000001000"); // bit 12 = CAP_NET_ADMIN
    expect((await amb({ uid: lab.uid })).stdout).toContain("0000000000000000");
  });

  test("capture counts packets, and sees none when there are none", async () => {
    const cap = await lab.capture(lab.ns.gw, "wan", "tcp port 8080");
    const none = await cap.stop();
    expect(none.lines).toEqual([]);
    const cap2 = await lab.capture(lab.ns.gw, "wan", "tcp port 8080");
    await lab.exec(lab.ns.gw, ["ncat", "--recv-only", "-w", "2", lab.addr.host4, "8080"]);
    expect((await cap2.stop()).count).toBeGreaterThan(0);
  });

  test("the exit's WireGuard is up and listening", async () => {
    const dump = await lab.exec(lab.ns.exit, ["wg", "show", lab.plan.ifs.exitWg, "dump"]);
    expect(dump.stdout.split("\n")[0]!.split("\t")[2]).toBe(String(lab.exit.port));
  });

  test("stale labs (creator pid gone) are removed, live ones are not", async () => {
    const dead = "egt-4194304-0-gw"; // pid above pid_max: never alive
    const run = (argv: string[]) => Bun.spawn(argv).exited;
    await run(["ip", "netns", "add", dead]);
    const removed = await cleanupStaleLabs("egt");
    expect(removed).toContain(dead);
    expect(removed).not.toContain(lab.ns.gw);
  });

  test("destroy removes namespaces and stops what it started", async () => {
    const other = await createLab({ cleanupStale: false });
    const sleeper = other.spawn(other.ns.inet, ["sleep", "300"]);
    await other.destroy();
    expect(sleeper.exitStatus).not.toBeNull();
    const list = await new Response(Bun.spawn(["ip", "netns", "list"]).stdout).text();
    for (const n of Object.values(other.ns)) expect(list).not.toContain(n);
    await other.destroy(); // idempotent
  });
});
