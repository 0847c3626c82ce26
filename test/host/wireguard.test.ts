import { describe, expect, test } from "bun:test";
import { isOurs, parseLink } from "../../lib/host/interface.ts";
import { renderWgConfig, wgConfigDrift } from "../../lib/host/wireguard.ts";
import { parseWgDump } from "../../lib/host/wgdump.ts";
import { validateSpec } from "../../lib/host/spec.ts";
import { expectGolden } from "./golden.ts";
import { KEYS, dumpText, link, linkJson, testSpec } from "./fixtures.ts";

describe("renderWgConfig", () => {
  test("full config for wg setconf (golden)", () => {
    expectGolden(
      "wg-setconf.conf",
      renderWgConfig({
        privateKey: KEYS.gatewayPrivate,
        listenPort: 51821,
        fwmark: 0xca6d,
        peer: { publicKey: KEYS.exitPublic, presharedKey: KEYS.psk, endpoint: "[2001:db8::1]:51820", allowedIps: ["0.0.0.0/0", "::/0"], persistentKeepalive: 25 },
      }),
    );
  });
  test("omits what is unset: listen port, PSK, unresolved endpoint, keepalive 0", () => {
    const text = renderWgConfig({
      privateKey: KEYS.gatewayPrivate,
      listenPort: null,
      fwmark: 0xca6d,
      peer: { publicKey: KEYS.exitPublic, presharedKey: null, endpoint: null, allowedIps: ["0.0.0.0/0"], persistentKeepalive: 0 },
    });
    expect(text).not.toMatch(/ListenPort|PresharedKey|Endpoint|PersistentKeepalive/);
    expect(text).toContain("FwMark = 0xca6d");
  });
});

describe("wgConfigDrift", () => {
  const n = validateSpec(testSpec());
  const psk = validateSpec(testSpec({ exit: { presharedKeyFile: "/run/psk" } }));
  test.each([
    ["healthy", n, dumpText(), []],
    ["another private key", n, dumpText({ publicKey: KEYS.strangerPublic }), ["interface private key differs from interface.privateKeyFile"]],
    ["socket fwmark off (trap 4)", n, dumpText({ fwmark: "off" }), ["socket fwmark off, want 0xca6d"]],
    ["allowed IPs narrowed", n, dumpText({ allowed: "0.0.0.0/0" }), ["allowed IPs 0.0.0.0/0, want 0.0.0.0/0,::/0"]],
    ["keepalive off", n, dumpText({ keepalive: "off" }), ["persistent keepalive 0, want 25"]],
    ["PSK missing", psk, dumpText(), ["preshared key is missing"]],
    ["unexpected PSK", n, dumpText({ psk: KEYS.psk }), ["unexpected preshared key"]],
    ["a stranger peer", n, dumpText({ extraPeer: true }), ["1 unknown peer(s)"]],
    ["endpoint changed is not config drift", n, dumpText({ endpoint: "192.0.2.99:51820" }), []],
  ] as const)("%s", (_name, spec, dump, want) => {
    expect(wgConfigDrift(spec, KEYS.gatewayPublic, parseWgDump(dump))).toEqual([...want]);
  });
});

describe("parseLink / isOurs", () => {
  test("reads kind, alias, MTU, flags and addresses", () => {
    const l = parseLink(linkJson(link({ mtu: 1380, up: false })))!;
    expect(l).toMatchObject({ ifname: "wg-egress", kind: "tun", alias: "egressd", mtu: 1380, up: false });
    expect(l.addresses.map((a) => `${a.local}/${a.prefixlen} ${a.scope}`)).toEqual(["10.100.0.2/32 global", "fd00::2/128 global", "fe80::1234/64 link"]);
  });
  test.each([
    ["kernel wireguard with our alias", linkJson(link({ kind: "wireguard" })), true],
    ["wireguard-go tun with our alias", linkJson(link({ kind: "tun" })), true],
    ["wireguard without alias (someone else's)", linkJson(link({ kind: "wireguard", alias: null })), false],
    ["veth with our alias", linkJson(link({ kind: "veth" })), false],
  ])("%s", (_n, json, ours) => {
    expect(isOurs(parseLink(json)!)).toBe(ours);
  });
});
