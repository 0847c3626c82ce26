/**
 * SOCKS5 UDP ASSOCIATE end to end, with real clients in the lab's client namespace:
 * - through the tunnel (egressd run in gw): Dante's `socksify` wrapping `drill -u` asks the
 *   internet host's DNS server (dnsmasq), which logs the query as coming from the exit's address
 *   (`dig` cannot be socksified for UDP: see its test);
 *   PySocks SOCK_DGRAM and Node's socks package get the exit's address back from a UDP echo;
 * - the standalone `egressd proxy` in gw (no tunnel, run unmarked): the same socksify + dig, seen
 *   from the home router's address instead. (socksify goes direct to destinations on the
 *   client's own networks, loopback included, so a loopback-only test cannot drive it.)
 *
 * Real clients: Dante's socksify (dante-client), drill (ldnsutils), dig (bind9-dnsutils), PySocks
 * (python3-socks), Node's socks package.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildHandle } from "../../lib/exec/runner.ts";
import { labUnsupported, waitUntil } from "../lab/index.ts";
import { danteConf, nodeSocksUdp, PYSOCKS_UDP } from "../proxy/udp-client-scripts.ts";
import { type Bed, BUN, DNS_NAME, egressdBinary, PYTHON, ROOT, startGateway } from "./helpers.ts";

const skip = labUnsupported() ?? (Bun.which("dnsmasq") && Bun.which("socksify") && Bun.which("dig") && Bun.which("drill") ? null : "needs dnsmasq, socksify (dante-client), dig and drill (ldnsutils)");
const UDP_ECHO_PORT = 5353;
const STANDALONE_PORT = 1081;

let bed: Bed;

async function startUdpEcho(b: Bed): Promise<ChildHandle> {
  let ready = false;
  const child = b.lab.spawn(b.lab.ns.inet, [BUN, join(import.meta.dir, "udp-echo.ts"), b.lab.addr.host4, String(UDP_ECHO_PORT)], { onLine: (l) => void (l === "ready" && (ready = true)) });
  await waitUntil(() => {
    if (child.exitStatus !== null) throw new Error(`udp echo exited: ${child.outputTail()}`);
    return ready;
  }, 10_000, "the UDP echo");
  return child;
}

/** `socksify dig +notcp` (or `drill -u`) from the client namespace through `proxy:port`: one A query over UDP. */
async function socksified(tool: "dig" | "drill", port: number): Promise<{ answer: string; output: string }> {
  const lab = bed.lab;
  const conf = join(bed.gw.dir, `dante-${port}.conf`);
  writeFileSync(conf, danteConf(lab.addr.gwLan, port));
  const argv = tool === "dig" ? ["dig", "+notcp", "+tries=1", "+time=3", "+short", `@${lab.addr.host4}`, DNS_NAME, "A"] : ["drill", "-u", "-Q", `@${lab.addr.host4}`, DNS_NAME, "A"];
  const r = await lab.exec(lab.ns.client, ["env", `SOCKS_CONF=${conf}`, "socksify", ...argv], { timeoutMs: 10_000 });
  return { answer: r.stdout.trim(), output: `${r.stdout}${r.stderr}` };
}

/** The daemon's /metrics. */
function metrics() {
  return bed.lab.exec(bed.lab.ns.gw, ["curl", "-sS", "-m", "3", `http://${bed.lab.addr.gwLan}:9586/metrics`]);
}

/** dnsmasq's log line for the newest query of `name`: "query[A] name from ADDR". */
function queriedFrom(name: string, after: number): string | undefined {
  const line = bed.dnsLog.slice(after).reverse().find((l) => l.includes(`query[A] ${name} from `));
  return line?.split(" from ")[1]?.trim();
}

