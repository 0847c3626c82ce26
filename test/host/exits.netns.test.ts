/**
 * Two exits against the real kernel: wg/ip/nft in the lab with a second VPS namespace (`exits: 2`).
 *
 * The "daemon" is this process driving HostManager as uid 64000 with CAP_NET_ADMIN in the gateway
 * namespace, as in netns.test.ts. Exit A (`lab-exit`) shows up at the internet host as 198.51.100.2,
 * exit B (`lab-exit2`) as 203.0.113.130, the home connection as 192.0.2.2. A "pinned" connection is
 * one bound to an exit's tunnel address (`ncat -s`), which is what a pinned listener or user does.
 *
 * Tests run in order and share one lab; each leaves the host as the next expects.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Repair } from "../../lib/host/change.ts";
import { HostManager } from "../../lib/host/manager.ts";
import { createLab, labUnsupported, waitUntil, type Lab } from "../lab/index.ts";
import { dropWireguardUdp, linesWithPort } from "../lab/outage.ts";

const skip = labUnsupported();
let lab: Lab;
let baseline = "";
let host: HostManager;
const repairs: Repair[] = [];
const MARKED_PORT = 8080;
const CONTROL_PORT = 8081;
const A = { name: "lab-exit", wan: "198.51.100.2", tunnel: "10.100.0.2" };
const B = { name: "lab-exit2", wan: "203.0.113.130", tunnel: "10.100.1.2" };
const filter = `tcp and host 203.0.113.10 and (port ${MARKED_PORT} or port ${CONTROL_PORT})`;

beforeAll(async () => {
  if (skip !== null) return;
  lab = await createLab({ exits: 2 });
  await lab.startEchoServer(MARKED_PORT);
  await lab.startEchoServer(CONTROL_PORT);
  baseline = await snapshot();
});

afterAll(async () => {
  await host?.down().catch(() => undefined);
  await lab?.destroy();
});

function gw(...argv: string[]) {
  return lab.exec(lab.ns.gw, argv);
}

/** Connects to the internet host's echo server as the marked uid (or the unmarked control), optionally from `source`. */
function connect(o: { marked: boolean; source?: string; wait?: number }) {
  const argv = ["ncat", "--recv-only", "-w", String(o.wait ?? 2), ...(o.source ? ["-s", o.source] : []), lab.addr.host4, String(o.marked ? MARKED_PORT : CONTROL_PORT)];
  return lab.exec(lab.ns.gw, argv, { uid: o.marked ? lab.uid : lab.uid + 1, timeoutMs: 10_000 });
}

async function seen(o: { marked: boolean; source?: string }): Promise<string> {
  return (await connect(o)).stdout.trim();
}

async function snapshot(): Promise<string> {
  const parts = await Promise.all([
    gw("ip", "-4", "rule", "show"),
    gw("ip", "-6", "rule", "show"),
    gw("ip", "-4", "route", "show", "table", "all"),
    gw("ip", "-6", "route", "show", "table", "all"),
    gw("nft", "list", "ruleset"),
    gw("ip", "-br", "link", "show"),
  ]);
  return parts.map((p) => p.stdout).join("---\n");
}

