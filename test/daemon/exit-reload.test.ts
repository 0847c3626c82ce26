/**
 * The daemon's side of a reload that changes the exits (lib/daemon/exit-reload.ts), against a
 * recording host: when the host is asked, that the failover loop is stopped meanwhile, and that the
 * reload's rollback puts the old exits back and restarts the loop.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../lib/config/load.ts";
import type { Config } from "../../lib/config/schema.ts";
import { exitsDiffer, reloadExits } from "../../lib/daemon/exit-reload.ts";
import { ExitChangeRefusedError } from "../../lib/host/errors.ts";
import type { HostSpec } from "../../lib/host/spec.ts";
import { Transaction } from "../../lib/host/transaction.ts";
import { EXIT_PUBLIC_KEY, minimalConfig } from "../config/fixtures.ts";

const NO_FILES = { checkFiles: false } as const;
const KEY2 = "XQY2+iq1v2dtKDyqMZq5s3Y2dxXCBiMiHKa/9biuUH4=";
const KEY3 = "WvOH+8vncxLmr3QUk3Ej7QVXgFKlSU6T/MVaj1ep0lU=";

function withExits(n: 2 | 3): Config {
  const c = minimalConfig() as Record<string, any>;
  delete c.exit;
  delete c.interface.addresses;
  c.exits = [
    { name: "hetzner", publicKey: EXIT_PUBLIC_KEY, endpoint: "198.51.100.2:51820", addresses: ["10.100.0.2/32"] },
    { name: "ovh", publicKey: KEY2, endpoint: "198.51.100.3:51820", addresses: ["10.100.1.2/32"] },
    { name: "scw", publicKey: KEY3, endpoint: "198.51.100.4:51820", addresses: ["10.100.2.2/32"] },
  ].slice(0, n);
  return parseConfig(c, NO_FILES);
}

function recorder(opts: { refuse?: boolean } = {}) {
  const calls: string[] = [];
  const host = {
    async changeExits(spec: HostSpec) {
      calls.push(`changeExits ${spec.exits!.map((e) => e.exit.name).join(",")}`);
      if (opts.refuse) throw new ExitChangeRefusedError('exits: removing the active exit "scw" (exits[2]) is refused');
      return { added: [], removed: spec.exits!.length === 2 ? ["scw"] : [], changes: [] };
    },
  };
  const loop = {
    start: () => void calls.push("loop start"),
    stop: async () => void calls.push("loop stop"),
  };
  return { host, loop, calls };
}

describe("reloadExits", () => {
  test("exits unchanged: nothing is asked, the loop keeps running", async () => {
    const r = recorder();
    const undo = new Transaction();
    expect(exitsDiffer(withExits(2), withExits(2))).toBe(false);
    expect(await reloadExits(r.host, { old: withExits(2), next: withExits(2) }, { uid: 64000, undo, failover: r.loop })).toBe(false);
    expect(r.calls).toEqual([]);
  });

  test("an exit appended: the loop stops, the host changes; a later failure of the reload puts the old exits back and restarts the loop", async () => {
    const r = recorder();
    const undo = new Transaction();
    expect(await reloadExits(r.host, { old: withExits(2), next: withExits(3) }, { uid: 64000, undo, failover: r.loop })).toBe(true);
    expect(r.calls).toEqual(["loop stop", "changeExits hetzner,ovh,scw"]);
    await undo.rollback();
    expect(r.calls.slice(2)).toEqual(["changeExits hetzner,ovh", "loop start"]);
  });

  test("removing an exit resets the connections from its addresses, by name", async () => {
    const r = recorder();
    const resets: string[] = [];
    await reloadExits(r.host, { old: withExits(3), next: withExits(2) }, { uid: 64000, undo: new Transaction(), failover: r.loop, reset: (from, why) => (resets.push(`${from.join(",")}: ${why}`), 2) });
    expect(resets).toEqual(["10.100.2.2: exit scw was removed by a reload"]);
  });

  test("a refusal throws with the reason; the rollback restarts the loop and asks the host nothing more", async () => {
    const r = recorder({ refuse: true });
    const undo = new Transaction();
    const err = await reloadExits(r.host, { old: withExits(3), next: withExits(2) }, { uid: 64000, undo, failover: r.loop }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitChangeRefusedError);
    await undo.rollback();
    expect(r.calls).toEqual(["loop stop", "changeExits hetzner,ovh", "loop start"]);
  });

  test("an exit still pinned by a listener or a user of the new config cannot be removed: the config itself is refused, naming the pin", () => {
    const base = () => {
      const c = minimalConfig();
      delete c.exit;
      delete c.interface.addresses;
      c.exits = [
        { name: "hetzner", publicKey: EXIT_PUBLIC_KEY, endpoint: "198.51.100.2:51820", addresses: ["10.100.0.2/32"] },
        { name: "ovh", publicKey: KEY2, endpoint: "198.51.100.3:51820", addresses: ["10.100.1.2/32"] },
      ];
      return c;
    };
    const listener = base();
    listener.proxy = { listen: ["10.1.0.1:1080", "10.1.0.1:1081"] };
    listener.proxy.pinnedListeners = { "10.1.0.1:1081": "scw" };
    expect(() => parseConfig(listener, NO_FILES)).toThrow(/proxy\.pinnedListeners.*is not the name of an exit \(hetzner, ovh\)/s);
    const user = base();
    user.proxy = {};
    user.proxy.auth = { users: [{ username: "bot", passwordFile: "/etc/egressd/bot.pw", exit: "scw" }] };
    expect(() => parseConfig(user, NO_FILES)).toThrow(/proxy\.auth\.users\[0\]\.exit.*is not the name of an exit \(hetzner, ovh\)/s);
  });
});
