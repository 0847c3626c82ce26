// Layer 2: 10,000+ random and mutated handshakes against a spawned `egressd proxy`, seeded and
// reproducible (FUZZ_SEED=<n> to replay another run). Afterwards the process must still be up,
// every connection must have been closed and logged exactly once, nothing may have been logged as
// an internal error, and a good client must still be served.
//
// Nothing may leave loopback: a mutated request that has become a complete CONNECT has its target
// rewritten to our echo server before it is sent (see `confine`), and domain targets go to an
// in-test DNS server on 127.0.0.1 that answers NXDOMAIN to everything.
import { afterAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { AuthMethod, Command } from "../../lib/proxy/socks5.ts";
import { encodeGreeting } from "../../lib/proxy/socks5-greeting.ts";
import { encodeRequest } from "../../lib/proxy/socks5-request.ts";
import { prng } from "./prng.ts";
import { attackAll } from "./fuzz-attack.ts";
import { cleanup, dnsServer, echoServer, host, httpServer, socksConnect, spawnProxy } from "./helpers.ts";

afterAll(cleanup);

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed1928);
const CASES = Number(process.env.FUZZ_CASES ?? 20_000);
const CONCURRENCY = 200;

const rand = prng(SEED);
const int = (n: number) => Math.floor(rand() * n);
const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

function template(): Uint8Array {
  const greeting = pick([
    encodeGreeting([AuthMethod.noAuth]),
    encodeGreeting([AuthMethod.noAuth, AuthMethod.usernamePassword]),
    encodeGreeting([AuthMethod.usernamePassword]),
    encodeGreeting(Array.from({ length: 1 + int(255) }, (_, i) => i)),
  ]);
  const target = pick([host("127.0.0.1"), host("::1"), host("93.184.216.34"), host("example.test", true), host("a".repeat(1 + int(255)), true)]);
  const request = encodeRequest(pick([Command.connect, Command.connect, Command.bind, Command.udpAssociate, int(256)]), target, int(65536));
  return cat(greeting, request, bytes(pick([0, 0, 1, 16, 300])));
}

function mutate(b: Uint8Array): Uint8Array {
  let out = Uint8Array.from(b);
  for (let k = 1 + int(4); k > 0; k--) {
    const at = int(out.length + 1);
    switch (int(8)) {
      case 0: // flip a bit
        if (out.length) out[at % out.length]! ^= 1 << int(8);
        break;
      case 1: // set a byte
        if (out.length) out[at % out.length] = int(256);
        break;
      case 2: // set a byte to an extreme (lengths, versions, types)
        if (out.length) out[at % out.length] = pick([0, 1, 3, 4, 5, 0x7f, 0x80, 0xfe, 0xff]);
        break;
      case 3: // insert random bytes
        out = cat(out.subarray(0, at), bytes(1 + int(8)), out.subarray(at));
        break;
      case 4: // delete a range
        out = cat(out.subarray(0, at), out.subarray(at + 1 + int(8)));
        break;
      case 5: // truncate
        out = out.subarray(0, at);
        break;
      case 6: // duplicate a slice
        out = cat(out.subarray(0, at), out.subarray(at, at + 1 + int(16)), out.subarray(at));
        break;
      case 7: // splice in another handshake
        out = cat(out.subarray(0, at), template());
        break;
    }
  }
  return out;
}

function generate(): Uint8Array {
  const r = rand();
  if (r < 0.15) return bytes(int(64));
  if (r < 0.25) return bytes(int(700));
  if (r < 0.35) return cat(Uint8Array.of(5), bytes(int(300)));
  if (r < 0.45) return template();
  return mutate(template());
}

/**
 * Walks the bytes as the proxy will (greeting, then request; this proxy requires no auth) and,
 * if they hold a complete CONNECT, points it at `echoPort` on loopback so that nothing is dialed
 * elsewhere. Written independently of lib/proxy on purpose.
 */
