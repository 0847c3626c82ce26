/**
 * Run by keepalive.test.ts inside a network namespace of its own (`ip netns exec`), as root:
 *
 *   bun test/proxy/keepalive-outage.ts IDLE INTERVAL COUNT OUTAGE_MS
 *
 * Starts an echo server and `egressd proxy` with that keepalive schedule, relays one echo, then
 * drops every packet of the proxy's target leg with nftables for OUTAGE_MS (the path to the exit
 * going dark while the connection sits idle), lifts the drop and tries one more echo. Prints
 * `{"survived":bool,"closedAtMs":number|null}`: closedAtMs is when the client saw its connection
 * closed, counted from the start of the outage.
 */
import { cleanup, echoServer, host, socksConnect, spawnProxy } from "./helpers.ts";

const [idle, interval, count, outageText] = process.argv.slice(2);
const outageMs = Number(outageText);

async function nft(script: string): Promise<void> {
  const p = Bun.spawn(["nft", "-f", "-"], { stdin: new TextEncoder().encode(script), stderr: "pipe" });
  if ((await p.exited) !== 0) throw new Error(`nft failed: ${await new Response(p.stderr).text()}`);
}

try {
  const echo = echoServer();
  const proxy = await spawnProxy(["--allow-destination", "127.0.0.0/8", "--keepalive-idle", idle!, "--keepalive-interval", interval!, "--keepalive-count", count!]);
  const { conn } = await socksConnect(proxy.port, host("127.0.0.1"), echo.port);
  conn.write("before");
  await conn.readBytes(6);
  const t0 = performance.now();
  let closedAtMs: number | null = null;
  void conn.closed.then(() => (closedAtMs ??= Math.round(performance.now() - t0)));
  await nft(`table inet egressd_outage {\n chain out {\n type filter hook output priority 0; tcp dport ${echo.port} drop; tcp sport ${echo.port} drop\n }\n}\n`);
  await Bun.sleep(outageMs);
  await nft("delete table inet egressd_outage");
  let survived = false;
  if (closedAtMs === null) {
    conn.write("after");
    survived = new TextDecoder().decode(await conn.readBytes(5, 3000).catch(() => new Uint8Array())) === "after";
  }
  console.log(JSON.stringify({ survived, closedAtMs }));
} finally {
  await cleanup();
}
