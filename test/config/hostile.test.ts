/**
 * Hostile and broken configs through `egressd check-config`, as issue 19 found them: each must
 * exit 2 by itself (the process is killed at 10 s, and runs with 2 GiB of address space, so that
 * a hang or an unbounded read fails here instead of stalling the suite) with lines naming the field.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generatePresharedKey } from "../../lib/keys/keys.ts";
import { type BoundedRan, runCliBounded } from "../cli/spawn.ts";
import { type ConfigDir, makeConfigDir, minimalConfig } from "./fixtures.ts";

const dirs: ConfigDir[] = [];
afterAll(() => dirs.forEach((d) => d.remove()));

function configDir(config?: unknown): ConfigDir {
  const d = makeConfigDir(config);
  dirs.push(d);
  return d;
}

function checkConfig(file: string): Promise<BoundedRan> {
  const { CREDENTIALS_DIRECTORY: _, ...env } = process.env;
  return runCliBounded(["check-config", "--config", file], { env });
}

/** The result as one comparable object: a killed run shows up as `killed: true`. */
function outcome(ran: BoundedRan) {
  return { killed: ran.killed, code: ran.code, stdout: ran.stdout, stderr: ran.stderr };
}

function refused(stderr: string) {
  return { killed: false, code: 2, stdout: "", stderr };
}

/** `depth` nested arrays around `inner`, as text. */
function nested(depth: number, inner = "1"): string {
  return "[".repeat(depth) + inner + "]".repeat(depth);
}

/** The minimal config as JSON text with `field` (inside proxy) set to raw JSON text. */
function withProxyField(field: string, raw: string): string {
  return JSON.stringify({ ...minimalConfig(), proxy: { [field]: "@@" } }).replace('"@@"', raw);
}

describe("the config file is read safely", () => {
  test("a config path that is a FIFO with no writer is refused, not waited on", async () => {
    const d = configDir();
    const fifo = join(d.dir, "fifo.json");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    expect(outcome(await checkConfig(fifo))).toEqual(refused(`${fifo}: is a FIFO (named pipe), not a regular file\n`));
  });

  test("a config that is a symlink to /dev/zero is refused, not read", async () => {
    const d = configDir();
    const link = join(d.dir, "zero.json");
    symlinkSync("/dev/zero", link);
    expect(outcome(await checkConfig(link))).toEqual(refused(`${link}: is a character device (/dev/zero), not a regular file\n`));
  });

  test("a 50 MB config file is refused by its size, not read", async () => {
    const d = configDir();
    truncateSync(d.configFile, 50 * 1024 * 1024); // sparse: the size is what matters
    expect(outcome(await checkConfig(d.configFile))).toEqual(
      refused(`${d.configFile}: is 52428800 bytes, over the 1 MiB (1048576 bytes) limit for a config file\n`),
    );
  });
});

