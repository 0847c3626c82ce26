// Layer 1: RFC 1929 credential checks (one account or several, pinned or not), how a user's pin
// meets a listener's, and password files.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialChecker, MAX_USERS, readPasswordFile } from "../../lib/proxy/auth.ts";
import { combinePins } from "../../lib/proxy/pin.ts";
import { ProxyConfigError } from "../../lib/proxy/errors.ts";

const enc = (s: string) => new TextEncoder().encode(s);

describe("CredentialChecker", () => {
  const checker = new CredentialChecker({ username: "pod", password: "s3cret ✓" });
  test.each([
    ["pod", "s3cret ✓", true],
    ["pod", "s3cret", false],
    ["pod", "s3cret ✓ ", false],
    ["Pod", "s3cret ✓", false],
    ["pod2", "s3cret ✓", false],
    ["", "", false],
    ["s3cret ✓", "pod", false],
  ])("%p / %p -> %p", (u, p, want) => {
    expect(checker.check({ username: enc(u), password: enc(p) })).toBe(want);
  });
  test("rejects unusable credentials at construction", () => {
    expect(() => new CredentialChecker({ username: "", password: "x" })).toThrow(ProxyConfigError);
    expect(() => new CredentialChecker({ username: "x", password: "p".repeat(256) })).toThrow(ProxyConfigError);
  });
  test("keeps the password out of its enumerable state", () => {
    expect(JSON.stringify(checker)).not.toContain("s3cret");
  });
});

describe("CredentialChecker with several accounts", () => {
  const B = { 4: "10.100.1.2", exit: "ovh" };
  const checker = new CredentialChecker([
    { username: "alice", password: "pw-a", source: B },
    { username: "bob", password: "pw-b" },
    { username: "carol", password: "pw-a" }, // the same password as alice's: the pair decides
  ]);
  test.each([
    ["alice", "pw-a", { username: "alice", source: B }],
    ["bob", "pw-b", { username: "bob", source: null }],
    ["carol", "pw-a", { username: "carol", source: null }],
    ["alice", "pw-b", null], // another account's password
    ["bob", "pw-a", null],
    ["dave", "pw-a", null],
    ["", "", null],
    ["alice ", "pw-a", null],
  ])("%p / %p -> %p", (u, p, want) => {
    expect(checker.match({ username: enc(u), password: enc(p) })).toEqual(want);
    expect(checker.check({ username: enc(u), password: enc(p) })).toBe(want !== null);
  });
  test("lists its usernames, never a password", () => {
    expect(checker.usernames).toEqual(["alice", "bob", "carol"]);
    expect(JSON.stringify(checker)).not.toContain("pw-");
  });
  test.each([
    ["no accounts", [], "auth: needs at least one user"],
    ["a duplicate username", [{ username: "a", password: "x" }, { username: "a", password: "y" }], 'auth[1].username: "a" is already the username of auth[0]'],
    ["an empty password in the second", [{ username: "a", password: "x" }, { username: "b", password: "" }], "auth[1].password: must be 1..255 bytes, not 0"],
    ["a username over 255 bytes", [{ username: "a", password: "x" }, { username: "é".repeat(128), password: "y" }], "auth[1].username: must be 1..255 bytes, not 256"],
    ["over MAX_USERS", Array.from({ length: MAX_USERS + 1 }, (_, i) => ({ username: `u${i}`, password: "p" })), `auth: has ${MAX_USERS + 1} users, more than ${MAX_USERS}`],
  ])("refuses %s", (_name, list, message) => {
    expect(() => new CredentialChecker(list)).toThrow(message);
  });
});

describe("combinePins", () => {
  const A = { 4: "10.100.0.2", exit: "a" };
  const A2 = { 4: "10.100.0.2", 6: "fd00::2", exit: "a" };
  const B = { 4: "10.100.1.2", exit: "b" };
  const user = (source: typeof A | null) => ({ username: "u", source });
  test.each([
    ["no pins", null, null, { source: null }],
    ["the listener's only", A, null, { source: A }],
    ["the user's only", null, B, { source: B }],
    ["both, the same exit", A, A2, { source: A2 }],
    ["both, unnamed and equal addresses", { 4: "10.0.0.9" }, { 4: "10.0.0.9" }, { source: { 4: "10.0.0.9" } }],
    ["both, different exits", A, B, { refusal: "user u is pinned to exit b but this listener to exit a; a connection leaves by neither" }],
    ["both, unnamed and different", { 4: "10.0.0.9" }, { 4: "10.0.0.8" }, { refusal: "user u is pinned to source 10.0.0.8 but this listener to source 10.0.0.9; a connection leaves by neither" }],
  ])("%s", (_name, listener, pin, want) => {
    expect(combinePins(listener, user(pin as typeof A | null))).toEqual(want as never);
  });
});

describe("readPasswordFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "egressd-auth-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string) => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  test.each([
    ["plain", "hunter2", "hunter2"],
    ["trailing newline", "hunter2\n", "hunter2"],
    ["trailing CRLF", "hunter2\r\n", "hunter2"],
    ["only one newline is removed", "hunter2\n\n", "hunter2\n"],
    ["inner spaces kept", " a b ", " a b "],
  ])("%s", async (name, content, want) => {
    expect(await readPasswordFile(file(name.replace(/\W/g, "_"), content))).toBe(want);
  });
  test.each([
    ["empty", ""],
    ["just a newline", "\n"],
    ["too long", "x".repeat(256)],
  ])("%s is refused", async (name, content) => {
    await expect(readPasswordFile(file(name.replace(/\W/g, "_"), content))).rejects.toThrow(ProxyConfigError);
  });
  test("a missing file names the path", async () => {
    await expect(readPasswordFile(join(dir, "missing"))).rejects.toThrow(/missing/);
  });
});
