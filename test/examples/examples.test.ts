/**
 * Every examples/*.json passes `egressd check-config` with the compiled binary, as it is: the
 * test only puts the key and password files the example names (relative names, so beside the
 * config) into a temp dir next to an unchanged copy of the file.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generatePresharedKey, generatePrivateKey } from "../../lib/keys/keys.ts";
import { ROOT, run } from "../cli/spawn.ts";
import { egressdBinary } from "../lab/binary.ts";

const EXAMPLES = readdirSync(join(ROOT, "examples")).filter((f) => f.endsWith(".json")).sort();
let binary = "";
const dirs: string[] = [];

beforeAll(() => {
  binary = egressdBinary();
}, 60_000);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A temp dir with the example as config.json and every secret file it names. */
function stage(example: string, opts: { skip?: string } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "egressd-example-"));
  dirs.push(dir);
  copyFileSync(join(ROOT, "examples", example), join(dir, "config.json"));
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  const secrets: [string, string][] = [
    [config.interface?.privateKeyFile ?? "private-key", generatePrivateKey() + "\n"],
    ...(config.exit?.presharedKeyFile ? [[config.exit.presharedKeyFile, generatePresharedKey() + "\n"] as [string, string]] : []),
    ...((config.exits ?? []) as { presharedKeyFile?: string }[]).filter((e) => e.presharedKeyFile).map((e) => [e.presharedKeyFile!, generatePresharedKey() + "\n"] as [string, string]),
    ...(config.proxy?.auth?.passwordFile ? [[config.proxy.auth.passwordFile, "correct horse battery staple"] as [string, string]] : []),
    ...((config.proxy?.auth?.users ?? []) as { passwordFile: string }[]).map((u, i) => [u.passwordFile, `password ${i}`] as [string, string]),
  ];
  for (const [name, text] of secrets) {
    expect(name.startsWith("/")).toBe(false); // examples name credentials, not host paths
    if (name === opts.skip) continue;
    writeFileSync(join(dir, name), text, { mode: 0o600 });
    chmodSync(join(dir, name), 0o600);
  }
  return dir;
}

describe("examples/", () => {
  test("holds the minimal, auth, DNS-through-the-tunnel, two-exit and two-exit-with-users gateways", () => {
    expect(EXAMPLES).toEqual(["auth.json", "dns-tunnel.json", "minimal.json", "two-exits-users.json", "two-exits.json"]);
  });

  test.each(EXAMPLES)("%s passes egressd check-config", async (example) => {
    const dir = stage(example);
    const r = await run([binary, "check-config", "--config", join(dir, "config.json")], { env: { PATH: "/usr/bin:/bin" } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const effective = JSON.parse(r.stdout);
    const written = JSON.parse(readFileSync(join(ROOT, "examples", example), "utf8"));
    // The several-exit form is printed as written: `exits`, no derived `exit`.
    if (written.exits) expect(effective.exits.map((e: { publicKey: string }) => e.publicKey)).toEqual(written.exits.map((e: { publicKey: string }) => e.publicKey));
    else expect(effective.exit.publicKey).toBe(written.exit.publicKey);
  });

  test("the check can fail: two-exits-users.json without the second exit's PSK or a user's password is refused, naming the field", async () => {
    for (const [skip, field] of [["preshared-key-ovh", "exits[1].presharedKeyFile"], ["proxy-password-ircbot", "proxy.auth.users[1].passwordFile"]] as const) {
      const dir = stage("two-exits-users.json", { skip });
      const r = await run([binary, "check-config", "--config", join(dir, "config.json")], { env: { PATH: "/usr/bin:/bin" } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(field);
    }
  });

  test("the check can fail: auth.json without its password file is refused, naming the field", async () => {
    const dir = stage("auth.json", { skip: "proxy-password" });
    const r = await run([binary, "check-config", "--config", join(dir, "config.json")], { env: { PATH: "/usr/bin:/bin" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("proxy.auth.passwordFile");
  });

  test("what each example is for is in the file", () => {
    const auth = JSON.parse(readFileSync(join(ROOT, "examples/auth.json"), "utf8"));
    expect(auth.proxy.auth.username).toBeString();
    const users = JSON.parse(readFileSync(join(ROOT, "examples/two-exits-users.json"), "utf8"));
    expect(users.proxy.auth.users.some((u: { exit?: string }) => u.exit === users.exits[1].name)).toBe(true); // a user pinned to the second exit
    expect(users.exits.every((e: { presharedKeyFile?: string }) => e.presharedKeyFile)).toBe(true);
    const dns = JSON.parse(readFileSync(join(ROOT, "examples/dns-tunnel.json"), "utf8"));
    expect(dns.proxy.dns.mode).toBe("tunnel");
    for (const e of EXAMPLES) {
      const c = JSON.parse(readFileSync(join(ROOT, "examples", e), "utf8"));
      // Never a wildcard listener, and the proxy is not open to the world.
      expect(c.proxy.listen.every((l: string) => !/^(0\.0\.0\.0|\[::\]):/.test(l))).toBe(true);
      expect(c.proxy.allowClients.length).toBeGreaterThan(0);
    }
  });
});
