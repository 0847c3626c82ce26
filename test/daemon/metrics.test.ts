/**
 * The daemon's metrics over its one cache of `wg show dump` and the nft counter (host-reads.ts):
 * readiness, `STATUS=`, `egressd_tunnel_up` and the `wireguard_*` families share one fork per
 * second, and a reconcile repair drops the cache so the next scrape shows the repaired host.
 * The host is a fake with the manager's read methods; the dump is parsed from `wg`'s own format.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../lib/config/load.ts";
import type { Config } from "../../lib/config/schema.ts";
import type { HostManager } from "../../lib/host/manager.ts";
import { parseWgDump, type WgDump } from "../../lib/host/wgdump.ts";
import { HostReads } from "../../lib/daemon/host-reads.ts";
import { DaemonMetrics, repairObject } from "../../lib/daemon/metrics.ts";
import { type DaemonView, readiness, statusLine } from "../../lib/daemon/views.ts";

const EXIT_KEY = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";
const GW_PRIV = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const GW_PUB = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

function config(): Config {
  return parseConfig(
    {
      interface: { name: "wg-egress", addresses: ["10.100.0.2/32"], privateKeyFile: "/k" },
      exit: { name: "vps", publicKey: EXIT_KEY, endpoint: "203.0.113.5:51820" },
      proxy: { listen: ["10.1.0.1:1080"] },
    },
    { checkFiles: false, baseDir: "/etc/egressd", env: {} },
  );
}

/** `wg show wg-egress dump` with the exit as its one peer, handshaked `ago` seconds ago. */
function dumpText(ago: number): string {
  const hs = Math.floor(Date.now() / 1000) - ago;
  return `${GW_PRIV}\t${GW_PUB}\t51820\t0xca6c\n${EXIT_KEY}\t(none)\t203.0.113.5:51820\t0.0.0.0/0\t${hs}\t1000\t2000\t25\n`;
}

/** A host whose interface is there or not; counts the `wg` and `nft` forks. */
function fakeHost() {
  const h = {
    dump: null as WgDump | null,
    calls: { wg: 0, nft: 0 },
    wireguardDump: async () => (h.calls.wg++, h.dump),
    leakCounter: async () => (h.calls.nft++, { packets: 3, bytes: 180 }),
    observe: async () => {
      throw new Error("not used");
    },
    status: () => ({ implementation: "userspace", endpointReresolutions: 0, reconcileRuns: 1, families: [4] }) as unknown as ReturnType<HostManager["status"]>,
  };
  return h;
}

function manualClock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function setup(opts: { realClock?: boolean } = {}) {
  const host = fakeHost();
  const clock = manualClock();
  const reads = new HostReads(host, opts.realClock ? {} : { now: clock.now });
  const cfg = config();
  const view: DaemonView & { passRunning: boolean } = {
    state: "running",
    config: cfg,
    version: "0.1.0",
    uid: 64000,
    startedAt: 0,
    host,
    reads,
    proxy: {
      listening: ["10.1.0.1:1080"],
      stats: {
        connectionsActive: 1,
        connectionsTotal: { ok: 2 },
        bytesClientToTarget: 10,
        bytesTargetToClient: 20,
        connectDuration: { bounds: [0.1], counts: [1, 0], sum: 0.05 },
      } as unknown as NonNullable<DaemonView["proxy"]>["stats"],
    },
    lastPass: null,
    passRunning: false,
    lastReadiness: null,
    repairs: {},
    metricsUrl: null,
  };
  const metrics = new DaemonMetrics(view, { version: "0.1.0", process: false });
  return { host, clock, reads, view, metrics };
}

const handshakeSample = (text: string) => text.split("\n").find((l) => l.startsWith("wireguard_latest_handshake_seconds{") && l.includes(`public_key="${EXIT_KEY}"`));

