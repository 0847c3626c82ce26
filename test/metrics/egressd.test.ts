import { describe, expect, test } from "bun:test";
import { createEgressdMetrics } from "../../lib/metrics/egressd.ts";
import { EXIT_KEY, fakeSources, recordingLogger } from "./helpers.ts";

const build = { version: "0.1.0", runtime: "bun 1.4.5" };

describe("createEgressdMetrics", () => {
  test("every family, WireGuard first, the success gauge last", async () => {
    const m = createEgressdMetrics(fakeSources(), { build, friendlyNames: { [EXIT_KEY]: "hetzner" }, now: () => 1_763_800_000_000 });
    const text = await m.registry.render();
    const families = text.split("\n").filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]);
    expect(families).toEqual([
      "wireguard_sent_bytes_total",
      "wireguard_received_bytes_total",
      "wireguard_latest_handshake_seconds",
      "wireguard_latest_handshake_delay_seconds",
      "egressd_proxy_connections_active",
      "egressd_proxy_connections_total",
      "egressd_proxy_relayed_bytes_total",
      "egressd_proxy_connect_duration_seconds",
      "egressd_proxy_accept_paused_total",
      "egressd_proxy_handshake_evictions_total",
      "egressd_proxy_udp_associations_active",
      "egressd_proxy_udp_associations_total",
      "egressd_proxy_udp_datagrams_total",
      "egressd_proxy_udp_bytes_total",
      "egressd_proxy_udp_dropped_total",
      "egressd_tunnel_up",
      "egressd_tunnel_info",
      "egressd_tunnel_endpoint_reresolutions_total",
      "egressd_reconcile_runs_total",
      "egressd_reconcile_repairs_total",
      "egressd_leak_guard_dropped_packets_total",
      "egressd_leak_guard_dropped_bytes_total",
      "egressd_build_info",
      "process_cpu_seconds_total",
      "process_open_fds",
      "process_max_fds",
      "process_virtual_memory_bytes",
      "process_resident_memory_bytes",
      "process_start_time_seconds",
      "egressd_scrape_collector_success",
    ]);
    expect(text).toContain(
      `wireguard_latest_handshake_delay_seconds{interface="wg-egress",public_key="${EXIT_KEY}",allowed_ips="0.0.0.0/0",friendly_name="hetzner"} 10\n`,
    );
  });

  test("egressd_ready follows the readiness source, after the tunnel families", async () => {
    let ok = true;
    const m = createEgressdMetrics({ ...fakeSources(), readiness: { ready: async () => ({ ok }) } }, { build, process: false });
    const text = await m.registry.render();
    expect(text).toContain("# TYPE egressd_ready gauge\negressd_ready 1\n");
    expect(text.indexOf("egressd_ready")).toBeGreaterThan(text.indexOf("egressd_tunnel_endpoint_reresolutions_total"));
    ok = false;
    expect(await m.registry.render()).toContain("\negressd_ready 0\n");
  });

  test("reads every source on every scrape: caching the forking ones is their provider's job", async () => {
    // The daemon's one cache (lib/daemon/host-reads.ts, tested in test/daemon/metrics.test.ts) is
    // shared with readiness and dropped after a repair; a second cache here would serve stale dumps.
    const sources = fakeSources();
    const m = createEgressdMetrics(sources, { build, process: false });
    await m.registry.render();
    await m.registry.render();
    await m.registry.render();
    expect(sources.calls).toEqual({ dump: 3, nft: 3 });
  });

  test("a failing wg dump leaves the other families served and says so", async () => {
    const log = recordingLogger();
    const sources = fakeSources();
    sources.wireguard = {
      dump: async () => {
        throw new Error("Unable to access interface: No such device");
      },
    };
    const m = createEgressdMetrics(sources, { build, log, process: false });
    const text = await m.registry.render();
    expect(text).not.toContain("wireguard_");
    expect(text).toContain("egressd_leak_guard_dropped_packets_total 2\n");
    expect(text).toContain('egressd_scrape_collector_success{collector="wireguard"} 0\n');
    expect(text).toContain('egressd_scrape_collector_success{collector="leak_guard"} 1\n');
    expect(log.lines.some((l) => l.level === "warn" && l.fields?.collector === "wireguard")).toBe(true);
  });

  test("configure() applies a reload's latestHandshakeDelay and exit name", async () => {
    const m = createEgressdMetrics(fakeSources(), { build, process: false });
    expect(await m.registry.render()).toContain("wireguard_latest_handshake_delay_seconds{");
    m.configure({ latestHandshakeDelay: false, friendlyNames: { [EXIT_KEY]: "ovh" } });
    const text = await m.registry.render();
    expect(text).not.toContain("wireguard_latest_handshake_delay_seconds");
    expect(text).toContain('friendly_name="ovh"} 20\n');
  });

  test("latestHandshakeDelay: false from the start", async () => {
    const m = createEgressdMetrics(fakeSources(), { build, process: false, latestHandshakeDelay: false });
    expect(await m.registry.render()).not.toContain("wireguard_latest_handshake_delay_seconds");
  });

  test("absent sources leave their families out", async () => {
    const m = createEgressdMetrics({}, { build, process: false });
    const text = await m.registry.render();
    expect(text).toContain("egressd_build_info{");
    expect(text).not.toContain("wireguard_");
    expect(text).not.toContain("egressd_proxy_");
  });
});
