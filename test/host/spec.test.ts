import { describe, expect, test } from "bun:test";
import { SpecError, UnsafeUidError } from "../../lib/host/errors.ts";
import { validateSpec } from "../../lib/host/spec.ts";
import { testSpec } from "./fixtures.ts";

describe("validateSpec", () => {
  test("normalizes addresses, families, allowed IPs and the endpoint", () => {
    const n = validateSpec(testSpec({ exit: { endpoint: "vps.example.net:51820" }, routing: { allowDestinations: ["10.1.0.0/24"] } }));
    expect(n.addresses).toEqual([
      { family: 4, local: "10.100.0.2", prefixlen: 32, cidr: "10.100.0.2/32" },
      { family: 6, local: "fd00::2", prefixlen: 128, cidr: "fd00::2/128" },
    ]);
    expect(n.families).toEqual([4, 6]);
    expect(n.endpoint).toEqual({ host: "vps.example.net", port: 51820, isName: true });
    expect(validateSpec(testSpec({ exit: { endpoint: "[2001:db8::1]:51820" } })).endpoint.isName).toBe(false);
  });

  test("refuses uid 0 with its own error", () => {
    expect(() => validateSpec(testSpec({ uid: 0 }))).toThrow(UnsafeUidError);
    expect(() => validateSpec(testSpec({ uid: 0 }))).toThrow(/refusing to mark uid 0/);
  });

  test.each([
    ["interface name too long", testSpec({ interface: { name: "a-very-long-name0" } }), "interface.name"],
    ["relative key path", testSpec({ interface: { privateKeyFile: "key" } }), "interface.privateKeyFile"],
    ["no addresses", testSpec({ interface: { addresses: [] } }), "interface.addresses"],
    ["bad address", testSpec({ interface: { addresses: ["10.100.0.300/32"] } }), "interface.addresses[0]"],
    ["MTU too small for IPv6", testSpec({ interface: { mtu: 1000 } }), "interface.mtu"],
    ["bad public key", testSpec({ exit: { publicKey: "nope" } }), "exit.publicKey"],
    ["endpoint without port", testSpec({ exit: { endpoint: "vps.example.net" } }), "exit.endpoint"],
    ["allowed IP with host bits", testSpec({ exit: { allowedIps: ["10.0.0.1/8"] } }), "exit.allowedIps[0]"],
    ["same marks (trap 4)", testSpec({ routing: { wireguardFwmark: 0xca6c } }), "routing.wireguardFwmark"],
    ["main table", testSpec({ routing: { table: 254 } }), "routing.table"],
    ["rules after main", testSpec({ routing: { rulePriority: 32765 } }), "routing.rulePriority"],
    // The sixth rule (the tunnel address's source rule, P+5) would land on main's own 32766.
    ["the last rule on main's priority", testSpec({ routing: { rulePriority: 32761 } }), "routing.rulePriority"],
    ["bad allowed destination", testSpec({ routing: { allowDestinations: ["lan"] } }), "routing.allowDestinations[0]"],
  ])("rejects %s", (_name, spec, path) => {
    let err: unknown;
    try {
      validateSpec(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).problems.some((p) => p.startsWith(`${path}:`))).toBe(true);
  });
});
