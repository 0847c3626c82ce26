/**
 * Pins the four WireGuard families against prometheus-wireguard-exporter's output format
 * (MindFlavor/prometheus_wireguard_exporter, src/wireguard.rs at commit 2d82a9c).
 */
import { describe, expect, test } from "bun:test";
import { renderFamilies } from "../../lib/metrics/exposition.ts";
import type { WgPeerSample } from "../../lib/metrics/sources.ts";
import { WireguardCollector, wireguardFamilies } from "../../lib/metrics/wireguard.ts";

function peer(p: Partial<WgPeerSample> & Pick<WgPeerSample, "publicKey">): WgPeerSample {
  return { interface: "wg0", endpoint: null, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, ...p };
}

describe("golden: the exporter's own test vector", () => {
  // The peers of the exporter's `test_render_to_prometheus_complex` (sent_bytes is our txBytes,
  // received_bytes our rxBytes), with the friendly name it reads from a config comment.
  const peers = [
    peer({ interface: "Pippo", publicKey: "test", allowedIps: ["10.0.0.2/32", "fd86:ea04:::4/128"], latestHandshake: 500, txBytes: 1000, rxBytes: 5000 }),
    peer({
      interface: "Pippo",
      publicKey: "second_test",
      allowedIps: ["10.0.0.4/32", "fd86:ea04:::4/128", "192.168.0.0/16"],
      latestHandshake: 50,
      txBytes: 14,
      rxBytes: 1_000_000_000,
    }),
  ];

  test("matches the exporter's REF (its -r labels and blank separator lines aside)", () => {
    // The exporter's REF rendered with `export_remote_ip_and_port: true`; egressd keeps that option's
    // default (off), so `remote_ip`/`remote_port` are absent here. Blank lines between families are
    // ignored by the format and egressd does not write them. Everything else is byte for byte.
    const expected =
      "# HELP wireguard_sent_bytes_total Bytes sent to the peer\n" +
      "# TYPE wireguard_sent_bytes_total counter\n" +
      'wireguard_sent_bytes_total{interface="Pippo",public_key="test",allowed_ips="10.0.0.2/32,fd86:ea04:::4/128"} 1000\n' +
      'wireguard_sent_bytes_total{interface="Pippo",public_key="second_test",allowed_ips="10.0.0.4/32,fd86:ea04:::4/128,192.168.0.0/16",friendly_name="this is my friendly name"} 14\n' +
      "# HELP wireguard_received_bytes_total Bytes received from the peer\n" +
      "# TYPE wireguard_received_bytes_total counter\n" +
      'wireguard_received_bytes_total{interface="Pippo",public_key="test",allowed_ips="10.0.0.2/32,fd86:ea04:::4/128"} 5000\n' +
      'wireguard_received_bytes_total{interface="Pippo",public_key="second_test",allowed_ips="10.0.0.4/32,fd86:ea04:::4/128,192.168.0.0/16",friendly_name="this is my friendly name"} 1000000000\n' +
      "# HELP wireguard_latest_handshake_seconds UNIX timestamp seconds of the last handshake\n" +
      "# TYPE wireguard_latest_handshake_seconds gauge\n" +
      'wireguard_latest_handshake_seconds{interface="Pippo",public_key="test",allowed_ips="10.0.0.2/32,fd86:ea04:::4/128"} 500\n' +
      'wireguard_latest_handshake_seconds{interface="Pippo",public_key="second_test",allowed_ips="10.0.0.4/32,fd86:ea04:::4/128,192.168.0.0/16",friendly_name="this is my friendly name"} 50\n';
    const text = renderFamilies(
      wireguardFamilies(peers, { latestHandshakeDelay: false, friendlyNames: { second_test: "this is my friendly name" } }),
    );
    expect(text).toBe(expected);
  });
});

