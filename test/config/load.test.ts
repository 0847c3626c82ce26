/**
 * Loading config files from disk: secret file checks (existence, permissions, content), where
 * relative secret paths resolve ($CREDENTIALS_DIRECTORY, then beside the config), and file-level
 * errors (missing, not JSON).
 */
import { dirname } from "node:path";
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../lib/config/errors.ts";
import { loadConfig, type LoadOptions, resolveSecretPath } from "../../lib/config/load.ts";
import { generatePresharedKey, generatePrivateKey } from "../../lib/keys/keys.ts";
import { type ConfigDir, makeConfigDir, minimalConfig } from "./fixtures.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function configDir(config?: unknown, opts?: { keyMode?: number }): ConfigDir {
  const d = makeConfigDir(config, opts);
  cleanups.push(d.remove);
  return d;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "egressd-creds-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function writeSecret(file: string, text: string, mode = 0o600): string {
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

/** Loads with an empty environment (no $CREDENTIALS_DIRECTORY leaking in from the test's own). */
function load(file: string, opts: LoadOptions = {}) {
  return loadConfig(file, { env: {}, ...opts });
}

/** The problem lines loading `file` gives; fails the test when it loads. */
function problemsOf(file: string, opts: LoadOptions = {}): string[] {
  try {
    load(file, opts);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    expect(e.file).toBe(file);
    return e.problems.map((p) => p.message);
  }
  throw new Error("the config was accepted");
}

describe("resolveSecretPath", () => {
  test.each([
    ["an absolute path stays, even with credentials", "/etc/k", { CREDENTIALS_DIRECTORY: "/run/creds" }, "/base", "/etc/k"],
    ["a relative path goes to $CREDENTIALS_DIRECTORY", "private-key", { CREDENTIALS_DIRECTORY: "/run/creds" }, "/base", "/run/creds/private-key"],
    ["without credentials it goes beside the config", "private-key", {}, "/base", "/base/private-key"],
    ["an empty $CREDENTIALS_DIRECTORY counts as unset", "private-key", { CREDENTIALS_DIRECTORY: "" }, "/base", "/base/private-key"],
    ["a relative path with a directory", "keys/psk", {}, "/base", "/base/keys/psk"],
  ])("%s", (_name, path, env, baseDir, expected) => {
    expect(resolveSecretPath(path, { env, baseDir })).toBe(expected);
  });

  test("without credentials or a base dir it resolves against the working directory", () => {
    expect(resolveSecretPath("k", { env: {} })).toBe(join(process.cwd(), "k"));
  });
});

