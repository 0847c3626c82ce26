/**
 * Restart and reload with live traffic, end to end: connections held open from the client through
 * the compiled egressd and the tunnel keep echoing across SIGHUP reloads (a proxy-only change
 * applied; a change that would rebuild the tunnel and an invalid config, both refused); after SIGKILL the kill switch
 * stays in place while nothing runs, and a restarted egressd converges on the state it left (one set
 * of rules, routes and nft table, no duplicates) and carries new connections.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { RULE_COUNT } from "../../lib/host/spec.ts";
import { labUnsupported } from "../lab/index.ts";
import { type Bed, baseConfig, ipJson, type Pool, proxiedWhoami, startGateway, startPool } from "./helpers.ts";

const skip = labUnsupported() ?? (Bun.which("dnsmasq") ? null : "e2e tests need dnsmasq");
const LIVE = 20;
let bed: Bed;
let pool: Pool;
let config: Record<string, any>;

beforeAll(async () => {
  if (skip !== null) return;
  bed = await startGateway({ dns: false });
  config = baseConfig(bed.lab, bed.gw.dir);
  pool = startPool(bed.lab);
  const opened = await pool.open(LIVE);
  expect(opened.opened).toBe(LIVE);
}, 60_000);
afterAll(async () => {
  await pool?.close();
  await bed?.destroy();
});

/** SIGHUP, then the log line that ends the reload. */
async function reload(): Promise<string> {
  const from = bed.gw.log.length;
  bed.gw.daemon.kill("SIGHUP");
  return bed.gw.waitLog(/reloaded|reload refused|reload failed/, 20_000, from);
}

/** egressd's host state in gw, in a comparable form. */
async function hostState() {
  const { lab } = bed;
  // Whole objects as `ip -j` prints them (priority, fwmark, uid_start, table, suppress_prefixlen, ...).
  const rules = (family: string) => ipJson(lab, lab.ns.gw, [family, "rule", "show"]).then((rs) => rs.filter((r) => r.priority >= 5000 && r.priority < 5000 + RULE_COUNT).map((r) => JSON.stringify(r)));
  const routes = (family: string) => ipJson(lab, lab.ns.gw, [family, "route", "show", "table", "51820"]).then((rs) => rs.map((r) => JSON.stringify(r)));
  const tables = (await lab.exec(lab.ns.gw, ["nft", "list", "tables"])).stdout.split("\n").filter((l) => l.includes("egressd"));
  return { rules4: await rules("-4"), rules6: await rules("-6"), routes4: await routes("-4"), routes6: await routes("-6"), tables };
}

describe.skipIf(skip !== null)("restart and reload with live traffic", () => {
  test(`${LIVE} live connections echo before any change`, async () => {
    expect(await pool.echo()).toEqual({ ok: LIVE, failed: 0, errors: [] });
  });

  test("SIGHUP with a proxy change (one more client prefix): applied, live connections keep echoing", async () => {
    config.proxy.allowClients = [bed.lab.addr.lanPrefix, "10.9.0.0/24"];
    bed.gw.writeConfig(config);
    expect(await reload()).toMatch(/reloaded.*changed=proxy\b/);
    expect(await pool.echo()).toEqual({ ok: LIVE, failed: 0, errors: [] });
    expect((await proxiedWhoami(bed.lab)).stdout.trim()).toBe(bed.lab.addr.exitWan4);
  });

  test("SIGHUP with a change that would rebuild the tunnel (keepalive 25 -> 15 s): refused, naming restart; live connections keep echoing", async () => {
    config.exit.persistentKeepalive = 15;
    bed.gw.writeConfig(config);
    expect(await reload()).toMatch(/reload failed.*persistentKeepalive.*restart egressd/);
    expect(await pool.echo()).toEqual({ ok: LIVE, failed: 0, errors: [] });
    expect((await bed.gw.status()).peers[0]!.persistentKeepalive).toBe(25);
    expect((await proxiedWhoami(bed.lab)).stdout.trim()).toBe(bed.lab.addr.exitWan4);
    config.exit.persistentKeepalive = 25;
    bed.gw.writeConfig(config);
  });

  test("SIGHUP with an invalid config: refused, the old one stays, live connections keep echoing", async () => {
    writeFileSync(bed.gw.configFile, "{ not json");
    expect(await reload()).toMatch(/reload refused/);
    expect(await pool.echo()).toEqual({ ok: LIVE, failed: 0, errors: [] });
    expect((await proxiedWhoami(bed.lab)).stdout.trim()).toBe(bed.lab.addr.exitWan4);
    bed.gw.writeConfig(config);
  });

  test("SIGKILL: the kill switch stays while nothing runs; a restart converges without duplicates and carries new traffic", async () => {
    const { lab } = bed;
    const before = await hostState();
    expect(before.rules4.length).toBe(RULE_COUNT);
    expect(before.tables.length).toBe(1);

    bed.gw.daemon.kill("SIGKILL");
    await bed.gw.daemon.exited;
    // wireguard-go dies with its parent (pdeathsig), taking the interface; rules, the unreachable
    // route and the nft table stay, so the marked uid still cannot leave by the WAN.
    const stale = await hostState();
    expect(stale.rules4).toEqual(before.rules4);
    expect(stale.tables).toEqual(before.tables);
    const cap = await lab.capture(lab.ns.gw, lab.plan.ifs.gwWan, `dst host ${lab.addr.host4}`);
    const direct = await lab.exec(lab.ns.gw, ["ncat", "--recv-only", "-w", "2", lab.addr.host4, "8080"], { uid: lab.uid });
    expect((await cap.stop()).count).toBe(0);
    expect(direct.stdout).toBe("");
    // Connections the dead daemon carried are gone with it.
    expect((await pool.echo(3000)).ok).toBe(0);

    await bed.gw.start();
    const after = await hostState();
    expect(after).toEqual(before);
    const s = await bed.gw.status();
    expect(s.routing.rulesInPlace).toBe(true);
    expect(s.routing.firewallInPlace).toBe(true);
    expect(s.tunnel.up).toBe(true);

    const fresh = startPool(lab);
    try {
      expect((await fresh.open(LIVE)).opened).toBe(LIVE);
      expect(await fresh.echo()).toEqual({ ok: LIVE, failed: 0, errors: [] });
    } finally {
      await fresh.close();
    }
  }, 60_000);
});
