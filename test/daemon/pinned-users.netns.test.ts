/**
 * Users pinned to an exit, with the compiled egressd and two exits in the lab (`exits: 2`): exit A
 * (`lab-exit`, active) shows up as 198.51.100.2, exit B (`lab-exit2`, standby) as 203.0.113.130, the
 * home connection as 192.0.2.2. curl in the client namespace asks the internet host's whoami
 * server, through the proxy, which address it came from, with `--proxy-user`:
 *
 * - alice is pinned to B, bob is not: over SOCKS5, HTTP CONNECT and forwarded HTTP, alice always
 *   shows B's address and bob A's, although A is the active exit;
 * - with B's UDP dropped (B down, A still up): alice's requests fail, with HTTP 502 naming the
 *   exit once B is judged down, while bob's still leave by A; the gateway's WAN carries no packet
 *   of the proxied traffic throughout, while the unmarked control's does (the positive control);
 * - a reload re-reads the password files: alice's old password stops working, her new one works.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLab, labUnsupported, type Lab } from "../lab/index.ts";
import { dropWireguardUdp, linesWithPort } from "../lab/outage.ts";
import { BUN, type LabDaemon, poll, removeDaemonDirs, ROOT, startLabDaemon } from "./helpers.ts";

const skip = labUnsupported();
const name = (n: string) => (skip ? `${n} [skipped: ${skip}]` : n);
const PROBE = 8081;
const CONTROL = 8082;
const A_WAN = "198.51.100.2";
const B_WAN = "203.0.113.130";
const ALICE = { username: "alice", password: "alice pw" };
const BOB = { username: "bob", password: "bob:pw" };

let lab: Lab;
let daemon: LabDaemon | null = null;
let dir: string;

/** Writes a password file the lab uid owns, mode 0600. */
function secret(file: string, text: string): void {
  writeFileSync(join(dir, file), text + "\n");
  chownSync(join(dir, file), lab.uid, lab.uid);
  chmodSync(join(dir, file), 0o600);
}

beforeAll(async () => {
  if (skip) return;
  lab = await createLab({ prefix: "egdpu", exits: 2 });
  let ready = false;
  const whoami = lab.spawn(lab.ns.inet, [BUN, join(ROOT, "main.ts"), "demo", "--serve-whoami", lab.addr.host4], { onLine: (l) => void (l === "ready" && (ready = true)) });
  await poll(() => ready || whoami.exitStatus !== null, 15_000, "whoami");
  await lab.startEchoServer(PROBE);
  await lab.startEchoServer(CONTROL);
  dir = mkdtempSync(join(tmpdir(), "egressd-pinned-users-"));
  secret("alice-password", ALICE.password);
  secret("bob-password", BOB.password);
  daemon = await startLabDaemon(lab, {
    dir,
    config: (c) => {
      delete c.exit;
      c.interface = { privateKeyFile: "private-key" };
      c.exits = lab.exits.map((e) => ({ name: e.name, publicKey: e.publicKey, endpoint: e.endpoint, addresses: [...e.gatewayAddresses], interface: e.gatewayWg }));
      c.failover = { probe: { target: { kind: "tcp", host: lab.addr.host4, port: PROBE } } };
      c.proxy.auth = {
        users: [
          { username: ALICE.username, passwordFile: join(dir, "alice-password"), exit: "lab-exit2" },
          { username: BOB.username, passwordFile: join(dir, "bob-password") },
        ],
      };
    },
  });
}, 90_000);