describe("secret files", () => {
  test("a valid config with its key beside it loads, with the key path made absolute", () => {
    const d = configDir();
    const c = load(d.configFile);
    expect(c.interface.privateKeyFile).toBe(d.keyFile);
  });

  test("a missing key file", () => {
    const d = configDir();
    rmSync(d.keyFile);
    expect(problemsOf(d.configFile)).toEqual([`interface.privateKeyFile: "${d.keyFile}" does not exist`]);
  });

  test.each([
    [0o644, "0644"],
    [0o604, "0604"],
    [0o602, "0602"],
    [0o601, "0601"],
    [0o666, "0666"],
  ])("a key file others can access (%o) is refused", (mode, octal) => {
    const d = configDir(undefined, { keyMode: mode });
    expect(problemsOf(d.configFile)).toEqual([
      `interface.privateKeyFile: "${d.keyFile}" has permissions ${octal}, which others can access; run chmod 600 "${d.keyFile}"`,
    ]);
  });

  test.each([
    [0o640, "0640"],
    [0o660, "0660"],
    [0o610, "0610"],
  ])("a key file the group can read (%o) is a warning, not an error", (mode, octal) => {
    const d = configDir(undefined, { keyMode: mode });
    const warnings: string[] = [];
    expect(() => load(d.configFile, { warn: (m) => warnings.push(m) })).not.toThrow();
    expect(warnings).toEqual([
      `interface.privateKeyFile: "${d.keyFile}" has permissions ${octal}; the group can read it (chmod 600 is safer)`,
    ]);
  });

  test("a group-readable key in $CREDENTIALS_DIRECTORY gives no warning: systemd 257 makes credentials 0440 itself", () => {
    const d = configDir(undefined, { keyMode: 0o440 });
    const warnings: string[] = [];
    load(d.configFile, { warn: (m) => warnings.push(m), env: { CREDENTIALS_DIRECTORY: dirname(d.keyFile) } });
    expect(warnings).toEqual([]);
    // The same file outside the credentials directory is still warned about.
    load(d.configFile, { warn: (m) => warnings.push(m), env: {} });
    expect(warnings).toHaveLength(1);
  });

  test.each([0o600, 0o400, 0o700])("a private key file (%o) gives no warning", (mode) => {
    const d = configDir(undefined, { keyMode: mode });
    const warnings: string[] = [];
    load(d.configFile, { warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([]);
  });

  test.each([
    ["garbage", "not a key\n"],
    ["an empty file", ""],
    ["a public key and a comment", generatePrivateKey() + " # mine\n"],
    ["two keys", generatePrivateKey() + "\n" + generatePrivateKey() + "\n"],
  ])("a key file holding %s", (_name, text) => {
    const d = configDir();
    writeSecret(d.keyFile, text);
    const [line, ...rest] = problemsOf(d.configFile);
    expect(rest).toEqual([]);
    expect(line).toStartWith(`interface.privateKeyFile: "${d.keyFile}" does not hold a WireGuard key: `);
  });

  test("a key file that is a directory", () => {
    const d = configDir();
    rmSync(d.keyFile);
    mkdirSync(d.keyFile, { mode: 0o700 });
    expect(problemsOf(d.configFile)).toEqual([`interface.privateKeyFile: "${d.keyFile}" is a directory, not a regular file`]);
  });

  test("a world-readable preshared key file names exit.presharedKeyFile", () => {
    const d = configDir();
    const psk = writeSecret(join(d.dir, "psk"), generatePresharedKey() + "\n", 0o644);
    d.write({ ...minimalConfig(), exit: { ...minimalConfig().exit, presharedKeyFile: "psk" } });
    expect(problemsOf(d.configFile)).toEqual([
      `exit.presharedKeyFile: "${psk}" has permissions 0644, which others can access; run chmod 600 "${psk}"`,
    ]);
  });

  test("problems with several secret files are all reported", () => {
    const d = configDir();
    rmSync(d.keyFile);
    writeSecret(join(d.dir, "psk"), "short\n");
    d.write({ ...minimalConfig(), exit: { ...minimalConfig().exit, presharedKeyFile: "psk" } });
    const lines = problemsOf(d.configFile);
    expect(lines.map((l) => l.split(":")[0])).toEqual(["interface.privateKeyFile", "exit.presharedKeyFile"]);
  });

  describe("proxy password file (RFC 1929: 1-255 bytes)", () => {
    test.each([
      ["one byte", "x", true],
      ["255 bytes and a newline", "p".repeat(255) + "\n", true],
      ["255 bytes and CRLF", "p".repeat(255) + "\r\n", true],
      ["empty", "", false],
      ["only a newline", "\n", false],
      ["256 bytes", "p".repeat(256), false],
      ["128 two-byte characters (256 bytes)", "é".repeat(128), false],
    ])("%s", (_name, text, ok) => {
      const d = configDir();
      const file = writeSecret(join(d.dir, "password"), text);
      d.write({ ...minimalConfig(), proxy: { auth: { username: "bot", passwordFile: "password" } } });
      if (ok) expect(load(d.configFile).proxy.auth?.passwordFile).toBe(file);
      else expect(problemsOf(d.configFile)[0]).toStartWith(`proxy.auth.passwordFile: "${file}" must hold a password of 1-255 bytes (RFC 1929), has `);
    });
  });
});

describe("$CREDENTIALS_DIRECTORY", () => {
  test("a relative key path is read from $CREDENTIALS_DIRECTORY when it is set", () => {
    const d = configDir();
    rmSync(d.keyFile); // nothing beside the config: it must come from the credentials
    const creds = tempDir();
    const key = writeSecret(join(creds, "private-key"), generatePrivateKey() + "\n", 0o400);
    expect(load(d.configFile, { env: { CREDENTIALS_DIRECTORY: creds } }).interface.privateKeyFile).toBe(key);
  });

  test("the credentials win over a key beside the config", () => {
    const d = configDir(); // has a valid private-key beside it
    const creds = tempDir(); // and the credentials directory has none
    expect(problemsOf(d.configFile, { env: { CREDENTIALS_DIRECTORY: creds } })).toEqual([
      `interface.privateKeyFile: "${join(creds, "private-key")}" does not exist`,
    ]);
  });

  test("an unset privateKeyFile means the credential named private-key", () => {
    const d = configDir();
    const c = minimalConfig();
    expect(c.interface.privateKeyFile).toBeUndefined();
    const creds = tempDir();
    writeSecret(join(creds, "private-key"), generatePrivateKey());
    expect(load(d.configFile, { env: { CREDENTIALS_DIRECTORY: creds } }).interface.privateKeyFile).toBe(join(creds, "private-key"));
  });

  test("an absolute key path ignores $CREDENTIALS_DIRECTORY", () => {
    const d = configDir();
    d.write({ ...minimalConfig(), interface: { ...minimalConfig().interface, privateKeyFile: d.keyFile } });
    const creds = tempDir();
    expect(load(d.configFile, { env: { CREDENTIALS_DIRECTORY: creds } }).interface.privateKeyFile).toBe(d.keyFile);
  });

  test("the preshared key and the password are credentials too", () => {
    const d = configDir();
    const creds = tempDir();
    writeSecret(join(creds, "private-key"), generatePrivateKey());
    writeSecret(join(creds, "psk"), generatePresharedKey());
    writeSecret(join(creds, "proxy-password"), "hunter2");
    d.write({
      ...minimalConfig(),
      exit: { ...minimalConfig().exit, presharedKeyFile: "psk" },
      proxy: { auth: { username: "bot", passwordFile: "proxy-password" } },
    });
    const c = load(d.configFile, { env: { CREDENTIALS_DIRECTORY: creds } });
    expect([c.interface.privateKeyFile, c.exit.presharedKeyFile, c.proxy.auth?.passwordFile]).toEqual(
      ["private-key", "psk", "proxy-password"].map((n) => join(creds, n)),
    );
  });

  test("loadConfig reads $CREDENTIALS_DIRECTORY from process.env by default", () => {
    const d = configDir();
    rmSync(d.keyFile);
    const creds = tempDir();
    writeSecret(join(creds, "private-key"), generatePrivateKey());
    const saved = process.env.CREDENTIALS_DIRECTORY;
    process.env.CREDENTIALS_DIRECTORY = creds;
    try {
      expect(loadConfig(d.configFile).interface.privateKeyFile).toBe(join(creds, "private-key"));
    } finally {
      if (saved === undefined) delete process.env.CREDENTIALS_DIRECTORY;
      else process.env.CREDENTIALS_DIRECTORY = saved;
    }
  });
});

describe("the config file itself", () => {
  // Regression: these messages repeated the file name, which the CLI prints before every problem.
  test("a missing config file", () => {
    const dir = tempDir();
    const file = join(dir, "nope.json");
    expect(problemsOf(file)).toEqual(["does not exist"]);
  });

  test("a config file that is a directory", () => {
    const dir = tempDir();
    expect(problemsOf(dir)).toEqual(["is a directory, not a regular file"]);
  });

  // Regression: Bun's JSON.parse does not say where the error is, so no position was ever given.
  test("a JSON syntax error reports its line and column", () => {
    const d = configDir();
    writeFileSync(d.configFile, '{\n  "interface": {\n    "addresses": [10.100.0.2/32]\n  }\n}\n');
    const [line, ...rest] = problemsOf(d.configFile);
    expect(rest).toEqual([]);
    expect(line).toStartWith("not valid JSON at line 3 column 25: "); // "10.100" is a number; the 2nd "." is not
  });

  // Regression: JSON.parse kept the last of two equal keys, so a config that said two things ran
  // with one of them and nothing told the user which.
  test("a key given twice is refused, with both places", () => {
    const d = configDir();
    const text = [
      "{",
      '  "interface": { "addresses": ["10.100.0.2/32"] },',
      '  "exit": {',
      `    "publicKey": "${minimalConfig().exit.publicKey}",`,
      '    "endpoint": "old-vps.example.net:51820",',
      '    "endpoint": "vps.example.net:51820"',
      "  }",
      "}",
    ].join("\n");
    expect(JSON.parse(text).exit.endpoint).toBe("vps.example.net:51820"); // what JSON.parse alone did
    writeFileSync(d.configFile, text);
    expect(problemsOf(d.configFile)).toEqual(["exit.endpoint: given twice (at line 5 column 5 and line 6 column 5); remove one"]);
  });

  test("a trailing comma, the usual hand-editing slip", () => {
    const d = configDir();
    const text = JSON.stringify(minimalConfig(), null, 2).replace(/\n}$/, ",\n}");
    writeFileSync(d.configFile, text);
    expect(problemsOf(d.configFile)[0]).toStartWith(`not valid JSON at line ${text.split("\n").length} column 1: `);
  });

  test("schema problems are reported before any secret file is looked at", () => {
    const d = configDir();
    rmSync(d.keyFile);
    d.write({ ...minimalConfig(), routing: { table: 254 } });
    expect(problemsOf(d.configFile)).toEqual([
      "routing.table: 254 is reserved by the kernel (253 default, 254 main, 255 local); use e.g. 51820",
    ]);
  });
});
