/**
 * `egressd status`, `reload` and `check` with `--config FILE`: they find a control socket that
 * `control.socket` moved, by asking a control server of this test's own at that path.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlServer } from "../../lib/daemon/control.ts";
import { makeConfigDir, minimalConfig, type ConfigDir } from "../config/fixtures.ts";
import { runCli } from "./spawn.ts";

let tmp = "";
let d: ConfigDir;
let server: ControlServer;
const asked: string[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "egressd-sock-"));
  d = makeConfigDir({ ...minimalConfig(), control: { socket: join(tmp, "moved.sock") } });
  server = new ControlServer(join(tmp, "moved.sock"), {
    status: () => (asked.push("status"), { version: "test", pid: 1 }),
    reload: () => (asked.push("reload"), { ok: true, changed: ["proxy.listen"] }),
  });
  await server.start();
});
afterAll(async () => {
  await server?.stop();
  d?.remove();
  rmSync(tmp, { recursive: true, force: true });
});

describe("--config FILE: the socket is control.socket from the config", () => {
  test("status --json --config asks the daemon at control.socket", async () => {
    asked.length = 0;
    const ran = await runCli(["status", "--json", "--config", d.configFile]);
    expect({ code: ran.code, stderr: ran.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(ran.stdout)).toEqual({ version: "test", pid: 1 });
    expect(asked).toEqual(["status"]);
  });

  test("reload --config asks the daemon at control.socket", async () => {
    asked.length = 0;
    expect(await runCli(["reload", "-c", d.configFile])).toEqual({ code: 0, stdout: "reloaded: proxy.listen\n", stderr: "" });
    expect(asked).toEqual(["reload"]);
  });

  test("check --config looks for the socket at control.socket", async () => {
    const gone = makeConfigDir({ ...minimalConfig(), control: { socket: join(tmp, "none.sock") } });
    try {
      const ran = await runCli(["check", "--config", gone.configFile]);
      expect(ran).toEqual({ code: 3, stdout: `UNKNOWN: control socket ${join(tmp, "none.sock")} does not exist: is egressd running?\n`, stderr: "" });
    } finally {
      gone.remove();
    }
  });

  test("the config's key file is not needed: status runs as a user who cannot read it", async () => {
    rmSync(d.keyFile);
    const ran = await runCli(["status", "--json", "--config", d.configFile]);
    expect(ran.code).toBe(0);
  });

  test("a bad config: exit 2, naming the file and the field", async () => {
    const bad = makeConfigDir({ ...minimalConfig(), control: { socket: "relative.sock" } });
    try {
      const ran = await runCli(["status", "--config", bad.configFile]);
      expect({ code: ran.code, stdout: ran.stdout }).toEqual({ code: 2, stdout: "" });
      expect(ran.stderr).toStartWith(`egressd status: ${bad.configFile}: control.socket: "relative.sock" must be an absolute path`);
    } finally {
      bad.remove();
    }
  });

  test("--socket and --config together: exit 2", async () => {
    const ran = await runCli(["reload", "--socket", server.path, "--config", d.configFile]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("--socket and --config");
  });
});
