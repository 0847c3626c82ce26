// Layer 1: RFC 1929 credential checks and password files.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialChecker, readPasswordFile } from "../../lib/proxy/auth.ts";
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