afterAll(async () => {
  await daemon?.stop();
  await lab?.destroy();
  removeDaemonDirs();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

type How = "socks5" | "connect" | "forward";

/** One request through the proxy as `user`: [curl's exit code, HTTP status, the body trimmed]. */
async function whoamiAs(how: How, user: { username: string; password: string }, seconds = 3): Promise<[number, number, string]> {
  const proxy = how === "socks5" ? ["--socks5", `${lab.addr.gwLan}:1080`] : ["-x", `http://${lab.addr.gwLan}:1080`, ...(how === "connect" ? ["--proxytunnel"] : [])];
  const code = how === "connect" ? "%{http_connect}" : "%{http_code}";
  const r = await lab.exec(lab.ns.client, ["curl", "-sS", "-m", String(seconds), ...proxy, "--proxy-user", `${user.username}:${user.password}`, "-w", `\n${code}`, `http://${lab.addr.host4}/`], { timeoutMs: (seconds + 5) * 1000 });
  const out = r.stdout;
  const nl = out.lastIndexOf("\n");
  return [r.exitCode ?? -1, Number(out.slice(nl + 1)), out.slice(0, nl).trim()];
}

/** The unmarked control: straight out of the gateway's WAN, as another uid. */
async function control(): Promise<string> {
  const r = await lab.exec(lab.ns.gw, ["ncat", "--recv-only", "-w", "2", lab.addr.host4, String(CONTROL)], { uid: lab.uid + 1 });
  return r.stdout.trim();
}

/** The WAN capture lines of the proxied traffic (to or from the whoami server's port 80). */
function proxied(lines: readonly string[]): string[] {
  return linesWithPort(lines, 80).filter((l) => l.includes(lab.addr.host4));
}

describe.skipIf(skip !== null)("users pinned to an exit (compiled egressd, two exits)", () => {
  test(name("alice (pinned to B) always shows B's address, bob (unpinned) the active exit A's, over SOCKS5, HTTP CONNECT and forwarding"), async () => {
    await poll(async () => (await daemon!.control("status")).exits.every((e: any) => e.health === "up"), 60_000, "both exits up");
    // status names each exit's pins (usernames, never passwords).
    const pins = Object.fromEntries((await daemon!.control("status")).exits.map((e: any) => [e.name, e.pinned]));
    expect(pins).toEqual({ "lab-exit": [], "lab-exit2": ["user alice"] });
    for (let i = 0; i < 2; i++) {
      for (const how of ["socks5", "connect", "forward"] as const) {
        expect([how, ...(await whoamiAs(how, ALICE))]).toEqual([how, 0, 200, B_WAN]);
        expect([how, ...(await whoamiAs(how, BOB))]).toEqual([how, 0, 200, A_WAN]);
      }
    }
    const closed = daemon!.logs.filter((l) => l.msg === "proxy connection closed" && l.result === "ok");
    expect(closed.filter((l) => l.user === "alice").every((l) => l.exit === "lab-exit2")).toBe(true);
    expect(closed.filter((l) => l.user === "bob").every((l) => l.exit === "lab-exit")).toBe(true);
    expect(closed.filter((l) => l.user === "alice").length).toBe(6);
    expect(daemon!.logText()).not.toContain(ALICE.password);
  }, 120_000);

  test(name("B down: alice's requests fail (502 naming the exit), bob's leave by A; nothing leaks on the WAN"), async () => {
    const cap = await lab.capture(lab.ns.gw, "wan", `tcp and host ${lab.addr.host4}`);
    const b = lab.exits[1]!;
    await dropWireguardUdp(lab, b.ns, true);
    const seen: string[] = [];
    try {
      // Before B is judged down, alice's packets go into B's dead tunnel and her requests time out;
      // after, they fail at once. Either way nothing of hers may show up anywhere else.
      await poll(async () => {
        const [, status, body] = await whoamiAs("forward", ALICE, 2);
        seen.push(`${status} ${body}`);
        return (await daemon!.control("status")).exits.find((e: any) => e.name === "lab-exit2")?.health === "down";
      }, 60_000, "exit B judged down");
      const [exitCode, status, body] = await whoamiAs("forward", ALICE);
      expect([exitCode, status]).toEqual([0, 502]);
      expect(body).toContain("exit lab-exit2 is down, and user alice is pinned to it");
      const socks = await whoamiAs("socks5", ALICE);
      expect(socks[0]).not.toBe(0); // curl: the proxy answered "network unreachable"
      expect((await whoamiAs("connect", ALICE))[1]).toBe(502);
      for (const how of ["socks5", "connect", "forward"] as const) expect(await whoamiAs(how, BOB)).toEqual([0, 200, A_WAN]);
      expect(await control()).toBe(lab.addr.gwWan4); // positive control, during the outage
    } finally {
      await dropWireguardUdp(lab, b.ns, false);
    }
    const { lines } = await cap.stop();
    // alice never got an answer from anywhere while B was down: not through A, not from home.
    expect(seen.filter((s) => s.includes(A_WAN) || s.includes(lab.addr.gwWan4) || s.includes(B_WAN))).toEqual([]);
    expect(proxied(lines)).toEqual([]);
    expect(linesWithPort(lines, CONTROL).length).toBeGreaterThan(0);
    const refused = daemon!.logs.filter((l) => l.msg === "proxy connection closed" && l.user === "alice" && String(l.reason).includes("exit lab-exit2 is down"));
    expect(refused.length).toBeGreaterThan(0);
    await poll(async () => (await whoamiAs("socks5", ALICE))[2] === B_WAN, 60_000, "alice back through B once it is up");
  }, 180_000);

  test(name("a reload re-reads the password files"), async () => {
    secret("alice-password", "alice's new pw");
    const from = daemon!.logs.length;
    daemon!.signal("SIGHUP");
    const line = await daemon!.waitLog((l) => /^(reloaded$|reload refused|reload failed)/.test(l.msg), 20_000, "the reload's log line", from);
    expect(line.msg).toBe("reloaded");
    expect((await whoamiAs("forward", ALICE))[1]).toBe(407);
    expect(await whoamiAs("forward", { username: "alice", password: "alice's new pw" })).toEqual([0, 200, B_WAN]);
    expect(await whoamiAs("socks5", BOB)).toEqual([0, 200, A_WAN]);
  }, 60_000);
});
