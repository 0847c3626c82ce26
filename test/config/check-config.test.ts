/**
 * `egressd check-config` as a user runs it: every malformed config exits 2 with one line on stderr
 * that names the file and the field; a valid one exits 0 and prints the effective config.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../lib/config/load.ts";
import { BUN, have, ROOT, type Ran, run, runCli } from "../cli/spawn.ts";
import { type ConfigDir, makeConfigDir, minimalConfig } from "./fixtures.ts";
import { MALFORMED, malformedConfig } from "./malformed.ts";

const dirs: ConfigDir[] = [];
afterAll(() => dirs.forEach((d) => d.remove()));

function configDir(config?: unknown, opts?: { keyMode?: number }): ConfigDir {
  const d = makeConfigDir(config, opts);
  dirs.push(d);
  return d;
}

/** check-config with no $CREDENTIALS_DIRECTORY unless `env` sets one. */
function checkConfig(file: string, env: Record<string, string> = {}, extra: string[] = []): Promise<Ran> {
  const { CREDENTIALS_DIRECTORY: _, ...rest } = process.env;
  return runCli(["check-config", "--config", file, ...extra], { env: { ...rest, ...env } });
}

describe("every malformed config: exit 2, one line naming the file and the field", () => {
  const results = new Map<string, { file: string; ran: Ran }>();

  beforeAll(async () => {
    const queue = [...MALFORMED];
    const worker = async () => {
      for (let row = queue.shift(); row; row = queue.shift()) {
        const d = configDir(malformedConfig(row));
        results.set(row.name, { file: d.configFile, ran: await checkConfig(d.configFile) });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  });

  test.each(MALFORMED.map((r) => [r.name, r] as const))("%s", (_name, row) => {
    const { file, ran } = results.get(row.name)!;
    expect({ code: ran.code, stderr: ran.stderr, stdout: ran.stdout }).toEqual({
      code: 2,
      stderr: `${file}: ${row.message}\n`,
      stdout: "",
    });
  });
});

describe("files", () => {
  test("a valid config: exit 0, the effective config on stdout, no key material", async () => {
    const d = configDir();
    const ran = await checkConfig(d.configFile);
    expect([ran.code, ran.stderr]).toEqual([0, ""]);
    const effective = JSON.parse(ran.stdout);
    expect(effective.interface.privateKeyFile).toBe(d.keyFile);
    expect(effective.proxy.listen).toEqual(["127.0.0.1:1080"]);
    expect(effective.routing.fwmark).toBe("0xca6c");
    const key = (await Bun.file(d.keyFile).text()).trim();
    expect(ran.stdout).not.toContain(key);
    // What it prints is a config again.
    expect(parseConfig(effective, { checkFiles: false })).toEqual(parseConfig(minimalConfig(), { checkFiles: false, baseDir: d.dir, env: {} }));
  });

  test("--quiet prints nothing for a valid config", async () => {
    const d = configDir();
    expect(await checkConfig(d.configFile, {}, ["--quiet"])).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  test("a missing key file", async () => {
    const d = configDir();
    rmSync(d.keyFile);
    const ran = await checkConfig(d.configFile);
    expect([ran.code, ran.stderr]).toEqual([2, `${d.configFile}: interface.privateKeyFile: "${d.keyFile}" does not exist\n`]);
  });

  test("a world-readable key file", async () => {
    const d = configDir(undefined, { keyMode: 0o644 });
    const ran = await checkConfig(d.configFile);
    expect([ran.code, ran.stderr]).toEqual([
      2,
      `${d.configFile}: interface.privateKeyFile: "${d.keyFile}" has permissions 0644, which others can access; run chmod 600 "${d.keyFile}"\n`,
    ]);
  });

  test("a group-readable key file: a warning, exit 0", async () => {
    const d = configDir(undefined, { keyMode: 0o640 });
    const ran = await checkConfig(d.configFile, {}, ["-q"]);
    expect([ran.code, ran.stderr]).toEqual([
      0,
      `warning: interface.privateKeyFile: "${d.keyFile}" has permissions 0640; the group can read it (chmod 600 is safer)\n`,
    ]);
  });

  test("the key comes from $CREDENTIALS_DIRECTORY when it is set", async () => {
    const d = configDir();
    const creds = configDir(); // any dir with a good private-key in it
    rmSync(d.keyFile);
    const ran = await checkConfig(d.configFile, { CREDENTIALS_DIRECTORY: creds.dir });
    expect(ran.code).toBe(0);
    expect(JSON.parse(ran.stdout).interface.privateKeyFile).toBe(creds.keyFile);
  });

  // Regression: the file name was printed twice ("c.json: c.json: does not exist").
  test("a missing config file", async () => {
    const d = configDir();
    const file = join(d.dir, "missing.json");
    expect(await checkConfig(file)).toEqual({ code: 2, stdout: "", stderr: `${file}: does not exist\n` });
  });

  test("a JSON syntax error: line and column, exit 2", async () => {
    const d = configDir();
    writeFileSync(d.configFile, '{\n  "interface": { "addresses": ["10.100.0.2/32"], },\n}\n');
    const ran = await checkConfig(d.configFile);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toStartWith(`${d.configFile}: not valid JSON at line 2 column 50: `); // the "}" after ", "
    expect(ran.stderr.trimEnd().split("\n")).toHaveLength(1);
  });

  test("a key given twice: both places, exit 2", async () => {
    const d = configDir();
    writeFileSync(d.configFile, '{\n  "interface": { "addresses": ["10.100.0.2/32"] },\n  "interface": { "addresses": ["10.100.0.3/32"] }\n}\n');
    expect(await checkConfig(d.configFile)).toEqual({
      code: 2,
      stdout: "",
      stderr: `${d.configFile}: interface: given twice (at line 2 column 3 and line 3 column 3); remove one\n`,
    });
  });

  test("a config file that is not an object", async () => {
    const d = configDir();
    writeFileSync(d.configFile, "[]\n");
    expect(await checkConfig(d.configFile)).toEqual({
      code: 2,
      stdout: "",
      stderr: `${d.configFile}: (root): [] is an array, expected an object\n`,
    });
  });

  test("no --config is a usage error", async () => {
    const ran = await runCli(["check-config"]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("--config FILE is required");
  });

  // Permission denied needs a process that cannot read the file. Root reads anything, so as root
  // the CLI runs under setpriv with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of its bounding
  // set, and the file belongs to nobody with mode 0600.
  const isRoot = process.getuid?.() === 0;

  /** Makes `file` unreadable to {@link runUnprivileged}. */
  function makeUnreadable(file: string): void {
    chmodSync(file, isRoot ? 0o600 : 0o000);
    if (isRoot) chownSync(file, 65534, 65534);
  }

  function runUnprivileged(file: string): Promise<Ran> {
    const { CREDENTIALS_DIRECTORY: _, ...env } = process.env;
    const cli = [BUN, join(ROOT, "main.ts"), "check-config", "--config", file];
    return run(isRoot ? ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", ...cli] : cli, { env });
  }

  describe.skipIf(isRoot && !have("setpriv"))("unreadable files", () => {
    test("config file readable, key file not: exit 2 naming the key field", async () => {
      const d = configDir();
      makeUnreadable(d.keyFile);
      const ran = await runUnprivileged(d.configFile);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toMatch(
        new RegExp(`^${escape(d.configFile)}: interface\\.privateKeyFile: "${escape(d.keyFile)}" cannot be read by uid \\d+ \\(permission denied\\)\\n$`),
      );
    });

    test("an unreadable config file: exit 2", async () => {
      const d = configDir();
      makeUnreadable(d.configFile);
      const ran = await runUnprivileged(d.configFile);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toMatch(new RegExp(`^${escape(d.configFile)}: cannot be read by uid \\d+ \\(permission denied\\)\\n$`));
    });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