describe("the JSON is bounded before it is parsed", () => {
  test("JSON nested 100k levels deep at the top level names the depth and where", async () => {
    const d = configDir();
    writeFileSync(d.configFile, nested(100_000));
    expect(outcome(await checkConfig(d.configFile))).toEqual(
      refused(`${d.configFile}: (root): nested more than 64 levels deep (at line 1 column 65)\n`),
    );
  });

  test("JSON nested 100k levels deep inside a field names the field", async () => {
    const d = configDir();
    const text = withProxyField("allowDestinations", nested(100_000));
    writeFileSync(d.configFile, text);
    // The root object and proxy are two levels, so the 63rd "[" is the 65th level.
    const column = text.indexOf("[[[") + 63;
    expect(outcome(await checkConfig(d.configFile))).toEqual(
      refused(`${d.configFile}: proxy.allowDestinations: nested more than 64 levels deep (at line 1 column ${column})\n`),
    );
  });

  test("a 5 MB array of 1M bad CIDRs is refused by the file's size, in one line", async () => {
    const d = configDir();
    const text = withProxyField("allowDestinations", `[${Array.from({ length: 1_000_000 }, () => '"1/"').join(",")}]`);
    writeFileSync(d.configFile, text);
    const size = Buffer.byteLength(text);
    expect(size).toBeGreaterThan(5_000_000);
    expect(outcome(await checkConfig(d.configFile))).toEqual(
      refused(`${d.configFile}: is ${size} bytes, over the 1 MiB (1048576 bytes) limit for a config file\n`),
    );
  });

  test("a list of 70,000 bad CIDRs under the size limit is refused by its length, in one line", async () => {
    const d = configDir();
    const bad = Array.from({ length: 70_000 }, () => '"1.2.3.4/99"').join(",");
    writeFileSync(d.configFile, withProxyField("allowDestinations", `[${bad}]`));
    expect(outcome(await checkConfig(d.configFile))).toEqual(
      refused(`${d.configFile}: proxy.allowDestinations: has 70000 items; a list holds at most 10000\n`),
    );
  });

  test("an object with 5,000 unknown keys is refused by its size, in one line", async () => {
    const d = configDir();
    const keys = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`key${i}`, 1]));
    writeFileSync(d.configFile, JSON.stringify({ ...minimalConfig(), proxy: keys }));
    expect(outcome(await checkConfig(d.configFile))).toEqual(refused(`${d.configFile}: proxy: has 5000 members; an object holds at most 1000\n`));
  });

  test("5,000 bad CIDRs print the first 20 problems and say how many more there were", async () => {
    const d = configDir();
    const bad = Array.from({ length: 5000 }, () => '"1.2.3.4/99"').join(",");
    writeFileSync(d.configFile, withProxyField("allowDestinations", `[${bad}]`));
    const ran = await checkConfig(d.configFile);
    expect({ killed: ran.killed, code: ran.code, stdout: ran.stdout }).toEqual({ killed: false, code: 2, stdout: "" });
    const lines = ran.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(21);
    for (let i = 0; i < 20; i++) expect(lines[i]).toStartWith(`${d.configFile}: proxy.allowDestinations[${i}]: "1.2.3.4/99" `);
    expect(lines[20]).toBe(`${d.configFile}: ... and 4980 more problems (only the first 20 are shown)`);
  });
});

describe("values JSON.parse accepts but a config must not", () => {
  test("invalid UTF-8 inside a string is refused with its byte offset, line and column", async () => {
    const d = configDir();
    writeFileSync(join(d.dir, "password"), "secret\n", { mode: 0o600 });
    const text = JSON.stringify({ ...minimalConfig(), proxy: { auth: { username: "b@@t", passwordFile: "password" } } }, null, 2);
    const [before, after] = text.split("@@") as [string, string];
    const bytes = Buffer.concat([Buffer.from(before), Buffer.from([0xc3, 0x28]), Buffer.from(after)]); // C3 needs a continuation byte
    writeFileSync(d.configFile, bytes);
    const offset = Buffer.byteLength(before);
    const line = before.split("\n").length;
    const column = before.length - before.lastIndexOf("\n");
    expect(outcome(await checkConfig(d.configFile))).toEqual(
      refused(`${d.configFile}: proxy.auth.username: invalid UTF-8 at byte ${offset} (line ${line} column ${column}); save the file as UTF-8\n`),
    );
  });

  test.each([
    ["1e309 as a number", "interface", "mtu", "1e309"],
    ["1e400 as a duration", "proxy", "idleTimeout", "1e400"],
    ["-1e309 as a duration", "proxy", "connectTimeout", "-1e309"],
  ])("%s is refused as out of range, naming the field", async (_name, section, field, literal) => {
    const d = configDir();
    const config: Record<string, any> = minimalConfig();
    config[section] = { ...config[section], [field]: "@@" };
    writeFileSync(d.configFile, JSON.stringify(config).replace('"@@"', literal));
    expect(outcome(await checkConfig(d.configFile))).toEqual(
      refused(`${d.configFile}: ${section}.${field}: the number is too large to represent (it would be ${literal.startsWith("-") ? "-" : ""}Infinity)\n`),
    );
  });
});

