/**
 * `egressd demo` as a newcomer runs it: the compiled binary, `--once` and `--keep`, what it prints,
 * and that it leaves nothing behind: after success, after Ctrl-C, and after its daemon dies under it.
 * Its refusals (missing tools, not root, bad flags) exit 2 and say what to do.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { cleanupStaleLabs, LAB_ADDRESSES, labUnsupported } from "../lab/index.ts";
import { egressdBinary } from "./helpers.ts";

const skip = labUnsupported() ?? (Bun.which("curl") && Bun.which("nsenter") ? null : "the demo needs curl and nsenter");

interface Demo {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  stdout: string;
  stderr: string;
  /** Resolves when stdout has a line matching `re`. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
  done: Promise<number>;
}

/** Absolute: one test runs the demo with a PATH that has nothing on it. */
const SETPRIV = Bun.which("setpriv") ?? "/usr/bin/setpriv";

/** Every demo started, so that a failed assertion cannot leave a `--keep` demo running. */
const started: Demo[] = [];

function startDemo(args: string[], opts: { env?: Record<string, string | undefined>; prefix?: string[] } = {}): Demo {
  // pdeathsig: should this test process die, the demo gets SIGTERM and tears its lab down.
  const proc = Bun.spawn([...(opts.prefix ?? []), SETPRIV, "--pdeathsig", "TERM", egressdBinary(), "demo", ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: opts.env ?? process.env,
  });
  const d: Demo = {
    proc,
    stdout: "",
    stderr: "",
    async waitFor(re, ms = 30_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = re.exec(d.stdout);
        if (m) return m;
        if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`no ${re} in the demo's output:\n${d.stdout}\n${d.stderr}`);
        await Bun.sleep(20);
      }
    },
    done: null as unknown as Promise<number>,
  };
  const pump = async (s: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    const dec = new TextDecoder();
    for await (const c of s) d[key] += dec.decode(c, { stream: true });
  };
  d.done = Promise.all([pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr")]).then(() => proc.exited);
  started.push(d);
  return d;
}

/** The demo's namespaces still present (names carry the demo's pid). */
async function leftover(pid: number): Promise<string[]> {
  const out = await new Response(Bun.spawn(["ip", "netns", "list"], { stdout: "pipe" }).stdout).text();
  return out.split("\n").filter((l) => l.startsWith(`egdemo-${pid}-`));
}

/** The host's /run/wireguard, which the demo must not change. */
function runWireguard(): string {
  return existsSync("/run/wireguard") ? (statSync("/run/wireguard").mode & 0o7777).toString(8) : "absent";
}
afterEach(async () => {
  // A test that failed before its demo ended: SIGTERM lets the demo tear down; SIGKILL if it hangs,
  // and then the namespaces of its (now dead) pid are stale and removed.
  for (const d of started.splice(0)) {
    if (d.proc.exitCode !== null || d.proc.signalCode !== null) continue;
    d.proc.kill("SIGTERM");
    if (!(await Promise.race([d.done.then(() => true), Bun.sleep(20_000).then(() => false)]))) {
      d.proc.kill("SIGKILL");
      await d.proc.exited;
      await cleanupStaleLabs("egdemo");
    }
  }
}, 30_000);

let runWireguardBefore: string;
beforeAll(() => {
  runWireguardBefore = runWireguard();
});
afterAll(() => {
  // Checked once at the end: other suites' labs may legitimately change it while they run.
  if (skip === null) console.log(`/run/wireguard before the demo tests: ${runWireguardBefore}; after: ${runWireguard()}`);
});

describe.skipIf(skip !== null)("egressd demo", () => {
  test("--once: the client's proxied request leaves with the exit's address, the direct one with the home address; nothing is left", async () => {
    const d = startDemo(["--once"]);
    const code = await d.done;
    console.log(d.stdout);
    expect(d.stderr).toBe("");
    expect(code).toBe(0);
    const row = (label: RegExp) => d.stdout.split("\n").find((l) => label.test(l)) ?? "";
    expect(row(/through the proxy/)).toMatch(new RegExp(`\\s${LAB_ADDRESSES.exitWan4.replace(/\./g, "\\.")}\\s+the exit's address$`));
    expect(row(/directly/)).toMatch(new RegExp(`\\s${LAB_ADDRESSES.gwWan4.replace(/\./g, "\\.")}\\s+the home address$`));
    expect(row(/DNS query/)).toContain(`${LAB_ADDRESSES.exitWan4}`);
    expect(d.stdout).toMatch(/first proxied request answered, \d+\.\d s after start/);
    expect(d.stdout).toMatch(/ip netns exec egdemo-\d+-0-client curl --proxy socks5h:\/\/10\.1\.0\.1:1080 http:\/\/whoami\.example\//);
    expect(d.stdout).toMatch(/exit: wg setconf \S+, with this config rendered from the gateway's:[\s\S]*AllowedIPs = 10\.100\.0\.2\/32, fd00::2\/128/);
    expect(d.stdout).not.toMatch(/PrivateKey = [A-Za-z0-9+/]{43}=/); // the exit's key is not printed
    expect(d.stdout).toMatch(/tunnel: \S+ \((userspace|kernel)\) up/);
    expect(d.stdout).toMatch(/latest handshake: \d+ seconds? ago/);
    expect(d.stdout).toContain("teardown: egressd stopped (exit 0) and removed its tunnel, rules and nft table; the lab's namespaces, interfaces and processes are gone");
    expect(await leftover(d.proc.pid)).toEqual([]);
  }, 60_000);

  test("--keep: stays up until Ctrl-C (SIGINT to its whole process group), then removes everything and exits 0", async () => {
    // setsid (it execs: same pid) makes the demo a process group leader, as a shell's foreground job is.
    const d = startDemo(["--keep"], { prefix: ["setsid"] });
    await d.waitFor(/press Ctrl-C/);
    expect((await leftover(d.proc.pid)).length).toBe(4);
    // While it is up, the commands it prints work, exactly as printed, from outside the demo.
    const line = (await d.waitFor(/^ {2}(ip netns exec egdemo-\d+-0-client curl --proxy socks5h:\S+ \S+)$/m))[1]!;
    const proxied = Bun.spawn(line.split(" "), { stdout: "pipe", stderr: "ignore" }); // stderr: curl's progress meter
    expect((await new Response(proxied.stdout).text()).trim()).toBe(LAB_ADDRESSES.exitWan4);
    const directLine = (await d.waitFor(/^ {2}(ip netns exec egdemo-\d+-0-client curl http:\/\/203\S+)$/m))[1]!;
    const direct = Bun.spawn(directLine.split(" "), { stdout: "pipe", stderr: "ignore" });
    expect((await new Response(direct.stdout).text()).trim()).toBe(LAB_ADDRESSES.gwWan4);
    const statusLine = (await d.waitFor(/^ {2}(\S+ status --socket \S+)$/m))[1]!;
    const status = Bun.spawn(statusLine.split(" "), { stdout: "pipe" });
    expect(await new Response(status.stdout).text()).toMatch(/^egressd \S+, pid \d+/);
    process.kill(-d.proc.pid, "SIGINT"); // what Ctrl-C does: the demo, egressd, wireguard-go, curl... all get it
    expect(await d.done).toBe(0);
    expect(d.stdout).toContain("SIGINT: tearing down");
    expect(d.stdout).toContain("the lab's namespaces, interfaces and processes are gone");
    expect(await leftover(d.proc.pid)).toEqual([]);
  }, 60_000);

  test("--keep: when egressd dies under it, it says so, cleans up and exits 1", async () => {
    const d = startDemo(["--keep"]);
    const pid = Number((await d.waitFor(/run --config \S+, pid (\d+), as uid/))[1]);
    await d.waitFor(/press Ctrl-C/);
    process.kill(pid, "SIGKILL"); // the demo's egressd, started by this test through the demo
    expect(await d.done).toBe(1);
    expect(d.stderr).toContain(`egressd (pid ${pid}) exited by itself (SIGKILL)`);
    expect(d.stdout).toContain("the lab's namespaces, interfaces and processes are gone");
    expect(await leftover(d.proc.pid)).toEqual([]);
  }, 60_000);

  test("a missing tool: exit 2, naming the tools and the one apt-get line that installs them", async () => {
    const d = startDemo(["--once"], { env: { PATH: "/nonexistent" } });
    expect(await d.done).toBe(2);
    expect(d.stderr).toContain("missing: wg (Debian package wireguard-tools)");
    expect(d.stderr).toContain("missing: wireguard-go (Debian package wireguard-go)");
    expect(d.stderr).toContain("install with: apt-get install -y --no-install-recommends iproute2 nftables wireguard-tools wireguard-go util-linux procps curl");
    expect(d.stdout).toBe("");
  });

  test("not root: exit 2, saying why root is needed", async () => {
    const d = startDemo(["--once"], { prefix: ["setpriv", "--reuid=64000", "--regid=64000", "--clear-groups"] });
    expect(await d.done).toBe(2);
    expect(d.stderr).toContain("egressd demo needs root");
  });

  test("flags: --help exits 0; --once with --keep, --uid 0 and unknown flags exit 2", async () => {
    const help = startDemo(["--help"]);
    expect(await help.done).toBe(0);
    expect(help.stdout).toContain("Usage: egressd demo [--once | --keep]");
    for (const args of [["--once", "--keep"], ["--uid", "0"], ["--uid", "x"], ["--bogus"]]) {
      const d = startDemo(args);
      expect({ args, code: await d.done }).toEqual({ args, code: 2 });
      expect(d.stderr).toMatch(/^egressd demo: .*run `egressd demo --help`/);
    }
  });
});