describe("the daemon's one cache of wg and nft reads", () => {
  test("a scrape storm with readiness and STATUS= forks wg and nft at most once per second", async () => {
    const { host, clock, view, metrics } = setup();
    host.dump = parseWgDump(dumpText(5));
    await Promise.all([...Array.from({ length: 100 }, () => metrics.registry.render()), readiness(view), statusLine(view)]);
    expect(host.calls).toEqual({ wg: 1, nft: 1 });
    for (let i = 0; i < 9; i++) {
      clock.advance(100); // 0.9 s of rapid sequential scrapes and probes
      await metrics.registry.render();
      await readiness(view);
    }
    expect(host.calls).toEqual({ wg: 1, nft: 1 });
    clock.advance(100);
    await metrics.registry.render();
    expect(host.calls).toEqual({ wg: 2, nft: 2 });
  });

  test("tunnel_up and the wireguard families come from the same dump", async () => {
    const { host, metrics } = setup();
    host.dump = parseWgDump(dumpText(5));
    const text = await metrics.registry.render();
    expect(host.calls.wg).toBe(1);
    expect(text).toContain("egressd_tunnel_up 1\n");
    expect(handshakeSample(text)).toBeDefined();
    expect(text).toContain('wireguard_latest_handshake_seconds{interface="wg-egress",public_key="' + EXIT_KEY + '",allowed_ips="0.0.0.0/0",friendly_name="vps"}');
  });

  test("a scrape right after a repair reflects the repaired state, not the cached one from before", async () => {
    const { host, reads, view, metrics } = setup();
    // The interface was deleted behind the daemon's back: a scrape and a probe see it missing.
    host.dump = null;
    const before = await metrics.registry.render();
    expect(before).toContain("egressd_tunnel_up 0\n");
    expect(handshakeSample(before)).toBeUndefined();
    expect(await readiness(view)).toEqual({ ok: false, reason: "interface wg-egress is missing" });
    expect(before).toContain("\negressd_ready 0\n");
    expect(await statusLine(view)).toBe("tunnel interface missing; 1 active connection");

    // A reconcile pass re-creates it (no time passes: well within the cache's second).
    host.dump = parseWgDump(dumpText(1));
    reads.afterPass({ repairs: [{ component: "interface" }] });
    const after = await metrics.registry.render();
    expect(after).toContain("egressd_tunnel_up 1\n");
    expect(handshakeSample(after)).toBeDefined();
    expect(await readiness(view)).toEqual({ ok: true });
    expect(after).toContain("\negressd_ready 1\n");
    expect(await statusLine(view)).toBe("handshake under a minute ago; 1 active connection");
    expect(host.calls.wg).toBe(2);
  });

  test("regression: readiness said ready in the middle of a repairing pass, once the new interface handshaked", async () => {
    const { host, reads, view } = setup();
    host.dump = null;
    expect(await readiness(view)).toEqual({ ok: false, reason: "interface wg-egress is missing" });
    // The pass has re-created the interface and it has handshaked, but the pass is not done: the
    // answer from before the pass stands.
    const live = view as { passRunning: boolean };
    live.passRunning = true;
    host.dump = parseWgDump(dumpText(1));
    reads.afterPass({ repairs: [{ component: "interface" }] });
    expect(await readiness(view)).toEqual({ ok: false, reason: "interface wg-egress is missing" });
    live.passRunning = false;
    expect(await readiness(view)).toEqual({ ok: true });
  });

  test("a pass that repaired nothing keeps the cache", async () => {
    const { host, reads, metrics } = setup();
    host.dump = parseWgDump(dumpText(5));
    await metrics.registry.render();
    reads.afterPass({ repairs: [] });
    await metrics.registry.render();
    expect(host.calls).toEqual({ wg: 1, nft: 1 });
    reads.invalidate();
    await metrics.registry.render();
    expect(host.calls).toEqual({ wg: 2, nft: 2 });
  });

  test("a failing wg leaves tunnel_up at 0 and the wireguard collector marked failed", async () => {
    const { host, metrics } = setup();
    host.wireguardDump = async () => {
      host.calls.wg++;
      throw new Error("Unable to access interface: Operation not permitted");
    };
    const text = await metrics.registry.render();
    expect(text).toContain("egressd_tunnel_up 0\n");
    expect(text).toContain('egressd_scrape_collector_success{collector="wireguard"} 0\n');
    expect(text).toContain("egressd_leak_guard_dropped_packets_total 3\n");
    expect(host.calls.wg).toBe(1); // the failure is cached too
  });
});

