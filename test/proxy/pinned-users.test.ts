/**
 * Users pinned to an exit, on loopback with real clients (curl) where one exists: an exit's tunnel
 * address is 127.0.0.2 (exit "b") or 127.0.0.3 (exit "a") here, and a target that answers with
 * the address the connection came from shows which "exit" it left by.
 *
 * - a pinned user's SOCKS5 CONNECT, HTTP CONNECT, forwarded HTTP and UDP ASSOCIATE bind its exit's
 *   address; an unpinned user's do not;
 * - while its exit is down, a pinned user fails at once with the protocol's reply (SOCKS5 0x03,
 *   HTTP 502 naming the exit) and the target sees nothing; an unpinned user is unaffected;
 * - a user pin and a listener pin that disagree are refused (0x02 / 403); that agree, pass;
 * - the connection's log line names the user and the exit; wrong passwords count as auth failures.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Logger } from "../../lib/log/logger.ts";
import { parseCidr } from "../../lib/net/ip.ts";
import { ProxyServer, type ProxyServerOptions } from "../../lib/proxy/server.ts";
import { AuthMethod, Command, Reply } from "../../lib/proxy/socks5.ts";
import { encodeAuthRequest, encodeGreeting, parseAuthReply, parseMethodSelection } from "../../lib/proxy/socks5-greeting.ts";
import { encodeRequest, parseReply } from "../../lib/proxy/socks5-request.ts";
import { parseUdpDatagram } from "../../lib/proxy/socks5-udp.ts";
import { cleanup, host, onCleanup, RawConn, socksConnect, until } from "./helpers.ts";
import { peer, udpEcho, wrap } from "./udp-helpers.ts";

afterEach(cleanup);

const LOOPBACK = [parseCidr("127.0.0.0/8"), parseCidr("::1/128")];
const EXIT_A = { 4: "127.0.0.3", exit: "a" } as const;
const EXIT_B = { 4: "127.0.0.2", exit: "b" } as const;
const ALICE = { username: "alice", password: "alice-pw" }; // pinned to b
const BOB = { username: "bob", password: "bob pw:with colon" }; // not pinned
const CAROL = { username: "carol", password: "carol-pw" }; // pinned to a

/** A free TCP port on 127.0.0.1 (a pinned listener is keyed by its address, so port 0 will not do). */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** An HTTP server on 127.0.0.1 that answers every request with the peer address it came from. */
function whoami(): { port: number; seen: string[] } {
  const seen: string[] = [];
  const s = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, server) {
      const from = server.requestIP(req)?.address ?? "?";
      seen.push(from);
      return new Response(from);
    },
  });
  onCleanup(() => s.stop(true));
  return { port: s.port!, seen };
}

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const line = (msg: string, f?: Record<string, unknown>) => lines.push([msg, ...Object.entries(f ?? {}).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${String(v)}`)].join(" "));
  const log = { debugEnabled: false, debug: () => undefined, info: line, warn: line, error: line } as unknown as Logger;
  return { log, lines };
}

/** A proxy with alice (b), bob (unpinned), carol (a); listener `plain`, and `pinnedToA` pinned to exit a. */
function start(opts: Partial<ProxyServerOptions> = {}): { server: ProxyServer; plain: number; pinnedToA: number; lines: string[] } {
  const plain = freePort();
  const pinnedToA = freePort();
  const { log, lines } = recordingLog();
  const server = new ProxyServer({
    listeners: [{ host: "127.0.0.1", port: plain }, { host: "127.0.0.1", port: pinnedToA }],
    allowClients: LOOPBACK,
    allowDestinations: LOOPBACK,
    auth: [{ ...ALICE, source: EXIT_B }, BOB, { ...CAROL, source: EXIT_A }],
    pinned: new Map([[`127.0.0.1:${pinnedToA}`, EXIT_A]]),
    exits: [EXIT_A, EXIT_B, { 4: "127.0.0.1", exit: "home-test" }],
    log,
    ...opts,
  });
  server.start();
  onCleanup(() => server.stop());
  return { server, plain, pinnedToA, lines };
}

/** curl through the proxy; resolves to [HTTP status, body]. `how`: socks5h, http (forward) or connect. */
async function curl(how: "socks5h" | "http" | "connect", proxyPort: number, user: { username: string; password: string }, url: string): Promise<[number, string]> {
  const scheme = how === "socks5h" ? "socks5h" : "http";
  // A refused CONNECT's status is %{http_connect}; %{http_code} is that of the request inside.
  const code = how === "connect" ? "%{http_connect}" : "%{http_code}";
  const args = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", `\n${code}`, "-x", `${scheme}://127.0.0.1:${proxyPort}`, "--proxy-user", `${user.username}:${user.password}`];
  if (how === "connect") args.push("--proxytunnel");
  const p = Bun.spawn([...args, url], { stdout: "pipe", stderr: "pipe" });
  const [out] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  const nl = out.lastIndexOf("\n");
  return [Number(out.slice(nl + 1)), out.slice(0, nl)];
}

describe("users pinned to an exit", () => {
  test.each(["socks5h", "http", "connect"] as const)("%s: a pinned user leaves by its exit's address, an unpinned one does not", async (how) => {
    const target = whoami();
    const { plain } = start();
    const url = `http://127.0.0.1:${target.port}/`;
    expect(await curl(how, plain, ALICE, url)).toEqual([200, "127.0.0.2"]);
    expect(await curl(how, plain, BOB, url)).toEqual([200, "127.0.0.1"]);
    expect(await curl(how, plain, CAROL, url)).toEqual([200, "127.0.0.3"]);
    expect(target.seen).toEqual(["127.0.0.2", "127.0.0.1", "127.0.0.3"]);
  });

  test("the log line names the user and the exit it left by, pinned or not", async () => {
    const target = whoami();
    const { plain, lines } = start();
    await curl("socks5h", plain, ALICE, `http://127.0.0.1:${target.port}/`);
    await curl("http", plain, BOB, `http://127.0.0.1:${target.port}/`);
    await until(() => lines.filter((l) => l.startsWith("proxy connection closed")).length === 2);
    const closed = lines.filter((l) => l.startsWith("proxy connection closed"));
    expect(closed[0]).toContain(" user=alice exit=b result=ok");
    expect(closed[1]).toContain(" user=bob exit=home-test result=ok");
    expect(lines.join("\n")).not.toContain("alice-pw");
  });

  test("a wrong password is an auth failure whoever it names; no user is matched by another's password", async () => {
    const { plain, server } = start();
    await expect(socksConnect(plain, host("127.0.0.1"), 9, { auth: { username: "alice", password: BOB.password } })).rejects.toThrow("auth failed with status 1");
    const [status] = await curl("http", plain, { username: "bob", password: ALICE.password }, "http://127.0.0.1:9/");
    expect(status).toBe(407);
    expect(server.stats.authFailures).toBe(2);
  });

  describe("its exit down", () => {
    test("SOCKS5: network unreachable (0x03) at once; the target sees nothing; an unpinned user passes", async () => {
      const target = whoami();
      const { plain, lines } = start({ exitDown: (e) => e === "b" });
      // The target is reachable: only the exit's health can refuse this.
      const r = await socksConnect(plain, host("127.0.0.1"), target.port, { auth: ALICE });
      expect(r.reply.reply).toBe(Reply.networkUnreachable);
      expect(await curl("socks5h", plain, BOB, `http://127.0.0.1:${target.port}/`)).toEqual([200, "127.0.0.1"]);
      expect(target.seen).toEqual(["127.0.0.1"]);
      await until(() => lines.some((l) => l.includes("user=alice")));
      expect(lines.find((l) => l.includes("user=alice"))).toContain("reason=exit b is down, and user alice is pinned to it");
    });

    test.each(["http", "connect"] as const)("HTTP (%s): 502 with a reason naming the exit; the target sees nothing", async (how) => {
      const target = whoami();
      const { plain } = start({ exitDown: (e) => e === "b" });
      const [status, body] = await curl(how, plain, ALICE, `http://127.0.0.1:${target.port}/`);
      expect(status).toBe(502);
      // curl shows a forwarded request's error body; for CONNECT it only reports the status.
      if (how === "http") expect(body).toContain("exit b is down, and user alice is pinned to it");
      expect(target.seen).toEqual([]);
    });

    test("UDP ASSOCIATE of a pinned user is refused with network unreachable", async () => {
      const { plain } = start({ exitDown: (e) => e === "b" });
      const { reply } = await associateAs(plain, ALICE);
      expect(reply.reply).toBe(Reply.networkUnreachable);
    });
  });

  describe("with a pinned listener", () => {
    test("a user pinned elsewhere is refused (SOCKS5 0x02, HTTP 403), never sent by either exit", async () => {
      const target = whoami();
      const { pinnedToA, lines } = start();
      const r = await socksConnect(pinnedToA, host("127.0.0.1"), target.port, { auth: ALICE });
      expect(r.reply.reply).toBe(Reply.notAllowed);
      const [status, body] = await curl("http", pinnedToA, ALICE, `http://127.0.0.1:${target.port}/`);
      expect(status).toBe(403);
      expect(body).toContain("user alice is pinned to exit b but this listener to exit a");
      expect(target.seen).toEqual([]);
      const results = (prefix: string) => lines.filter((l) => l.startsWith(prefix) && l.includes("user=alice")).map((l) => /result=(\S+)/.exec(l)![1]);
      expect(results("proxy connection closed")).toEqual(["denied_destination", "denied_destination"]);
      expect(results("proxy http request")).toEqual(["denied_destination"]); // the forwarded request's own line
    });

    test("an unpinned user takes the listener's exit; a user pinned to the same exit passes", async () => {
      const target = whoami();
      const { pinnedToA } = start();
      expect(await curl("socks5h", pinnedToA, BOB, `http://127.0.0.1:${target.port}/`)).toEqual([200, "127.0.0.3"]);
      expect(await curl("http", pinnedToA, CAROL, `http://127.0.0.1:${target.port}/`)).toEqual([200, "127.0.0.3"]);
    });
  });

  test("UDP ASSOCIATE: a pinned user's datagrams leave from its exit's address, an unpinned user's do not", async () => {
    const echo = await udpEcho("127.0.0.1");
    const { plain } = start();
    for (const [user, want] of [[ALICE, "127.0.0.2"], [BOB, "127.0.0.1"]] as const) {
      const { reply } = await associateAs(plain, user);
      expect(reply.reply).toBe(Reply.succeeded);
      const client = await peer("127.0.0.1");
      client.sock.send(wrap("127.0.0.1", echo.sock.port, "hi"), reply.port, "127.0.0.1");
      const back = await client.next(3000);
      expect(back).not.toBeNull();
      const d = parseUdpDatagram(back!.data);
      if (d instanceof Error) throw d;
      expect(new TextDecoder().decode(d.data)).toBe("echo:hi");
      expect(echo.seen.at(-1)!.address).toBe(want);
    }
  });

  test("resetFrom(the exit's addresses) ends a pinned user's UDP association", async () => {
    const { plain, server } = start();
    const { conn, reply } = await associateAs(plain, ALICE);
    expect(reply.reply).toBe(Reply.succeeded);
    expect(server.resetFrom(["127.0.0.2"], "exit b went down")).toBe(1);
    await conn.closed;
  });
});

/** UDP ASSOCIATE with username/password over a fresh control connection. */
async function associateAs(port: number, user: { username: string; password: string }): Promise<{ conn: RawConn; reply: Awaited<ReturnType<typeof socksConnect>>["reply"] }> {
  const conn = await RawConn.connect(port, "127.0.0.1");
  conn.write(encodeGreeting([AuthMethod.usernamePassword]));
  expect(await conn.read(parseMethodSelection)).toBe(AuthMethod.usernamePassword);
  conn.write(encodeAuthRequest(user.username, user.password));
  expect(await conn.read(parseAuthReply)).toBe(0);
  conn.write(encodeRequest(Command.udpAssociate, host("0.0.0.0"), 0));
  return { conn, reply: await conn.read(parseReply) };
}