function confine(b: Uint8Array, echoPort: number): Uint8Array {
  if (b.length < 2 || b[0] !== 5 || b[1] === 0) return b;
  const req = 2 + b[1]!;
  if (b.length < req || !b.subarray(2, req).includes(0)) return b;
  if (b.length < req + 5 || b[req] !== 5 || b[req + 1] !== 1) return b;
  const out = Uint8Array.from(b);
  const atyp = out[req + 3];
  let portAt: number;
  if (atyp === 1) {
    portAt = req + 8;
    if (out.length < portAt + 2) return b;
    out.set([127, 0, 0, 1], req + 4);
  } else if (atyp === 4) {
    portAt = req + 20;
    if (out.length < portAt + 2) return b;
    out.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1], req + 4);
  } else if (atyp === 3) {
    const len = out[req + 4]!;
    portAt = req + 5 + len;
    if (len === 0 || out.length < portAt + 2) return b;
    // Any name a parser could read as an IP address (digits, hex, dots, colons) becomes "xxx".
    const name = out.subarray(req + 5, portAt);
    if (name.every((c) => /[0-9a-fA-FxX.:]/.test(String.fromCharCode(c)))) name.fill(0x78);
  } else {
    return b;
  }
  out[portAt] = echoPort >> 8;
  out[portAt + 1] = echoPort & 0xff;
  return out;
}

test(`fuzz: ${CASES} random and mutated handshakes (seed ${SEED})`, async () => {
  const echo = echoServer();
  const http = httpServer("still serving\n");
  const dns = await dnsServer({}); // NXDOMAIN for every name
  const proxy = await spawnProxy([
    "--allow-destination", "127.0.0.0/8",
    "--dns", "tunnel", "--dns-server", `${dns.address}:${dns.port}`, "--dns-timeout", "500ms",
    "--handshake-timeout", "500ms",
    "--connect-timeout", "1s",
    "--max-connections", "5000", // within the fd limit of any test machine: no warning
    "--log-level", "debug", // "proxy accepted" lines, to match against "connection closed"
  ]);
  const inputs = Array.from({ length: CASES }, () => ({
    input: confine(generate(), echo.port),
    ending: pick(["fin", "fin", "fin", "fin", "reset", "wait"] as const),
    chunks: 1 + int(4),
    slow: rand() < 0.05,
  }));
  const t0 = Date.now();
  await attackAll(proxy.port, inputs, { concurrency: CONCURRENCY, int });

  expect(proxy.proc.exitCode).toBeNull(); // still running

  // Every accepted connection ends in exactly one summary line, within the deadlines. (A client
  // that resets before the proxy's accept() runs is never seen by the proxy at all; those are the
  // only ones allowed to be missing.)
  const count = (re: RegExp) => proxy.stderr().match(re)?.length ?? 0;
  const resets = inputs.filter((c) => c.ending === "reset").length;
  const deadline = Date.now() + 5000;
  while (count(/proxy connection closed/g) < count(/proxy accepted/g) && Date.now() < deadline) await Bun.sleep(50);
  const accepted = count(/proxy accepted/g);
  if (count(/proxy connection closed/g) !== accepted) await Bun.write(`/tmp/egressd-fuzz-${SEED}.log`, proxy.stderr());
  expect(count(/proxy connection closed/g)).toBe(accepted);
  expect(accepted).toBeGreaterThanOrEqual(CASES - resets);
  // Text log lines are "<time> <level> <message>": nothing at warn or error level.
  expect(proxy.stderr().split("\n").filter((l) => /^\S+ (warn|error) /.test(l))).toEqual([]);
  // No socket was leaked: the proxy holds its listener, stdio and little else.
  expect(readdirSync(`/proc/${proxy.proc.pid}/fd`).length).toBeLessThan(40);

  // ...and a good client is still served.
  const { conn, reply } = await socksConnect(proxy.port, host("127.0.0.1"), echo.port);
  expect(reply.reply).toBe(0);
  conn.write("good client");
  expect(new TextDecoder().decode(await conn.readBytes(11))).toBe("good client");
  const curl = Bun.spawn(["curl", "-sS", "-m", "5", "--socks5", `127.0.0.1:${proxy.port}`, `http://127.0.0.1:${http.port}/`], { stdout: "pipe" });
  expect(await new Response(curl.stdout).text()).toBe("still serving\n");

  const results: Record<string, number> = {};
  for (const m of proxy.stderr().matchAll(/result=(\w+)/g)) results[m[1]!] = (results[m[1]!] ?? 0) + 1;
  console.log(`fuzz seed ${SEED}: ${CASES} cases (${accepted} reached accept) in ${((Date.now() - t0) / 1000).toFixed(1)} s; results ${JSON.stringify(results)}; DNS queries ${dns.queries.length}`);
}, 180_000);
