/**
 * `proxy.auth` with several accounts, each optionally pinned to an exit: the one-account form stays
 * valid, both forms list their accounts alike, password files resolve and are checked per account,
 * and each mistake is one problem naming its field.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { authAccounts } from "../../lib/config/auth.ts";
import { effectiveConfig } from "../../lib/config/effective.ts";
import { ConfigError } from "../../lib/config/errors.ts";
import { loadConfig, parseConfig } from "../../lib/config/load.ts";
import { EXIT_PUBLIC_KEY, makeConfigDir, minimalConfig, problemsOf } from "./fixtures.ts";

const NO_FILES = { checkFiles: false, env: {}, baseDir: "/etc/egressd" } as const;
const SECOND_KEY = "XQY2+iq1v2dtKDyqMZq5s3Y2dxXCBiMiHKa/9biuUH4=";

function twoExits(auth: unknown): Record<string, any> {
  return {
    interface: {},
    exits: [
      { name: "hetzner", publicKey: EXIT_PUBLIC_KEY, endpoint: "vps1.example.net:51820", addresses: ["10.100.0.2/32"] },
      { name: "ovh", publicKey: SECOND_KEY, endpoint: "vps2.example.net:51820", addresses: ["10.100.1.2/32"] },
    ],
    proxy: { listen: ["10.1.0.1:1080", "10.1.0.1:1081"], allowClients: ["10.1.0.0/24"], auth },
  };
}

describe("proxy.auth forms", () => {
  test("the one-account form is read as before, and lists one account named proxy.auth", () => {
    const c = parseConfig({ ...minimalConfig(), proxy: { auth: { username: "bot", passwordFile: "pw" } } }, NO_FILES);
    expect(c.proxy.auth).toEqual({ username: "bot", passwordFile: "/etc/egressd/pw" });
    expect(authAccounts(c.proxy.auth)).toEqual([{ at: "proxy.auth", account: { username: "bot", passwordFile: "/etc/egressd/pw" } }]);
  });

  test("the list form: every password file resolved, pins kept, in order", () => {
    const c = parseConfig(twoExits({ users: [{ username: "alice", passwordFile: "alice-pw", exit: "ovh" }, { username: "bob", passwordFile: "/run/keys/bob" }] }), NO_FILES);
    expect(authAccounts(c.proxy.auth).map((a) => [a.at, a.account.username, a.account.passwordFile, a.account.exit])).toEqual([
      ["proxy.auth.users[0]", "alice", "/etc/egressd/alice-pw", "ovh"],
      ["proxy.auth.users[1]", "bob", "/run/keys/bob", undefined],
    ]);
  });

  test("relative password files are credential names under $CREDENTIALS_DIRECTORY", () => {
    const c = parseConfig(twoExits({ users: [{ username: "a", passwordFile: "proxy-password-a" }, { username: "b", passwordFile: "proxy-password-b" }] }), { ...NO_FILES, env: { CREDENTIALS_DIRECTORY: "/run/credentials/egressd.service" } });
    expect(authAccounts(c.proxy.auth).map((a) => a.account.passwordFile)).toEqual(["/run/credentials/egressd.service/proxy-password-a", "/run/credentials/egressd.service/proxy-password-b"]);
  });

  test("no auth lists no accounts", () => {
    expect(authAccounts(parseConfig(minimalConfig(), NO_FILES).proxy.auth)).toEqual([]);
  });

  test.each([
    ["one account", { username: "bot", passwordFile: "/etc/egressd/pw" }],
    ["one pinned account", { username: "bot", passwordFile: "/etc/egressd/pw", exit: "ovh" }],
    ["several", { users: [{ username: "a", passwordFile: "/etc/egressd/a", exit: "hetzner" }, { username: "b", passwordFile: "/etc/egressd/b" }] }],
  ])("%s round-trips through the effective config as written", (_name, auth) => {
    const c = parseConfig(twoExits(auth), NO_FILES);
    const printed = effectiveConfig(c) as { proxy: { auth: unknown } };
    expect(printed.proxy.auth).toEqual(auth);
    expect(parseConfig(JSON.parse(JSON.stringify(printed)), NO_FILES)).toEqual(c);
  });
});

describe("proxy.auth problems, each naming the field", () => {
  test.each([
    ["an unknown exit", twoExits({ users: [{ username: "a", passwordFile: "a" }, { username: "b", passwordFile: "b", exit: "aws" }] }), 'proxy.auth.users[1].exit: "aws" is not the name of an exit (hetzner, ovh)'],
    ["an unknown exit, one-account form", twoExits({ username: "a", passwordFile: "a", exit: "aws" }), 'proxy.auth.exit: "aws" is not the name of an exit (hetzner, ovh)'],
    ["a duplicate username", twoExits({ users: [{ username: "a", passwordFile: "a" }, { username: "b", passwordFile: "b" }, { username: "a", passwordFile: "c", exit: "ovh" }] }), 'proxy.auth.users[2].username: "a" is already the username of proxy.auth.users[0]'],
    ["a pin without exits", { ...minimalConfig(), proxy: { auth: { users: [{ username: "a", passwordFile: "a", exit: "exit" }] } } }, 'proxy.auth.users[0].exit: "exit" needs "exits" (two or more): with one exit every connection leaves by it already'],
    ["a listener pin without exits", { ...minimalConfig(), proxy: { pinnedListeners: { "127.0.0.1:1080": "exit" } } }, 'proxy.pinnedListeners.127.0.0.1:1080: "exit" needs "exits" (two or more): with one exit every connection leaves by it already'],
    ["an empty list", twoExits({ users: [] }), "proxy.auth.users: [] needs at least 1 item(s)"],
    ["both forms at once", twoExits({ username: "a", passwordFile: "a", users: [{ username: "b", passwordFile: "b" }] }), 'proxy.auth.username: "a" is not allowed together with "users"; move the account into the list'],
    ["a username without a password file", twoExits({ username: "a" }), 'proxy.auth.passwordFile: is required (string), or list accounts in "users"'],
    ["neither form", twoExits({}), 'proxy.auth.username: is required (string), or list accounts in "users"'],
    ["a user without a password file", twoExits({ users: [{ username: "a" }] }), "proxy.auth.users[0].passwordFile: is required (string)"],
    ["a username over 255 characters", twoExits({ users: [{ username: "u".repeat(256), passwordFile: "a" }] }), `proxy.auth.users[0].username: "${"u".repeat(56)}... is too long (at most 255 characters)`],
    ["a typo in a user", twoExits({ users: [{ username: "a", passwordFile: "a", exits: "ovh" }] }), 'proxy.auth.users[0].exits: unknown key; did you mean "exit"?'],
    ["an empty exit name", twoExits({ users: [{ username: "a", passwordFile: "a", exit: "" }] }), 'proxy.auth.users[0].exit: "" is too short (at least 1 character(s))'],
  ])("%s", (_name, input, message) => {
    expect(problemsOf(input)).toContain(message);
  });

  test("over 1024 users is refused", () => {
    const users = Array.from({ length: 1025 }, (_, i) => ({ username: `u${i}`, passwordFile: `p${i}` }));
    expect(problemsOf(twoExits({ users })).join("\n")).toContain("proxy.auth.users: ");
  });

  test("each account's password file is checked on disk under its own path", () => {
    const d = makeConfigDir();
    try {
      writeFileSync(join(d.dir, "ok"), "pw\n", { mode: 0o600 });
      writeFileSync(join(d.dir, "open"), "pw\n", { mode: 0o644 });
      d.write({ ...minimalConfig(), proxy: { auth: { users: [{ username: "a", passwordFile: "ok" }, { username: "b", passwordFile: "open" }, { username: "c", passwordFile: "missing" }] } } });
      let problems: string[] = [];
      try {
        loadConfig(d.configFile, { env: {} });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        problems = e.problems.map((p) => p.path);
      }
      expect(problems).toEqual(["proxy.auth.users[1].passwordFile", "proxy.auth.users[2].passwordFile"]);
    } finally {
      d.remove();
    }
  });
});
