import { describe, expect, test } from "bun:test";
import { FakeRunner } from "../exec/fake.ts";
import { ReconcileError } from "../../lib/host/errors.ts";
import { runPass, startReconcileLoop, type ReconcileResult } from "../../lib/host/reconcile.ts";
import { Transaction } from "../../lib/host/transaction.ts";
import type { Change } from "../../lib/host/change.ts";
import { procSysctl, SysctlError } from "../../lib/host/sysctl.ts";
import { mkdtemp, mkdir, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

function change(action: string, log: string[], fail = false): Change {
  return {
    component: "rules",
    action,
    reason: `${action} needed`,
    apply: async (r) => {
      await r.run(["ip", action]);
      if (fail) throw new Error(`${action} broke`);
      log.push(`apply ${action}`);
    },
    undo: async () => {
      log.push(`undo ${action}`);
    },
  };
}

describe("runPass", () => {
  test("applies planned changes in component order and records their commands", async () => {
    const log: string[] = [];
    const seen: string[] = [];
    const r = await runPass(
      [
        { name: "interface", plan: async () => [change("a", log)] },
        { name: "rules", plan: async () => [change("b", log), change("c", log)] },
      ],
      new FakeRunner(),
      { now: () => 42, onRepair: (x) => seen.push(x.action) },
    );
    expect(r.repairs.map((x) => [x.action, x.commands, x.at])).toEqual([
      ["a", [["ip", "a"]], 42],
      ["b", [["ip", "b"]], 42],
      ["c", [["ip", "c"]], 42],
    ]);
    expect(seen).toEqual(["a", "b", "c"]);
  });

  test("a failing change rolls back the pass in reverse order", async () => {
    const log: string[] = [];
    const err = await runPass([{ name: "rules", plan: async () => [change("a", log), change("b", log), change("c", log, true)] }], new FakeRunner()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReconcileError);
    expect((err as ReconcileError).failed.action).toBe("c");
    expect((err as ReconcileError).rolledBack.map((x) => x.action)).toEqual(["a", "b"]);
    expect(((err as Error).cause as Error).message).toBe("c broke");
    expect(log).toEqual(["apply a", "apply b", "undo b", "undo a"]);
  });

  test("a planning error also rolls back what the pass already applied", async () => {
    const log: string[] = [];
    const err = await runPass(
      [
        { name: "interface", plan: async () => [change("a", log)] },
        { name: "rules", plan: async () => Promise.reject(new Error("ip -j failed")) },
      ],
      new FakeRunner(),
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe("ip -j failed");
    expect(log).toEqual(["apply a", "undo a"]);
  });

  test("Transaction.applyAll rethrows the change's own error after rolling back", async () => {
    const log: string[] = [];
    const tx = new Transaction({ runner: new FakeRunner() });
    await expect(tx.applyAll([change("a", log), change("b", log, true)])).rejects.toThrow("b broke");
    expect(log).toEqual(["apply a", "undo a"]);
  });
});

describe("startReconcileLoop", () => {
  test("runs on the interval, never overlaps, keeps going after errors, triggers on demand, stops", async () => {
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const errors: unknown[] = [];
    const target = {
      async reconcile(): Promise<ReconcileResult> {
        calls++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await Bun.sleep(15);
        running--;
        if (calls === 2) throw new Error("transient");
        return { repairs: [], durationMs: 15 };
      },
    };
    const loop = startReconcileLoop(target, { intervalMs: 10, onError: (e) => errors.push(e) });
    const manual = loop.trigger();
    await Bun.sleep(150);
    await manual.catch(() => undefined);
    await loop.stop();
    const after = calls;
    await Bun.sleep(50);
    expect(calls).toBe(after);
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(maxRunning).toBe(1);
    expect(errors.length).toBeLessThanOrEqual(1);
  });
});

describe("procSysctl", () => {
  test("reads and writes dotted keys under /proc/sys; failures name the key and the fix", async () => {
    const root = await mkdtemp(join(tmpdir(), "egt-sysctl-"));
    try {
      await mkdir(join(root, "net/ipv4/conf/all"), { recursive: true });
      await writeFile(join(root, "net/ipv4/conf/all/src_valid_mark"), "0\n");
      const s = procSysctl(root);
      expect(await s.read("net.ipv4.conf.all.src_valid_mark")).toBe("0");
      await s.write("net.ipv4.conf.all.src_valid_mark", "1");
      expect(await s.read("net.ipv4.conf.all.src_valid_mark")).toBe("1");
      const err = await s.read("net.ipv4.conf.all.nope").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SysctlError);
      expect((err as SysctlError).key).toBe("net.ipv4.conf.all.nope");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
