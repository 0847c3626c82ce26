/** The one rollback mechanism: changes and deferred undos share one stack, undone newest first. */
import { describe, expect, test } from "bun:test";
import type { Change } from "../../lib/host/change.ts";
import { Transaction } from "../../lib/host/transaction.ts";
import type { Logger } from "../../lib/log/logger.ts";
import { FakeRunner } from "../exec/fake.ts";

function change(action: string, log: string[], opts: { undo?: boolean; undoFails?: boolean } = {}): Change {
  return {
    component: "routes",
    action,
    reason: `${action} needed`,
    apply: async (r) => {
      await r.run(["ip", action]);
      log.push(`apply ${action}`);
    },
    undo:
      opts.undo === false
        ? undefined
        : async (r) => {
            await r.run(["ip", `undo-${action}`]);
            if (opts.undoFails) throw new Error(`undo ${action} broke`);
            log.push(`undo ${action}`);
          },
  };
}

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  const log = { debugEnabled: false, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") } as unknown as Logger;
  return { log, lines };
}

describe("Transaction", () => {
  test("changes and deferred undos are undone together, newest first, through the same runner", async () => {
    const log: string[] = [];
    const runner = new FakeRunner();
    const tx = new Transaction({ runner, now: () => 7 });
    await tx.apply(change("a", log));
    tx.defer("step b", async () => {
      log.push("undo b");
    });
    await tx.apply(change("c", log));
    expect(tx.repairs.map((r) => [r.action, r.commands, r.at])).toEqual([
      ["a", [["ip", "a"]], 7],
      ["c", [["ip", "c"]], 7],
    ]);
    expect(await tx.rollback()).toEqual([]);
    expect(log).toEqual(["apply a", "apply c", "undo c", "undo b", "undo a"]);
    expect(runner.lines()).toEqual(["ip a", "ip c", "ip undo-c", "ip undo-a"]);
    expect(tx.repairs).toEqual([]);
    expect(await tx.rollback()).toEqual([]); // nothing left to undo
  });

  test("rollback continues past failed undos and returns each, named", async () => {
    const log: string[] = [];
    const { log: logger, lines } = recordingLog();
    const tx = new Transaction({ runner: new FakeRunner(), log: logger });
    await tx.apply(change("a", log));
    await tx.apply(change("b", log, { undoFails: true }));
    tx.defer("reload proxy", async () => Promise.reject(new Error("proxy refused")));
    const failures = await tx.rollback();
    expect(failures.map((f) => [f.step, f.error.message])).toEqual([
      ["reload proxy", "proxy refused"],
      ["routes/b", "undo b broke"],
    ]);
    expect(log).toEqual(["apply a", "apply b", "undo a"]);
    expect(lines.filter((l) => l.startsWith("error undo failed"))).toHaveLength(2);
  });

  test("a change without an undo is left in place with a warning, and the rest is still undone", async () => {
    const log: string[] = [];
    const { log: logger, lines } = recordingLog();
    const tx = new Transaction({ runner: new FakeRunner(), log: logger });
    await tx.apply(change("a", log));
    await tx.apply(change("setconf", log, { undo: false }));
    expect(await tx.rollback()).toEqual([]);
    expect(log).toEqual(["apply a", "apply setconf", "undo a"]);
    expect(lines.some((l) => l.startsWith("warn change cannot be undone") && l.includes("routes/setconf"))).toBe(true);
  });

  test("a change that throws is not stacked", async () => {
    const log: string[] = [];
    const tx = new Transaction({ runner: new FakeRunner() });
    const broken: Change = { component: "routes", action: "x", reason: "x", apply: async () => Promise.reject(new Error("x broke")), undo: async () => void log.push("undo x") };
    await expect(tx.apply(broken)).rejects.toThrow("x broke");
    expect(await tx.rollback()).toEqual([]);
    expect(log).toEqual([]);
  });

  test("without a runner only defer may be used", async () => {
    const tx = new Transaction();
    await expect(tx.apply(change("a", []))).rejects.toThrow("needs a runner");
  });
});
