/**
 * The CLI run from source as a user runs it (`bun main.ts ...`): help and exit codes on every
 * subcommand, the key commands' output and file modes, and version.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { decodeKey, isKey } from "../../lib/keys/keys.ts";
import { makeConfigDir, minimalConfig } from "../config/fixtures.ts";
import { BUN, have, ROOT, run, runCli, wgPubkey } from "./spawn.ts";

const KEY = /^[A-Za-z0-9+/]{43}=\n$/;
let tmp = "";
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "egressd-cli-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const mode = (file: string) => statSync(file).mode & 0o777;

/** The subcommands `egressd --help` lists, so that a command added later is covered too. */
function listedCommands(): string[] {
  const help = Bun.spawnSync([BUN, join(ROOT, "main.ts"), "--help"]).stdout.toString();
  const section = help.split("Commands:\n")[1]?.split("\n\n")[0] ?? "";
  return section.split("\n").map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean);
}

describe("help and exit codes", () => {
  const ALL = listedCommands();

  test("--help lists every subcommand and documents the exit codes", async () => {
    const ran = await runCli(["--help"]);
    expect(ran.code).toBe(0);
    expect(ran.stdout).toStartWith("Usage: egressd <command>");
    expect(ran.stdout).toMatch(/0 +success/);
    expect(ran.stdout).toMatch(/1 +runtime failure/);
    expect(ran.stdout).toMatch(/2 +usage or config error/);
    // Issue 2's commands, at least; the per-command tests below run on whatever is listed.
    expect(ALL).toEqual(expect.arrayContaining(["run", "check-config", "genkey", "pubkey", "genpsk", "version"]));
  });

  test.each([["help"], ["-h"]])("%s is the same as --help", async (flag) => {
    const [a, b] = await Promise.all([runCli([flag]), runCli(["--help"])]);
    expect(a).toEqual(b);
  });

  test("no command: usage on stdout, exit 2", async () => {
    const ran = await runCli([]);
    expect(ran.code).toBe(2);
    expect(ran.stdout).toStartWith("Usage: egressd <command>");
  });

  test.each(ALL.flatMap((c) => [[c, "--help"], [c, "-h"]]))("%s %s: exit 0 and its usage", async (command, flag) => {
    const ran = await runCli([command, flag]);
    expect({ code: ran.code, stderr: ran.stderr }).toEqual({ code: 0, stderr: "" });
    expect(ran.stdout).toStartWith(`Usage: egressd ${command}`);
  });

  test("unknown command: exit 2, naming it", async () => {
    const ran = await runCli(["frobnicate"]);
    expect({ code: ran.code, stdout: ran.stdout }).toEqual({ code: 2, stdout: "" });
    expect(ran.stderr).toContain('unknown command "frobnicate"');
  });

  test.each(ALL)("%s --no-such-flag: exit 2, naming the flag", async (command) => {
    const ran = await runCli([command, "--no-such-flag"]);
    expect({ code: ran.code, stdout: ran.stdout }).toEqual({ code: 2, stdout: "" });
    expect(ran.stderr).toContain("--no-such-flag");
    expect(ran.stderr).toContain(`egressd ${command} --help`);
  });

  test.each([
    ["genkey", "stray"],
    ["version", "stray"],
    ["pubkey", "stray"],
  ])("%s with a positional argument: exit 2", async (command, arg) => {
    const ran = await runCli([command, arg]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain(`'${arg}'`);
  });

  test("a flag missing its value: exit 2", async () => {
    const ran = await runCli(["genkey", "--output"]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("--output");
  });
});

describe("egressd run", () => {
  // Regression (issue 16): root's uid cannot be marked (every root process would go into the
  // tunnel); that is a usage error, fixed by running as another user, so it exits 2, not 1.
  test.skipIf(process.getuid?.() !== 0)("as root it refuses to mark uid 0 with exit 2, touching nothing", async () => {
    const d = makeConfigDir({ ...minimalConfig(), control: { socket: join(tmp, "root-run.sock") } });
    try {
      const ran = await runCli(["run", "--config", d.configFile, "--log-format", "text"]);
      expect({ code: ran.code, stdout: ran.stdout }).toEqual({ code: 2, stdout: "" });
      expect(ran.stderr).toStartWith("egressd run: refusing to mark uid 0: ");
      expect(ran.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(existsSync(join(tmp, "root-run.sock"))).toBe(false);
    } finally {
      d.remove();
    }
  });
});

describe("egressd proxy: a bad flag value names the flag, exit 2", () => {
  // Regression: option checks in the proxy named its internal fields ("keepalive.intervalMs") and
  // spoke in milliseconds, although the user typed a flag and a duration.
  test.each([
    [["--keepalive-interval", "1500ms"], "--keepalive-interval: must be whole seconds, not 1500ms"],
    [["--keepalive-idle", "10h"], "--keepalive-idle: must be from 1s to 32767s, not 36000s"],
    [["--keepalive-count", "0"], '--keepalive-count must be an integer in 1..127, not "0"'],
    [["--connect-timeout", "0"], "--connect-timeout: must be from 1ms to 2147483647ms, not 0ms"],
    [["--max-connections", "0"], '--max-connections must be a positive integer, not "0"'],
    [["--dns", "tunnel", "--dns-server", "dns.example"], '--dns-server: "dns.example" is not an IP address or IP:port'],
    [["--protocols", "socks5,socks4"], '--protocols: "socks4" is not a protocol; use socks5, http or socks5,http'],
    [["--udp-port-range", "40100-40000"], '--udp-port-range: "40100-40000" is not a port range of 1-65535, first not above last (e.g. 40000-40100)'],
    [["--udp-port-range", "0-10"], '--udp-port-range: "0-10" is not a port range of 1-65535, first not above last (e.g. 40000-40100)'],
    [["--udp-max-associations", "none"], '--udp-max-associations must be a positive integer, not "none"'],
    [["--udp-idle-timeout", "forever"], '--udp-idle-timeout: "forever" is not a duration (e.g. 500ms, 10s, 2m)'],
    [["--udp-idle-timeout", "1000h"], "--udp-idle-timeout: must be from 0ms to 2147483647ms, not 3600000s"],
  ])("%p", async (args, message) => {
    const ran = await runCli(["proxy", "--listen", "127.0.0.1:0", ...args]);
    expect(ran).toEqual({ code: 2, stdout: "", stderr: `egressd proxy: ${message}; run \`egressd proxy --help\`\n` });
  });
});

describe("genkey, genpsk, pubkey", () => {
  test.each(["genkey", "genpsk"])("%s to a pipe prints one key", async (command) => {
    const ran = await runCli([command]);
    expect(ran).toEqual({ code: 0, stdout: expect.stringMatching(KEY), stderr: "" });
  });

  test.skipIf(!have("wg"))("genkey | pubkey equals wg pubkey (10 keys, through the CLI)", async () => {
    for (let i = 0; i < 10; i++) {
      const key = (await runCli(["genkey"])).stdout;
      const pub = await runCli(["pubkey"], { stdin: key });
      expect(pub.code).toBe(0);
      expect(pub.stdout).toBe(wgPubkey(key.trim()) + "\n");
    }
  });

  test.each([
    ["garbage", "garbage\n"],
    ["nothing", ""],
    ["a key with its last character cut", "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk\n"],
    ["two keys", "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nyAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"],
  ])("pubkey with %s on stdin: exit 2 and a message", async (_name, stdin) => {
    const ran = await runCli(["pubkey"], { stdin });
    expect({ code: ran.code, stdout: ran.stdout }).toEqual({ code: 2, stdout: "" });
    expect(ran.stderr).toStartWith("egressd pubkey: stdin is not a private key: ");
  });

  test.each(["genkey", "genpsk"])("%s --output FILE writes the key with mode 0600, even under umask 0", async (command) => {
    const file = join(tmp, `${command}-new`);
    const ran = await run(["sh", "-c", `umask 0; exec "$0" "$1" ${command} --output "$2"`, BUN, join(ROOT, "main.ts"), file]);
    expect(ran).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(mode(file)).toBe(0o600);
    expect(readFileSync(file, "utf8")).toMatch(KEY);
  });

  // Regression (issue 16): --output replaced an existing key silently, and a gateway lost its identity.
  test.each(["genkey", "genpsk"])("%s --output refuses to overwrite an existing file without --force (exit 2)", async (command) => {
    const file = join(tmp, `${command}-keep`);
    writeFileSync(file, "the gateway's key\n", { mode: 0o600 });
    const ran = await runCli([command, "--output", file]);
    expect(ran).toEqual({
      code: 2,
      stdout: "",
      stderr: `egressd ${command}: --output: "${file}" already exists; pass --force to replace it (a replaced private key is a new identity the exit does not know)\n`,
    });
    expect(readFileSync(file, "utf8")).toBe("the gateway's key\n");
  });

  test("--output --force tightens a file that already exists with mode 0644, and replaces its content", async () => {
    const file = join(tmp, "genkey-existing");
    writeFileSync(file, "old content that is longer than a key, so truncation shows ".repeat(3));
    chmodSync(file, 0o644);
    expect((await runCli(["genkey", "-o", file, "--force"])).code).toBe(0);
    expect(mode(file)).toBe(0o600);
    expect(readFileSync(file, "utf8")).toMatch(KEY);
  });

  test.each(["genkey", "genpsk"])("%s > FILE (a shell redirect, umask 022) leaves the file 0600", async (command) => {
    const file = join(tmp, `${command}-redirect`);
    writeFileSync(file, "");
    chmodSync(file, 0o644);
    const ran = await run(["sh", "-c", `umask 022; exec "$0" "$1" ${command} > "$2"`, BUN, join(ROOT, "main.ts"), file]);
    expect(ran).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(mode(file)).toBe(0o600);
    expect(isKey(readFileSync(file, "utf8"))).toBe(true);
  });

  test("--output into a directory that does not exist: a runtime failure, nothing printed", async () => {
    const ran = await runCli(["genkey", "-o", join(tmp, "no", "such", "dir", "key")]);
    expect({ code: ran.code, stdout: ran.stdout }).toEqual({ code: 1, stdout: "" });
    expect(ran.stderr).toContain("ENOENT");
  });

  // `script` (util-linux) runs the command on a pseudo-terminal, so stdout is a TTY.
  describe.skipIf(!have("script"))("on a terminal", () => {
    const onTty = (args: string[]) => {
      const command = [BUN, join(ROOT, "main.ts"), ...args].map((a) => `'${a}'`).join(" ");
      return run(["script", "-qec", command, "/dev/null"]);
    };

    test.each(["genkey", "genpsk"])("%s refuses to print a key to a terminal without --force (exit 2)", async (command) => {
      const ran = await onTty([command]);
      expect(ran.code).toBe(2);
      expect(ran.stdout).toContain("refusing to print a secret key to a terminal");
      expect(ran.stdout).not.toMatch(/[A-Za-z0-9+/]{43}=/);
    });

    test.each(["genkey", "genpsk"])("%s --force prints it", async (command) => {
      const ran = await onTty([command, "--force"]);
      expect(ran.code).toBe(0);
      const key = ran.stdout.trim();
      expect(decodeKey(key).length).toBe(32);
    });

    test("--output FILE works from a terminal: the key goes to the file only", async () => {
      const file = join(tmp, "from-tty");
      const ran = await onTty(["genkey", "--output", file]);
      expect({ code: ran.code, stdout: ran.stdout }).toEqual({ code: 0, stdout: "" });
      expect(mode(file)).toBe(0o600);
      expect(readFileSync(file, "utf8")).toMatch(KEY);
    });

    test("the pty really is a terminal: a control run sees a TTY", async () => {
      // Without this, a broken `script` would make the refusal tests pass for the wrong reason.
      const ran = await run(["script", "-qec", `'${BUN}' -e 'process.stdout.write(String(process.stdout.isTTY))'`, "/dev/null"]);
      expect(ran.stdout.trim()).toBe("true");
    });
  });
});

describe("version", () => {
  // From source nothing embeds the commit (scripts/build.sh does; test/binary checks that).
  const expected = `egressd ${pkg.version} (commit unknown, bun ${Bun.version}, ${process.platform}/${process.arch})\n`;

  test.each([[["version"]], [["--version"]], [["-V"]]])("%j prints the version, commit and runtime", async (args) => {
    expect(await runCli(args)).toEqual({ code: 0, stdout: expected, stderr: "" });
  });

  test("version --json", async () => {
    const ran = await runCli(["version", "--json"]);
    expect(ran.code).toBe(0);
    expect(JSON.parse(ran.stdout)).toEqual({ version: pkg.version, commit: "unknown", runtime: `bun ${Bun.version}` });
  });
});