describe("scrape storm over HTTP", () => {
  test("hundreds of scrapes and readiness probes fork wg at most once per second (real clock)", async () => {
    const { host, metrics } = setup({ realClock: true });
    host.dump = parseWgDump(dumpText(5));
    const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const port = probe.port;
    await probe.stop(true);
    await metrics.listen(`127.0.0.1:${port}`);
    try {
      const url = metrics.url!;
      expect(url).toBe(`http://127.0.0.1:${port}`);
      const started = performance.now();
      let scrapes = 0;
      while (performance.now() - started < 1500) {
        const batch = await Promise.all(Array.from({ length: 20 }, (_, i) => fetch(`${url}/${i % 4 === 0 ? "readyz" : "metrics"}`).then(async (r) => [r.status, await r.text()] as const)));
        scrapes += batch.length;
        expect(batch.every(([code, body]) => code === 200 && (body === "ready\n" || body.includes("wireguard_sent_bytes_total{")))).toBe(true);
      }
      const seconds = (performance.now() - started) / 1000;
      expect(scrapes).toBeGreaterThan(100);
      expect(host.calls.wg).toBeGreaterThanOrEqual(2);
      expect(host.calls.wg).toBeLessThanOrEqual(Math.ceil(seconds));
      expect(host.calls.nft).toBeLessThanOrEqual(host.calls.wg);
    } finally {
      await metrics.close();
    }
    expect(metrics.url).toBeNull();
  });
});

describe("repairObject", () => {
  test.each([
    ["interface", "interface"],
    ["wireguard", "interface"],
    ["endpoint", "interface"],
    ["routes", "route"],
    ["rules", "rule"],
    ["firewall", "nft"],
    ["sysctl", "sysctl"],
    ["something new", "interface"],
  ])("%s counts as %s", (component, object) => {
    expect(repairObject(component)).toBe(object as ReturnType<typeof repairObject>);
  });
});

describe("several exits: readiness, STATUS= and egressd_tunnel_up follow the active exit", () => {
  const SECOND_KEY = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
  /** `wg show <exit> dump` with `key` as its one peer, handshaked `ago` seconds ago. */
  const exitDump = (key: string, ago: number) =>
    parseWgDump(`${GW_PRIV}\t${GW_PUB}\t51820\t0xca6c\n${key}\t(none)\t203.0.113.5:51820\t0.0.0.0/0\t${Math.floor(Date.now() / 1000) - ago}\t1000\t2000\t25\n`);

  function severalExits() {
    const { host, view, metrics } = setup();
    const cfg = parseConfig(
      {
        interface: { privateKeyFile: "/k" },
        exits: [
          { name: "a", publicKey: EXIT_KEY, endpoint: "203.0.113.5:51820", addresses: ["10.100.0.2/32"] },
          { name: "b", publicKey: SECOND_KEY, endpoint: "198.51.100.5:51820", addresses: ["10.100.1.2/32"] },
        ],
        proxy: { listen: ["10.1.0.1:1080"] },
      },
      { checkFiles: false, baseDir: "/etc/egressd", env: {} },
    );
    const dumps = new Map<string, WgDump | null>();
    let active: string | null = "a";
    const h = host as unknown as Record<string, unknown>;
    h.wireguardDump = async (exit?: string) => dumps.get(exit ?? "a") ?? null;
    h.status = () => ({ implementation: "userspace", endpointReresolutions: 0, reconcileRuns: 1, families: [4], active });
    const v = view as unknown as Record<string, unknown>;
    v.config = cfg;
    v.failover = { exits: [], failovers: 0 };
    return { view, metrics, dumps, setActive: (x: string | null) => void (active = x) };
  }

  test("A's interface gone while B carries the traffic: ready, up, and STATUS= names B", async () => {
    const { view, metrics, dumps, setActive } = severalExits();
    dumps.set("a", null); // the first exit's interface is missing
    dumps.set("b", exitDump(SECOND_KEY, 5));
    setActive("b");
    const text = await metrics.registry.render();
    expect(text).toContain("egressd_tunnel_up 1\n");
    expect(await readiness(view)).toEqual({ ok: true });
    expect(await statusLine(view)).toBe("exit b: handshake under a minute ago; 1 active connection");
  });

  test("the active exit's handshake is what counts, not the first exit's", async () => {
    const { view, dumps } = severalExits();
    dumps.set("a", exitDump(EXIT_KEY, 400));
    dumps.set("b", exitDump(SECOND_KEY, 5));
    expect(await statusLine(view)).toBe("exit a: handshake 6 minutes ago; 1 active connection");
    expect((await readiness(view)).ok).toBe(false);
  });

  test("no exit up: not ready, tunnel down, and STATUS= says so", async () => {
    const { view, metrics, dumps, setActive } = severalExits();
    dumps.set("a", exitDump(EXIT_KEY, 5));
    dumps.set("b", exitDump(SECOND_KEY, 5));
    setActive(null);
    expect(await metrics.registry.render()).toContain("egressd_tunnel_up 0\n");
    expect(await readiness(view)).toEqual({ ok: false, reason: "no exit is up" });
    expect(await statusLine(view)).toBe("no exit is up; 1 active connection");
  });
});