describe.skipIf(skip !== null)("two exits in namespaces", () => {
  test("up: new connections leave by the first exit; a socket bound to an exit's address leaves by that exit", async () => {
    const as = { uid: lab.uid, netAdmin: true };
    host = new HostManager(lab.exitsSpec(), { runner: lab.runner(lab.ns.gw, as), sysctl: lab.sysctl(lab.ns.gw, as), onRepair: (r) => repairs.push(r) });
    await host.up();
    expect(host.active).toBe(A.name);
    await waitUntil(async () => (await seen({ marked: true })) === A.wan, 10_000, "marked traffic through exit A");
    await waitUntil(async () => (await seen({ marked: true, source: B.tunnel })) === B.wan, 10_000, "pinned traffic through exit B");
    expect(await seen({ marked: true, source: A.tunnel })).toBe(A.wan);
    expect(await seen({ marked: false })).toBe(lab.addr.gwWan4);
    expect(await host.drift()).toEqual([]);
    const s = host.status();
    expect(s.exits.map((e) => [e.name, e.interface, e.table])).toEqual([
      [A.name, lab.exits[0]!.gatewayWg, 51821],
      [B.name, lab.exits[1]!.gatewayWg, 51822],
    ]);
  }, 60_000);

  test("setActive: new connections move to B with one replace per family; pinned ones keep their exit", async () => {
    const done = await host.setActive(B.name);
    expect(done.map((r) => `${r.component}/${r.action}`)).toEqual(["routes/switch-route", "routes/switch-route"]);
    expect(done.flatMap((r) => r.commands.map((c) => c.slice(0, 4).join(" ")))).toEqual(["ip -4 route replace", "ip -6 route replace"]);
    expect(await seen({ marked: true })).toBe(B.wan);
    expect(await seen({ marked: true, source: A.tunnel })).toBe(A.wan);
    expect(await host.drift()).toEqual([]); // the reconcile loop keeps the choice, it does not undo it
    expect((await host.reconcile()).repairs).toEqual([]);
  }, 30_000);

  test("exit A's UDP dropped: a connection pinned to A fails, never another exit or home; WAN shows none", async () => {
    const cap = await lab.capture(lab.ns.gw, "wan", filter);
    await dropWireguardUdp(lab, lab.exits[0]!.ns, true);
    try {
      const r = await connect({ marked: true, source: A.tunnel, wait: 2 });
      expect(r.exitCode).not.toBe(0);
      expect(r.stdout.trim()).toBe("");
      expect(await seen({ marked: true })).toBe(B.wan); // the active exit is unaffected
      expect(await seen({ marked: false })).toBe(lab.addr.gwWan4); // positive control
    } finally {
      await dropWireguardUdp(lab, lab.exits[0]!.ns, false);
    }
    const { lines } = await cap.stop();
    expect(linesWithPort(lines, MARKED_PORT)).toEqual([]);
    expect(linesWithPort(lines, CONTROL_PORT).length).toBeGreaterThan(0);
    expect(await host.drift()).toEqual([]); // an outage beyond the gateway is not host drift: health is the daemon's job
    await waitUntil(async () => (await seen({ marked: true, source: A.tunnel })) === A.wan, 15_000, "exit A back");
  }, 60_000);

  test("no exit active and both exits' UDP dropped: every connection fails at once or times out; WAN shows none", async () => {
    await host.setActive(null);
    const cap = await lab.capture(lab.ns.gw, "wan", filter);
    await dropWireguardUdp(lab, lab.exits[0]!.ns, true);
    await dropWireguardUdp(lab, lab.exits[1]!.ns, true);
    try {
      for (const source of [undefined, A.tunnel, B.tunnel]) {
        const r = await connect({ marked: true, source, wait: 1 });
        expect({ source, code: r.exitCode === 0, out: r.stdout.trim() }).toEqual({ source, code: false, out: "" });
      }
      const unpinned = await connect({ marked: true });
      expect(unpinned.stderr).toContain("No route to host"); // the shared table holds only the unreachable default
      expect(await seen({ marked: false })).toBe(lab.addr.gwWan4);
    } finally {
      await dropWireguardUdp(lab, lab.exits[0]!.ns, false);
      await dropWireguardUdp(lab, lab.exits[1]!.ns, false);
    }
    const { lines } = await cap.stop();
    expect(linesWithPort(lines, MARKED_PORT)).toEqual([]);
    expect(linesWithPort(lines, CONTROL_PORT).length).toBeGreaterThan(0);
    expect(await host.drift()).toEqual([]);
    await host.setActive(A.name);
    await waitUntil(async () => (await seen({ marked: true })) === A.wan, 15_000, "exit A active again");
  }, 60_000);

  test("reconcile repairs one exit's deleted interface without touching the other exit", async () => {
    repairs.length = 0;
    await gw("ip", "link", "del", lab.exits[1]!.gatewayWg);
    const drift = await host.drift();
    expect(drift.every((d) => d.exit === B.name)).toBe(true);
    const { repairs: done } = await host.reconcile();
    expect(done.map((r) => `${r.exit}:${r.component}/${r.action}`)).toEqual([
      `${B.name}:interface/create-interface`,
      `${B.name}:routes/add-route`,
      `${B.name}:routes/add-route`,
    ]);
    expect(await seen({ marked: true })).toBe(A.wan);
    await waitUntil(async () => (await seen({ marked: true, source: B.tunnel })) === B.wan, 15_000, "exit B back");
  }, 60_000);

  test("down removes both exits' interfaces, tables, rules and the one nft table", async () => {
    await host.down();
    expect(await snapshot()).toBe(baseline);
  }, 30_000);
});