describe("golden: egressd's exit peer, delay on (the default)", () => {
  const now = () => 1_763_800_000_999; // ms; the delay uses whole seconds, like the exporter
  const exitKey = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
  const peers = [
    // Listed out of order: the exporter sorts interfaces by name, keeping dump order inside one.
    peer({ interface: "wg-egress", publicKey: exitKey, endpoint: "203.0.113.5:51820", allowedIps: ["0.0.0.0/0", "::/0"], latestHandshake: 1_763_799_958, rxBytes: 73_421, txBytes: 18_204 }),
    peer({ interface: "wg-a", publicKey: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", latestHandshake: 0 }),
  ];
  const expected =
    "# HELP wireguard_sent_bytes_total Bytes sent to the peer\n" +
    "# TYPE wireguard_sent_bytes_total counter\n" +
    'wireguard_sent_bytes_total{interface="wg-a",public_key="HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",allowed_ips="(none)"} 0\n' +
    `wireguard_sent_bytes_total{interface="wg-egress",public_key="${exitKey}",allowed_ips="0.0.0.0/0,::/0",friendly_name="hetzner"} 18204\n` +
    "# HELP wireguard_received_bytes_total Bytes received from the peer\n" +
    "# TYPE wireguard_received_bytes_total counter\n" +
    'wireguard_received_bytes_total{interface="wg-a",public_key="HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",allowed_ips="(none)"} 0\n' +
    `wireguard_received_bytes_total{interface="wg-egress",public_key="${exitKey}",allowed_ips="0.0.0.0/0,::/0",friendly_name="hetzner"} 73421\n` +
    "# HELP wireguard_latest_handshake_seconds UNIX timestamp seconds of the last handshake\n" +
    "# TYPE wireguard_latest_handshake_seconds gauge\n" +
    'wireguard_latest_handshake_seconds{interface="wg-a",public_key="HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",allowed_ips="(none)"} 0\n' +
    `wireguard_latest_handshake_seconds{interface="wg-egress",public_key="${exitKey}",allowed_ips="0.0.0.0/0,::/0",friendly_name="hetzner"} 1763799958\n` +
    "# HELP wireguard_latest_handshake_delay_seconds Seconds from the last handshake\n" +
    "# TYPE wireguard_latest_handshake_delay_seconds gauge\n" +
    // Never shook hands: now minus 0, as the exporter computes it.
    'wireguard_latest_handshake_delay_seconds{interface="wg-a",public_key="HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",allowed_ips="(none)"} 1763800000\n' +
    `wireguard_latest_handshake_delay_seconds{interface="wg-egress",public_key="${exitKey}",allowed_ips="0.0.0.0/0,::/0",friendly_name="hetzner"} 42\n`;

  test("four families, label order interface, public_key, allowed_ips, friendly_name", () => {
    const text = renderFamilies(wireguardFamilies(peers, { now, friendlyNames: { [exitKey]: "hetzner" } }));
    expect(text).toBe(expected);
  });

  test("the collector renders the same through its dump source", async () => {
    const c = new WireguardCollector(async () => peers, { now, friendlyNames: { [exitKey]: "hetzner" } });
    expect(renderFamilies(await c.collect())).toBe(expected);
  });
});

describe("details", () => {
  test("a handshake in the future (clock stepped back) gives delay 0, not a negative", () => {
    const f = wireguardFamilies([peer({ publicKey: "k", latestHandshake: 2_000 })], { now: () => 1_000_000 });
    expect(f[3]!.samples[0]!.value).toBe(0);
  });

  test("friendly names are looked up as own keys only", () => {
    const f = wireguardFamilies([peer({ publicKey: "constructor" })], { friendlyNames: {} });
    expect(f[0]!.samples[0]!.labels.map(([k]) => k)).toEqual(["interface", "public_key", "allowed_ips"]);
  });

  test("a friendly name with quotes and a newline is escaped", () => {
    const text = renderFamilies(wireguardFamilies([peer({ publicKey: "k" })], { friendlyNames: { k: 'the "exit"\nVPS' } }));
    expect(text).toContain('friendly_name="the \\"exit\\"\\nVPS"} 0\n');
  });

  test("configure() switches the delay family and the names from the next scrape", async () => {
    const c = new WireguardCollector(() => [peer({ publicKey: "k" })], { now: () => 0 });
    expect((await c.collect()).map((f) => f.name)).toContain("wireguard_latest_handshake_delay_seconds");
    c.configure({ latestHandshakeDelay: false, friendlyNames: { k: "renamed" } });
    const families = await c.collect();
    expect(families.map((f) => f.name)).not.toContain("wireguard_latest_handshake_delay_seconds");
    expect(families[0]!.samples[0]!.labels.at(-1)).toEqual(["friendly_name", "renamed"]);
  });

  test("no peers: headers only, which the format allows", () => {
    expect(renderFamilies(wireguardFamilies([], { latestHandshakeDelay: false }))).toBe(
      "# HELP wireguard_sent_bytes_total Bytes sent to the peer\n# TYPE wireguard_sent_bytes_total counter\n" +
        "# HELP wireguard_received_bytes_total Bytes received from the peer\n# TYPE wireguard_received_bytes_total counter\n" +
        "# HELP wireguard_latest_handshake_seconds UNIX timestamp seconds of the last handshake\n# TYPE wireguard_latest_handshake_seconds gauge\n",
    );
  });
});