describe.skipIf(skip !== null)("UDP ASSOCIATE in the lab", () => {
  beforeAll(async () => {
    bed = await startGateway();
    await startUdpEcho(bed);
  }, 60_000);
  afterAll(async () => {
    await bed?.destroy();
  });

  test("socksify + drill over UDP through the tunnel: answered, and the DNS server sees the exit's address", async () => {
    const from = bed.dnsLog.length;
    const r = await socksified("drill", 1080);
    expect(r.answer).toBe(bed.lab.addr.host4);
    expect(queriedFrom(DNS_NAME, from)).toBe(bed.lab.addr.exitWan4);
    await bed.gw.waitLog(/proxy connection closed .*address="udp 10\.1\.0\.1:\d+" result=ok .*datagramsUp=1 datagramsDown=1/, 5000);
  }, 30_000);

  // bind9's dig sends through libuv, which calls sendmmsg(2) by syscall(); socksify's preload
  // never sees it, so dig's query reaches the relay socket bare, without a SOCKS5 UDP header.
  // The relay must drop it as malformed (and nothing leaves): this pins both facts, so that a
  // socksify or libuv that changes shows up here.
  test("socksify + dig: the bare query dig's libuv sends past socksify is dropped as malformed, not relayed", async () => {
    const malformed = async () => Number(/^egressd_proxy_udp_dropped_total\{reason="malformed"\} (\d+)$/m.exec((await metrics()).stdout)?.[1]);
    const before = await malformed();
    const from = bed.dnsLog.length;
    const r = await socksified("dig", 1080);
    expect(r.output).toContain("no servers could be reached");
    expect(await malformed()).toBe(before + 1);
    expect(queriedFrom(DNS_NAME, from)).toBeUndefined();
  }, 30_000);

  test("PySocks SOCK_DGRAM through the tunnel: the echo sees the exit's address", async () => {
    const lab = bed.lab;
    const r = await lab.exec(lab.ns.client, [PYTHON, "-c", PYSOCKS_UDP, lab.addr.gwLan, "1080", lab.addr.host4, String(UDP_ECHO_PORT), "hello-python"]);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ data: `${lab.addr.exitWan4} hello-python`, host: lab.addr.host4, port: UDP_ECHO_PORT });
  }, 30_000);

  test("Node's socks package through the tunnel: the echo sees the exit's address", async () => {
    const lab = bed.lab;
    const r = await lab.exec(lab.ns.client, ["node", "--input-type=module", "-e", nodeSocksUdp(ROOT), lab.addr.gwLan, "1080", lab.addr.host4, String(UDP_ECHO_PORT), "hello-node"]);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ data: `${lab.addr.exitWan4} hello-node`, host: lab.addr.host4, port: UDP_ECHO_PORT });
  }, 30_000);

  test("the metrics count the associations and datagrams", async () => {
    const lab = bed.lab;
    const r = await metrics();
    const value = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? NaN);
    expect(value(/^egressd_proxy_udp_associations_total (\d+)$/m)).toBeGreaterThanOrEqual(3);
    expect(value(/^egressd_proxy_udp_datagrams_total\{direction="upstream"\} (\d+)$/m)).toBeGreaterThanOrEqual(3);
    expect(value(/^egressd_proxy_udp_datagrams_total\{direction="downstream"\} (\d+)$/m)).toBeGreaterThanOrEqual(3);
    expect(value(/^egressd_proxy_udp_associations_active (\d+)$/m)).toBe(0);
  }, 30_000);

  test("the standalone egressd proxy (no tunnel): socksify + drill answered, seen from the gateway's WAN address", async () => {
    const lab = bed.lab;
    let listening = false;
    const standalone = lab.spawn(lab.ns.gw, [egressdBinary(), "proxy", "--listen", `${lab.addr.gwLan}:${STANDALONE_PORT}`, "--allow-client", lab.addr.lanPrefix, "--log-format", "text"], {
      onLine: (l) => void (l.includes("proxy listening") && (listening = true)),
    });
    await waitUntil(() => {
      if (standalone.exitStatus !== null) throw new Error(`egressd proxy exited: ${standalone.outputTail()}`);
      return listening;
    }, 10_000, "egressd proxy listening");
    const from = bed.dnsLog.length;
    const r = await socksified("drill", STANDALONE_PORT);
    expect(r.answer).toBe(lab.addr.host4);
    // Run as root, unmarked: out by gw's WAN and the home router's NAT, not the tunnel.
    expect(queriedFrom(DNS_NAME, from)).toBe(lab.addr.gwWan4);
  }, 30_000);
});
