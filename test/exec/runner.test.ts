import { describe, expect, test } from "bun:test";
import { createRunner } from "../../lib/exec/runner.ts";
import { CommandError, MissingToolError } from "../../lib/exec/errors.ts";
import { FakeRunner } from "./fake.ts";
import { formatArgv } from "../../lib/exec/argv.ts";
import { createLogger } from "../../lib/log/logger.ts";

function capture() {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: "debug", format: "text", write: (l) => lines.push(l), now: () => 0 }) };
}

describe("createRunner", () => {
  test("runs argv without a shell, with LC_ALL=C, and logs `[#] argv` at debug", async () => {
    const { lines, log } = capture();
    const r = createRunner({ log });
    const res = await r.run(["sh", "-c", 'printf "%s|%s" "$LC_ALL" "$1"', "sh", "a b; $(rm -rf /)"]);
    expect(res.stdout).toBe("C|a b; $(rm -rf /)");
    expect(lines).toEqual([`1970-01-01T00:00:00.000Z debug [#] sh -c 'printf "%s|%s" "$LC_ALL" "$1"' sh 'a b; $(rm -rf /)'`]);
  });

  test("stdin carries secrets; neither stdin nor stdout is logged or put in errors", async () => {
    const { lines, log } = capture();
    const r = createRunner({ log });
    expect((await r.run(["cat"], { stdin: "SECRET-KEY" })).stdout).toBe("SECRET-KEY");
    const err = await r.run(["sh", "-c", "cat; echo oops >&2; exit 3"], { stdin: "SECRET-KEY" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(JSON.stringify({ ...(err as CommandError), message: (err as Error).message })).not.toContain("SECRET-KEY");
    expect(lines.join("\n")).not.toContain("SECRET-KEY");
  });

  test("a non-zero exit throws CommandError with argv, exit code and stderr", async () => {
    const err = (await createRunner().run(["sh", "-c", "echo 'Error: Unknown device type.' >&2; exit 2"]).catch((e: unknown) => e)) as CommandError;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.argv).toEqual(["sh", "-c", "echo 'Error: Unknown device type.' >&2; exit 2"]);
    expect(err.exitCode).toBe(2);
    expect(err.stderr).toBe("Error: Unknown device type.");
    expect(err.timedOut).toBe(false);
    expect(err.message).toBe("`sh -c 'echo '\\''Error: Unknown device type.'\\'' >&2; exit 2'` exited with status 2: Error: Unknown device type.");
  });

  test("a command past its timeout is killed and reported as timed out", async () => {
    const start = performance.now();
    const err = (await createRunner({ timeoutMs: 100 }).run(["sleep", "5"]).catch((e: unknown) => e)) as CommandError;
    expect(performance.now() - start).toBeLessThan(2000);
    expect(err.timedOut).toBe(true);
    expect(err.signal).toBe("SIGKILL");
  });

  test("a missing tool names its Debian package, before any prefix runs", async () => {
    const err = (await createRunner({ path: "/nonexistent", prefix: ["env"] }).run(["nft", "--version"]).catch((e: unknown) => e)) as MissingToolError;
    expect(err).toBeInstanceOf(MissingToolError);
    expect(err.tool).toBe("nft");
    expect(err.package).toBe("nftables");
    expect(err.message).toBe('required tool "nft" was not found on PATH (/nonexistent); install the Debian package "nftables"');
  });

  test("a prefix wraps the resolved tool", async () => {
    const res = await createRunner({ prefix: ["env", "EGT_PREFIX=1"] }).run(["sh", "-c", "echo $EGT_PREFIX"]);
    expect(res.stdout.trim()).toBe("1");
  });

  test("start: pid, line callback, kill, exit status and output tail", async () => {
    const seen: string[] = [];
    const child = createRunner().start(["sh", "-c", "echo ready; echo warn >&2; exec sleep 30"], { onLine: (l, s) => seen.push(`${s}:${l}`) });
    expect(child.pid).toBeGreaterThan(0);
    while (seen.length < 2) await Bun.sleep(10);
    expect(child.exitStatus).toBeNull();
    child.kill("SIGTERM");
    expect(await child.exited).toEqual({ exitCode: null, signal: "SIGTERM" });
    expect(seen.sort()).toEqual(["stderr:warn", "stdout:ready"]);
    expect(child.outputTail()).toContain("ready");
    child.kill(); // a no-op once exited
  });
});

describe("FakeRunner", () => {
  test("records argv and stdin, answers scripted replies (later rules win), succeeds otherwise", async () => {
    const f = new FakeRunner().on("ip -j link", { stdout: "[]" }).on("ip -j link show dev x", { exitCode: 1, stderr: "Device \"x\" does not exist." });
    expect((await f.run(["ip", "-j", "link", "show"])).stdout).toBe("[]");
    await expect(f.run(["ip", "-j", "link", "show", "dev", "x"])).rejects.toBeInstanceOf(CommandError);
    await f.run(["nft", "-f", "-"], { stdin: "table inet t {}" });
    expect(f.lines()).toEqual(["ip -j link show", "ip -j link show dev x", "nft -f -  <stdin 15 bytes>"]);
    expect(f.mutations()).toEqual(["nft -f -  <stdin 15 bytes>"]);
  });
  test("missing tools and strict mode", async () => {
    const f = new FakeRunner({ unmatched: "throw" }).missing("wg");
    await expect(f.run(["wg", "show"])).rejects.toBeInstanceOf(MissingToolError);
    await expect(f.run(["ip", "link"])).rejects.toThrow("no reply scripted");
  });
});

test("formatArgv quotes only what a shell would need", () => {
  expect(formatArgv(["wg", "set", "wg0", "peer", "abc+/=", "endpoint", "[2001:db8::1]:51820"])).toBe("wg set wg0 peer abc+/= endpoint '[2001:db8::1]:51820'");
  expect(formatArgv(["echo", "", "it's"])).toBe("echo '' 'it'\\''s'");
});
