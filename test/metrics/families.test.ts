import { describe, expect, test } from "bun:test";
import { buildInfoFamilies } from "../../lib/metrics/build_info.ts";
import { renderFamilies } from "../../lib/metrics/exposition.ts";
import { leakGuardFamilies } from "../../lib/metrics/leak_guard.ts";
import { proxyFamilies } from "../../lib/metrics/proxy.ts";
import { reconcileFamilies } from "../../lib/metrics/reconcile.ts";
import { defaultRuntime, PROXY_RESULTS } from "../../lib/metrics/sources.ts";
import { tunnelFamilies } from "../../lib/metrics/tunnel.ts";

/** The UDP families of a snapshot without `udp`: every sample at 0. */
const UDP_ZEROS =
  "# HELP egressd_proxy_udp_associations_active SOCKS5 UDP associations open now.\n" +
  "# TYPE egressd_proxy_udp_associations_active gauge\n" +
  "egressd_proxy_udp_associations_active 0\n" +
  "# HELP egressd_proxy_udp_associations_total SOCKS5 UDP associations opened.\n" +
  "# TYPE egressd_proxy_udp_associations_total counter\n" +
  "egressd_proxy_udp_associations_total 0\n" +
  "# HELP egressd_proxy_udp_datagrams_total UDP datagrams relayed; upstream is client to destination, downstream destination to client.\n" +
  "# TYPE egressd_proxy_udp_datagrams_total counter\n" +
  'egressd_proxy_udp_datagrams_total{direction="upstream"} 0\n' +
  'egressd_proxy_udp_datagrams_total{direction="downstream"} 0\n' +
  "# HELP egressd_proxy_udp_bytes_total UDP payload bytes relayed (without the SOCKS5 header), by direction.\n" +
  "# TYPE egressd_proxy_udp_bytes_total counter\n" +
  'egressd_proxy_udp_bytes_total{direction="upstream"} 0\n' +
  'egressd_proxy_udp_bytes_total{direction="downstream"} 0\n' +
  "# HELP egressd_proxy_udp_dropped_total UDP datagrams dropped, by reason.\n" +
  "# TYPE egressd_proxy_udp_dropped_total counter\n" +
  ["policy", "fragment", "foreign_source", "over_limit", "malformed", "unresolved", "send_failed"].map((r) => `egressd_proxy_udp_dropped_total{reason="${r}"} 0\n`).join("");