describe("a secret file that cannot be opened names the field that named it", () => {
  /** Writes a config whose `field` points at `path`, and a valid private key beside it. */
  function secretAt(field: "privateKeyFile" | "presharedKeyFile" | "passwordFile", path: (dir: string) => string) {
    const d = configDir();
    const file = path(d.dir);
    const c: Record<string, any> = minimalConfig();
    if (field === "privateKeyFile") c.interface.privateKeyFile = file;
    if (field === "presharedKeyFile") c.exit.presharedKeyFile = file;
    if (field === "passwordFile") c.proxy = { auth: { username: "bot", passwordFile: file } };
    d.write(c);
    return { d, file };
  }

  const loop = (dir: string) => {
    symlinkSync(join(dir, "b"), join(dir, "a"));
    symlinkSync(join(dir, "a"), join(dir, "b"));
    return join(dir, "a");
  };

  test.each([
    ["ENOTDIR", "interface.privateKeyFile", (dir: string) => join(dir, "config.json", "key"), "is not reachable: a component of the path is not a directory (ENOTDIR)"],
    ["ELOOP", "interface.privateKeyFile", loop, "is not reachable: too many levels of symbolic links (ELOOP)"],
    ["ENAMETOOLONG", "interface.privateKeyFile", (dir: string) => join(dir, "k".repeat(300)), "is not reachable: the path or one of its names is too long (ENAMETOOLONG)"],
    ["ENOTDIR for the preshared key", "exit.presharedKeyFile", (dir: string) => join(dir, "private-key", "psk"), "is not reachable: a component of the path is not a directory (ENOTDIR)"],
    ["ELOOP for the password", "proxy.auth.passwordFile", loop, "is not reachable: too many levels of symbolic links (ELOOP)"],
    [
      "a FIFO as the password",
      "proxy.auth.passwordFile",
      (dir: string) => (Bun.spawnSync(["mkfifo", join(dir, "pw")]), join(dir, "pw")),
      "is a FIFO (named pipe), not a regular file",
    ],
    ["a directory as the preshared key", "exit.presharedKeyFile", (dir: string) => (mkdirSync(join(dir, "psk")), join(dir, "psk")), "is a directory, not a regular file"],
    [
      "/dev/zero as the preshared key",
      "exit.presharedKeyFile",
      () => "/dev/zero",
      "is a character device, not a regular file",
    ],
  ])("%s", async (_name, fieldPath, path, message) => {
    const field = fieldPath.split(".").at(-1) as "privateKeyFile" | "presharedKeyFile" | "passwordFile";
    const { d, file } = secretAt(field, path);
    expect(outcome(await checkConfig(d.configFile))).toEqual(refused(`${d.configFile}: ${fieldPath}: "${file}" ${message}\n`));
  });

  test("a 1 MB preshared key file is refused by its size", async () => {
    const { d, file } = secretAt("presharedKeyFile", (dir) => join(dir, "psk"));
    writeFileSync(file, generatePresharedKey() + "\n" + " ".repeat(1_000_000));
    chmodSync(file, 0o600);
    expect(outcome(await checkConfig(d.configFile))).toEqual(
      refused(`${d.configFile}: exit.presharedKeyFile: "${file}" is 1000045 bytes, over the 64 KiB (65536 bytes) limit for a secret file\n`),
    );
  });
});

describe("the other commands that read these files share the rules", () => {
  test("egressd run refuses a config path that is a FIFO, as check-config does", async () => {
    const d = configDir();
    const fifo = join(d.dir, "fifo.json");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const { CREDENTIALS_DIRECTORY: _, ...env } = process.env;
    expect(outcome(await runCliBounded(["run", "--config", fifo, "--log-format", "text"], { env }))).toEqual(
      refused(`${fifo}: is a FIFO (named pipe), not a regular file\n`),
    );
  });

  test("egressd proxy --password-file refuses a world-readable (0644) file, as check-config does", async () => {
    const d = configDir();
    const file = join(d.dir, "password");
    writeFileSync(file, "secret\n");
    chmodSync(file, 0o644);
    const ran = await runCliBounded(["proxy", "--listen", "127.0.0.1:0", "--user", "bot", "--password-file", file], { timeoutMs: 5000 });
    expect(outcome(ran)).toEqual(
      refused(`egressd proxy: --password-file: "${file}" has permissions 0644, which others can access; run chmod 600 "${file}"; run \`egressd proxy --help\`\n`),
    );
  });

  test("egressd proxy --password-file that is a FIFO is refused, not waited on", async () => {
    const d = configDir();
    const fifo = join(d.dir, "pw");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const ran = await runCliBounded(["proxy", "--listen", "127.0.0.1:0", "--user", "bot", "--password-file", fifo], { timeoutMs: 5000 });
    expect(outcome(ran)).toEqual(refused(`egressd proxy: --password-file: "${fifo}" is a FIFO (named pipe), not a regular file; run \`egressd proxy --help\`\n`));
  });
});
