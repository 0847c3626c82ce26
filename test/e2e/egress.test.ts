/**
 * Egress, end to end: independent SOCKS clients in the client namespace (curl, Python's PySocks from
 * Debian's python3-socks, ncat) go through the compiled egressd in gw and reach the internet host with
 * the exit's address; names given to the proxy (`socks5h`) are resolved in `tunnel` DNS mode by
 * dnsmasq on the internet host, and its query log shows every query arriving from the exit.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { labUnsupported } from "../lab/index.ts";
import { type Bed, DNS_NAME, PYTHON, proxiedWhoami, startGateway, WHOAMI_PORT } from "./helpers.ts";

const skip = labUnsupported() ?? (Bun.which("dnsmasq") ? null : "e2e tests need dnsmasq");
let bed: Bed;

beforeAll(async () => {
  if (skip === null) bed = await startGateway();
}, 60_000);
afterAll(async () => {
  await bed?.destroy();
});

/** PySocks: connect through the proxy to host:port and print what the server sends. */
const PYSOCKS = `
import socks, sys
proxy_host, proxy_port, host, port, rdns = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "remote"
s = socks.socksocket()
s.set_proxy(socks.SOCKS5, proxy_host, proxy_port, rdns=rdns)
s.settimeout(5)
s.connect((host, port))
print(s.recv(100).decode().strip())
`;

describe.skipIf(skip !== null)("egress through the tunnel", () => {
  test("curl --socks5 (the client gives an address) sees the exit's address, IPv4 and IPv6", async () => {
    const r4 = await proxiedWhoami(bed.lab);
    expect(r4.stderr).toBe("");
    expect(r4.stdout.trim()).toBe(bed.lab.addr.exitWan4);
    const r6 = await proxiedWhoami(bed.lab, { target: `http://[${bed.lab.addr.host6}]:${WHOAMI_PORT}/` });
    expect(r6.stdout.trim()).toBe(bed.lab.addr.exitWan6);
  });

  test("curl --socks5-hostname (the proxy resolves) sees the exit's address", async () => {
    const r = await proxiedWhoami(bed.lab, { target: `http://${DNS_NAME}:${WHOAMI_PORT}/`, hostname: true });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(bed.lab.addr.exitWan4);
  });

  test("Python socks (PySocks), with local and remote name resolution, sees the exit's address", async () => {
    const { lab } = bed;
    for (const [host, rdns] of [[lab.addr.host4, "local"], [DNS_NAME, "remote"]] as const) {
      const r = await lab.exec(lab.ns.client, [PYTHON, "-c", PYSOCKS, lab.addr.gwLan, "1080", host, String(WHOAMI_PORT), rdns]);
      expect(r.stderr).toBe("");
      expect(r.stdout.trim()).toBe(lab.addr.exitWan4);
    }
  });

  test("ncat --proxy-type socks5, with an address and with --proxy-dns remote, sees the exit's address", async () => {
    const { lab } = bed;
    const ncat = (host: string, extra: string[]) =>
      lab.exec(lab.ns.client, ["ncat", "--proxy", `${lab.addr.gwLan}:1080`, "--proxy-type", "socks5", ...extra, "--recv-only", "-w", "5", host, String(WHOAMI_PORT)]);
    const byAddress = await ncat(lab.addr.host4, []);
    expect(byAddress.stdout.trim()).toBe(lab.addr.exitWan4);
    const byName = await ncat(DNS_NAME, ["--proxy-dns", "remote"]);
    expect(byName.stdout.trim()).toBe(lab.addr.exitWan4);
  });

  test("in tunnel DNS mode, dnsmasq sees every query for the socks5h name come from the exit's address", async () => {
    const queries = bed.dnsLog.filter((l) => l.includes(`query[`) && l.includes(DNS_NAME));
    // curl, PySocks and ncat above each had the proxy resolve the name: A (and AAAA) queries each.
    expect(queries.length).toBeGreaterThanOrEqual(3);
    const sources = new Set(queries.map((l) => / from (\S+)$/.exec(l)?.[1]));
    expect([...sources]).toEqual([bed.lab.addr.exitWan4]);
    console.log(`dnsmasq saw ${queries.length} queries for ${DNS_NAME}, all from ${[...sources].join(", ")}; e.g. "${queries[0]!.replace(/^.*?: /, "")}"`);
  });

  test("the client's direct requests leave with the home address (the positive control for the above)", async () => {
    const { lab } = bed;
    const r = await lab.exec(lab.ns.client, ["ncat", "--recv-only", "-w", "3", lab.addr.host4, String(WHOAMI_PORT)]);
    expect(r.stdout.trim()).toBe(lab.addr.gwWan4);
  });
});