describe("proxy", () => {
  const text = renderFamilies(
    proxyFamilies({
      connectionsActive: 3,
      connectionsTotal: { ok: 10, denied_destination: 2 },
      relayedBytes: { upstream: 100 },
      connectDuration: { bounds: [0.01, 0.1, 1], counts: [1, 5, 3, 1], sum: 2.5 },
    }),
  );

  test("golden", () => {
    expect(text).toBe(
      "# HELP egressd_proxy_connections_active Proxy connections (SOCKS5 and HTTP) open now.\n" +
        "# TYPE egressd_proxy_connections_active gauge\n" +
        "egressd_proxy_connections_active 3\n" +
        "# HELP egressd_proxy_connections_total Proxy connections finished, by protocol and result; each HTTP request forwarded on a kept-alive connection counts once.\n" +
        "# TYPE egressd_proxy_connections_total counter\n" +
        'egressd_proxy_connections_total{result="ok"} 10\n' +
        'egressd_proxy_connections_total{result="refused"} 0\n' +
        'egressd_proxy_connections_total{result="unreachable"} 0\n' +
        'egressd_proxy_connections_total{result="timeout"} 0\n' +
        'egressd_proxy_connections_total{result="denied_client"} 0\n' +
        'egressd_proxy_connections_total{result="denied_destination"} 2\n' +
        'egressd_proxy_connections_total{result="auth_failed"} 0\n' +
        'egressd_proxy_connections_total{result="protocol_error"} 0\n' +
        'egressd_proxy_connections_total{result="local_resource"} 0\n' +
        "# HELP egressd_proxy_relayed_bytes_total Payload bytes relayed; upstream is client to destination, downstream destination to client.\n" +
        "# TYPE egressd_proxy_relayed_bytes_total counter\n" +
        'egressd_proxy_relayed_bytes_total{direction="upstream"} 100\n' +
        'egressd_proxy_relayed_bytes_total{direction="downstream"} 0\n' +
        "# HELP egressd_proxy_connect_duration_seconds Time from a CONNECT request (or a forwarded HTTP request) to its outbound connection being established.\n" +
        "# TYPE egressd_proxy_connect_duration_seconds histogram\n" +
        'egressd_proxy_connect_duration_seconds_bucket{le="0.01"} 1\n' +
        'egressd_proxy_connect_duration_seconds_bucket{le="0.1"} 6\n' +
        'egressd_proxy_connect_duration_seconds_bucket{le="1"} 9\n' +
        'egressd_proxy_connect_duration_seconds_bucket{le="+Inf"} 10\n' +
        "egressd_proxy_connect_duration_seconds_sum 2.5\n" +
        "egressd_proxy_connect_duration_seconds_count 10\n" +
        "# HELP egressd_proxy_accept_paused_total Times the proxy stopped accepting because it was about to run out of file descriptors.\n" +
        "# TYPE egressd_proxy_accept_paused_total counter\n" +
        "egressd_proxy_accept_paused_total 0\n" +
        "# HELP egressd_proxy_handshake_evictions_total Connections still in their handshake closed to make room for a new client (handshakes may hold half of maxConnections).\n" +
        "# TYPE egressd_proxy_handshake_evictions_total counter\n" +
        "egressd_proxy_handshake_evictions_total 0\n" +
        UDP_ZEROS,
    );
  });

  test("UDP ASSOCIATE: associations, datagrams and bytes by direction, drops by every reason", () => {
    const udp = renderFamilies(
      proxyFamilies({
        connectionsActive: 0,
        connectionsTotal: {},
        relayedBytes: {},
        connectDuration: { bounds: [], counts: [0], sum: 0 },
        udp: { associationsActive: 2, associationsTotal: 7, datagrams: { upstream: 40, downstream: 38 }, bytes: { upstream: 1200, downstream: 5000 }, dropped: { foreign_source: 3, fragment: 1 } },
      }),
    );
    expect(udp.slice(udp.indexOf("# HELP egressd_proxy_udp_"))).toBe(
      "# HELP egressd_proxy_udp_associations_active SOCKS5 UDP associations open now.\n" +
        "# TYPE egressd_proxy_udp_associations_active gauge\n" +
        "egressd_proxy_udp_associations_active 2\n" +
        "# HELP egressd_proxy_udp_associations_total SOCKS5 UDP associations opened.\n" +
        "# TYPE egressd_proxy_udp_associations_total counter\n" +
        "egressd_proxy_udp_associations_total 7\n" +
        "# HELP egressd_proxy_udp_datagrams_total UDP datagrams relayed; upstream is client to destination, downstream destination to client.\n" +
        "# TYPE egressd_proxy_udp_datagrams_total counter\n" +
        'egressd_proxy_udp_datagrams_total{direction="upstream"} 40\n' +
        'egressd_proxy_udp_datagrams_total{direction="downstream"} 38\n' +
        "# HELP egressd_proxy_udp_bytes_total UDP payload bytes relayed (without the SOCKS5 header), by direction.\n" +
        "# TYPE egressd_proxy_udp_bytes_total counter\n" +
        'egressd_proxy_udp_bytes_total{direction="upstream"} 1200\n' +
        'egressd_proxy_udp_bytes_total{direction="downstream"} 5000\n' +
        "# HELP egressd_proxy_udp_dropped_total UDP datagrams dropped, by reason.\n" +
        "# TYPE egressd_proxy_udp_dropped_total counter\n" +
        'egressd_proxy_udp_dropped_total{reason="policy"} 0\n' +
        'egressd_proxy_udp_dropped_total{reason="fragment"} 1\n' +
        'egressd_proxy_udp_dropped_total{reason="foreign_source"} 3\n' +
        'egressd_proxy_udp_dropped_total{reason="over_limit"} 0\n' +
        'egressd_proxy_udp_dropped_total{reason="malformed"} 0\n' +
        'egressd_proxy_udp_dropped_total{reason="unresolved"} 0\n' +
        'egressd_proxy_udp_dropped_total{reason="send_failed"} 0\n',
    );
  });

  test("no label carries an address", () => {
    expect(text).not.toMatch(/\d+\.\d+\.\d+\.\d+/);
  });

  test("with a split by protocol, connections and bytes carry a bounded protocol label", () => {
    const split = renderFamilies(
      proxyFamilies({
        connectionsActive: 1,
        connectionsTotal: { ok: 3 },
        relayedBytes: { upstream: 30 },
        connectDuration: { bounds: [1], counts: [0, 0], sum: 0 },
        byProtocol: { socks5: { connectionsTotal: { ok: 1 }, relayedBytes: { upstream: 10 } }, http_connect: { connectionsTotal: { ok: 2 }, relayedBytes: { upstream: 20, downstream: 5 } } },
      }),
    );
    expect(split).toContain('egressd_proxy_connections_total{protocol="socks5",result="ok"} 1\n');
    expect(split).toContain('egressd_proxy_connections_total{protocol="http_connect",result="ok"} 2\n');
    expect(split).toContain('egressd_proxy_connections_total{protocol="http",result="ok"} 0\n');
    expect(split).toContain('egressd_proxy_connections_total{protocol="other",result="denied_client"} 0\n');
    expect(split).toContain('egressd_proxy_relayed_bytes_total{protocol="http_connect",direction="downstream"} 5\n');
    expect(split).not.toMatch(/egressd_proxy_connections_total\{result=/);
    // Every protocol x every result, every protocol x 2 directions.
    expect(split.match(/^egressd_proxy_connections_total\{/gm)?.length).toBe(4 * PROXY_RESULTS.length);
    expect(split.match(/^egressd_proxy_relayed_bytes_total\{/gm)?.length).toBe(8);
  });
});

describe("tunnel", () => {
  test("up, implementation, re-resolutions", () => {
    expect(renderFamilies(tunnelFamilies({ up: true, implementation: "kernel", endpointReresolutions: 2 }))).toBe(
      "# HELP egressd_tunnel_up 1 when the WireGuard tunnel that new connections use (with several exits, the active one's) is up, 0 otherwise.\n" +
        "# TYPE egressd_tunnel_up gauge\n" +
        "egressd_tunnel_up 1\n" +
        "# HELP egressd_tunnel_info The WireGuard implementation in use (kernel or userspace); always 1.\n" +
        "# TYPE egressd_tunnel_info gauge\n" +
        'egressd_tunnel_info{implementation="kernel"} 1\n' +
        "# HELP egressd_tunnel_endpoint_reresolutions_total Re-resolutions of the exit endpoint's DNS name.\n" +
        "# TYPE egressd_tunnel_endpoint_reresolutions_total counter\n" +
        "egressd_tunnel_endpoint_reresolutions_total 2\n",
    );
  });

  test("down, implementation not known yet: up 0 and no info sample", () => {
    const text = renderFamilies(tunnelFamilies({ up: false, endpointReresolutions: 0 }));
    expect(text).toContain("egressd_tunnel_up 0\n");
    expect(text).not.toMatch(/^egressd_tunnel_info\{/m);
  });
});

describe("reconcile", () => {
  test("runs and repairs by every object", () => {
    expect(renderFamilies(reconcileFamilies({ runs: 120, repairs: { interface: 1, nft: 3 } }))).toBe(
      "# HELP egressd_reconcile_runs_total Reconcile passes completed.\n" +
        "# TYPE egressd_reconcile_runs_total counter\n" +
        "egressd_reconcile_runs_total 120\n" +
        "# HELP egressd_reconcile_repairs_total Host objects found missing or changed and put back, by object.\n" +
        "# TYPE egressd_reconcile_repairs_total counter\n" +
        'egressd_reconcile_repairs_total{object="interface"} 1\n' +
        'egressd_reconcile_repairs_total{object="rule"} 0\n' +
        'egressd_reconcile_repairs_total{object="route"} 0\n' +
        'egressd_reconcile_repairs_total{object="nft"} 3\n' +
        'egressd_reconcile_repairs_total{object="sysctl"} 0\n',
    );
  });
});

describe("leak guard", () => {
  test("packets and bytes", () => {
    expect(renderFamilies(leakGuardFamilies({ packets: 7, bytes: 420 }))).toBe(
      "# HELP egressd_leak_guard_dropped_packets_total Marked packets the leak guard dropped on their way out of a non-tunnel interface.\n" +
        "# TYPE egressd_leak_guard_dropped_packets_total counter\n" +
        "egressd_leak_guard_dropped_packets_total 7\n" +
        "# HELP egressd_leak_guard_dropped_bytes_total Bytes of the marked packets the leak guard dropped.\n" +
        "# TYPE egressd_leak_guard_dropped_bytes_total counter\n" +
        "egressd_leak_guard_dropped_bytes_total 420\n",
    );
  });
});

describe("build info", () => {
  test("version and runtime labels, value 1", () => {
    expect(renderFamilies(buildInfoFamilies({ version: "0.1.0", runtime: "bun 1.4.5" }))).toBe(
      "# HELP egressd_build_info egressd's version and the runtime it was built with; always 1.\n" +
        "# TYPE egressd_build_info gauge\n" +
        'egressd_build_info{version="0.1.0",runtime="bun 1.4.5"} 1\n',
    );
  });

  test("defaultRuntime names the running Bun", () => {
    expect(defaultRuntime()).toBe(`bun ${Bun.version}`);
  });
});
