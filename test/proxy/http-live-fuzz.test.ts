// Layer 2: 10,000+ seeded, mutated HTTP request heads (http-fuzz-cases.ts) against the live
// listener, which speaks SOCKS5 and HTTP on one port. HTTP_LIVE_FUZZ_SEED=<n> replays another run.
// Afterwards every connection must have been closed and logged exactly once, nothing may have been
// logged as an error, no dial may have gone to an address the policy denies, and a good SOCKS5
// client and a good HTTP client must still be served.
//
// Nothing may leave loopback: a mutation can turn 127.0.0.1 into a public address, so the server's
// dialer (an injected `Bun.connect`) sends every allowed dial to the test's own HTTP server on
// loopback, and names resolve through an injected resolver (fuzz.example.test -> 127.0.0.1, every
// other name fails).
import { afterAll, expect, test } from "bun:test";
import { parseCidr, parseIp } from "../../lib/net/ip.ts";
import { checkDestination } from "../../lib/proxy/policy.ts";
import type { Connect } from "../../lib/proxy/dial.ts";
import { ResolveError } from "../../lib/proxy/errors.ts";
import { ProxyServer } from "../../lib/proxy/server.ts";
import type { Logger } from "../../lib/log/logger.ts";
import { httpFuzzCases, prng } from "./http-fuzz-cases.ts";
import { attackAll } from "./fuzz-attack.ts";
import { cleanup, echoServer, host, httpServer, onCleanup, socksConnect } from "./helpers.ts";

afterAll(cleanup);

const SEED = Number(process.env.HTTP_LIVE_FUZZ_SEED ?? 0x1f00d);
const CASES = Number(process.env.HTTP_LIVE_FUZZ_CASES ?? 10_000);
const CONCURRENCY = 200;

const rand = prng(SEED ^ 0x55);
const int = (n: number) => Math.floor(rand() * n);

test(`live fuzz: ${CASES} mutated HTTP heads on the SOCKS5+HTTP port (seed ${SEED})`, async () => {
  const target = httpServer("still serving\n");
  const echo = echoServer();
  const dialed: string[] = [];
  const confined: Connect = (o) => {
    dialed.push(o.hostname);
    return Bun.connect({ ...o, hostname: "127.0.0.1", port: target.port });
  };
  const lines: { level: string; msg: string }[] = [];
  const log: Logger = {
    debugEnabled: false,
    debug() {},
    info: (msg) => void lines.push({ level: "info", msg }),
    warn: (msg) => void lines.push({ level: "warn", msg }),
    error: (msg) => void lines.push({ level: "error", msg }),
  };
  const loopback = parseIp("127.0.0.1")!;
  const server = new ProxyServer({
    listeners: [{ host: "127.0.0.1", port: 0 }],
    allowClients: [parseCidr("127.0.0.0/8")],
    allowDestinations: [parseCidr("127.0.0.0/8"), parseCidr("::1/128")],
    handshakeTimeoutMs: 500,
    connectTimeoutMs: 1000,
    maxConnections: 2000, // within the test machine's fd limit (the proxy warns when it is not)
    dial: confined,
    resolve: async (name) => {
      if (name === "fuzz.example.test") return [loopback];
      throw new ResolveError(name, "ENOTFOUND");
    },
    log,
  });
  server.start();
  onCleanup(() => server.stop());
  const port = Number(server.listening[0]!.split(":").pop());
  const inputs = [...httpFuzzCases(SEED, CASES, { hosts: ["127.0.0.1", "fuzz.example.test", "[::1]", "nx.example.test"], port: 8080 })].map((c) => ({
    input: c.bytes,
    ending: (["fin", "fin", "fin", "reset", "wait"] as const)[int(5)]!,
    chunks: 1 + int(4),
  }));
  const t0 = Date.now();
  await attackAll(port, inputs, { concurrency: CONCURRENCY, int });

  const deadline = Date.now() + 5000;
  while (server.stats.connectionsActive > 0 && Date.now() < deadline) await Bun.sleep(50);
  expect(server.stats.connectionsActive).toBe(0);
  const closedLines = lines.filter((l) => l.msg === "proxy connection closed").length;
  const counted = Object.values(server.stats.connectionsTotal).reduce((a, b) => a + b, 0);
  // Every connection is logged once; the counters hold one per connection plus one per further
  // request forwarded on a kept-alive connection, so they are never fewer.
  expect(closedLines).toBeGreaterThan(CASES * 0.9); // a client reset before accept() is never seen
  expect(counted).toBeGreaterThanOrEqual(closedLines);
  expect(lines.filter((l) => l.level === "warn" || l.level === "error")).toEqual([]);
  // The policy ran before every dial: nothing it denies was ever dialed (public addresses a
  // mutation produced were allowed, and went to the test's server instead).
  const policy = { allowDestinations: [parseCidr("127.0.0.0/8"), parseCidr("::1/128")], ownAddresses: [] };
  expect(dialed.filter((h) => checkDestination(parseIp(h)!, policy) !== null)).toEqual([]);
  expect(dialed.length).toBeGreaterThan(100);
  expect(server.listening.length).toBe(1);

  // ...and a good SOCKS5 client and a good HTTP client are still served.
  const { conn, reply } = await socksConnect(port, host("127.0.0.1"), echo.port);
  expect(reply.reply).toBe(0);
  conn.end();
  const curl = Bun.spawn(["curl", "-sS", "-m", "5", "-x", `http://127.0.0.1:${port}`, `http://fuzz.example.test:8080/`], { stdout: "pipe", stderr: "pipe" });
  expect(await new Response(curl.stdout).text(), await new Response(curl.stderr).text()).toBe("still serving\n");

  const results: Record<string, number> = {};
  for (const [r, n] of Object.entries(server.stats.byProtocol.http.connectionsTotal)) if (n) results[`http/${r}`] = n;
  for (const [r, n] of Object.entries(server.stats.byProtocol.http_connect.connectionsTotal)) if (n) results[`connect/${r}`] = n;
  console.log(`http live fuzz seed ${SEED}: ${CASES} cases, ${closedLines} connections in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${dialed.length} dials; ${JSON.stringify(results)}`);
}, 180_000);
