// Layer 2: the proxy under file-descriptor exhaustion. The real `egressd proxy` runs under
// `prlimit --nofile=256:256` with the default maxConnections (20000), and real sockets hold
// relays open to a local echo server until no fd would be left.
import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AuthMethod, Command, Reply } from "../../lib/proxy/socks5.ts";
import { encodeGreeting, parseMethodSelection } from "../../lib/proxy/socks5-greeting.ts";
import { encodeRequest, parseReply } from "../../lib/proxy/socks5-request.ts";
import { BUN, cleanup, echoServer, host, onCleanup, RawConn, spawnProxy } from "./helpers.ts";

afterAll(cleanup);

/** CPU time (user + system) of a process so far, in seconds, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 (utime, stime) counted from 1; the slice starts at field 3. USER_HZ is 100 on Linux.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

type Outcome = { kind: "served"; conn: RawConn } | { kind: "reply"; code: number } | { kind: "closed" } | { kind: "hung" };

/** One client: SOCKS5 CONNECT to the echo server, then one byte echoed. Never throws. */
async function client(proxyPort: number, echoPort: number): Promise<Outcome> {
  let conn: RawConn;
  try {
    conn = await RawConn.connect(proxyPort);
  } catch {
    return { kind: "closed" }; // refused at connect: the listener is paused
  }
  try {
    conn.write(encodeGreeting([AuthMethod.noAuth]));
    await conn.read(parseMethodSelection, 4000);
    conn.write(encodeRequest(Command.connect, host("127.0.0.1"), echoPort));
    const reply = await conn.read(parseReply, 4000);
    if (reply.reply !== Reply.succeeded) {
      conn.end();
      return { kind: "reply", code: reply.reply };
    }
    conn.write("x");
    await conn.readBytes(1, 4000);
    return { kind: "served", conn };
  } catch (e) {
    const hung = !conn.eof && /timed out/.test(String(e));
    conn.socket.terminate();
    return hung ? { kind: "hung" } : { kind: "closed" };
  }
}

/** A client that connects, sends its greeting, and then stalls: it holds one of the proxy's fds. */
async function staller(proxyPort: number): Promise<Outcome> {
  try {
    const conn = await RawConn.connect(proxyPort);
    conn.write(encodeGreeting([AuthMethod.noAuth]));
    await conn.read(parseMethodSelection, 4000);
    return { kind: "served", conn };
  } catch (e) {
    return /timed out/.test(String(e)) ? { kind: "hung" } : { kind: "closed" };
  }
}

function tally(outcomes: Outcome[]): Record<string, number> {
  const t: Record<string, number> = { served: 0, closed: 0, hung: 0 };
  for (const o of outcomes) {
    const k = o.kind === "reply" ? `reply_${o.code}` : o.kind;
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
}

// Regression: with RLIMIT_NOFILE 256 and maxConnections 20000, the proxy ran out of fds, then spun
// at 100% CPU in its accept loop while new clients hung in the kernel's accept queue.
test("out of file descriptors the proxy refuses the excess, does not spin, and serves again", async () => {
  const echo = echoServer();
  const proxy = await spawnProxy(["--allow-destination", "127.0.0.0/8", "--handshake-timeout", "60s"], { wrap: ["prlimit", "--nofile=256:256", "--"] });
  // It says that the limit cannot hold maxConnections, naming both numbers.
  expect(proxy.stderr()).toMatch(/maxConnections=20000/);
  expect(proxy.stderr()).toMatch(/fdLimit=256/);

  const outcomes: Outcome[] = [];
  for (let i = 0; i < 400; i += 50) {
    outcomes.push(...(await Promise.all(Array.from({ length: 50 }, () => client(proxy.port, echo.port)))));
  }
  // Then clients that stall after their greeting, holding one fd each: enough to take the rest.
  for (let i = 0; i < 200; i += 50) {
    outcomes.push(...(await Promise.all(Array.from({ length: 50 }, () => staller(proxy.port)))));
  }
  const first = tally(outcomes);
  const cpu0 = cpuSeconds(proxy.proc.pid);
  await Bun.sleep(10_000);
  const cpu = cpuSeconds(proxy.proc.pid) - cpu0;
  console.log(`exhaustion: ${JSON.stringify(first)}, proxy CPU ${cpu.toFixed(2)} s in 10 s`);
  expect(first.served).toBeGreaterThan(50);
  expect(first.reply_5).toBeUndefined(); // no local failure passed off as the target's refusal
  expect(first.hung).toBe(0); // every excess client is refused or closed, none left waiting
  expect(cpu).toBeLessThan(2);

  // Free the fds: every client served so far hangs up, and a new client is served again.
  for (const o of outcomes) if (o.kind === "served") o.conn.end();
  await Bun.sleep(500);
  const again = await Promise.all(Array.from({ length: 20 }, () => client(proxy.port, echo.port)));
  expect(tally(again)).toEqual({ served: 20, closed: 0, hung: 0 });
  expect(proxy.proc.exitCode).toBeNull();
}, 60_000);

/** The fixture fd-exhaustion.ts under a low fd limit, driven line by line. */
async function fixture(echoPort: number) {
  const proc = Bun.spawn(["prlimit", "--nofile=128:128", "--", BUN, join(import.meta.dir, "fd-exhaustion.ts"), String(echoPort)], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  onCleanup(async () => {
    proc.kill();
    await proc.exited;
  });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buf = "";
  const next = async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return JSON.parse(line);
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("fixture exited");
      buf += decoder.decode(value, { stream: true });
    }
  };
  const ask = async (cmd: string) => {
    proc.stdin.write(`${cmd}\n`);
    proc.stdin.flush();
    return next();
  };
  const { port } = (await next()) as { port: number };
  return { port, ask };
}

// Regression: with no fd left for the outbound socket, the client got 0x05 "connection refused"
// and the connection was counted as `refused`: the proxy blamed the target for its own shortage.
test("no fd left for the outbound socket: general failure, counted as local_resource, and accepting pauses until fds are free", async () => {
  const echo = echoServer();
  const f = await fixture(echo.port);
  // Started with maxConnections 20, which 128 fds hold: no warning. A reload to 20000 is clamped, and says so.
  const { warnings } = (await f.ask("reload")) as { warnings: string[] };
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(/maxConnections=20000 fdLimit=128 admitting=\d+/);
  expect(await f.ask("fill")).toMatchObject({ code: "EMFILE" });
  const conn = await RawConn.connect(f.port); // takes the last fd
  conn.write(encodeGreeting([AuthMethod.noAuth]));
  await conn.read(parseMethodSelection);
  conn.write(encodeRequest(Command.connect, host("127.0.0.1"), echo.port));
  expect((await conn.read(parseReply)).reply).toBe(Reply.generalFailure);
  const stats = await f.ask("stats");
  expect(stats.connectionsTotal).toMatchObject({ local_resource: 1, refused: 0 });
  // It stopped listening: the next client is refused by the kernel instead of left waiting.
  expect(stats.acceptPauses).toBe(1);
  expect(await RawConn.connect(f.port).then(() => "connected", (e: { code?: string }) => e.code)).toBe("ECONNREFUSED");
  // Once fds are free it listens again, on the same port, and serves.
  await f.ask("free");
  await Bun.sleep(600);
  const again = await client(f.port, echo.port);
  expect(again.kind).toBe("served");
  expect(await f.ask("stats")).toMatchObject({ connectionsTotal: { ok: 1, local_resource: 1 }, acceptPauses: 1 });
}, 30_000);
