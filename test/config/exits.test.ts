/**
 * The several-exit form of the config (`exits`, `failover`, `proxy.pinnedListeners`): what it becomes,
 * how the host spec is derived from it, and one problem naming the field for each mistake.
 */
import { describe, expect, test } from "bun:test";
import { effectiveConfig } from "../../lib/config/effective.ts";
import { parseConfig } from "../../lib/config/load.ts";
import { FAILOVER_DEFAULTS } from "../../lib/config/schema.ts";
import { exitsDiffer } from "../../lib/daemon/exit-reload.ts";
import { hostChanges, hostSpec } from "../../lib/daemon/specs.ts";
import { validateExits } from "../../lib/host/exits.ts";
import { EXIT_PUBLIC_KEY, minimalConfig, problemsOf } from "./fixtures.ts";

const NO_FILES = { checkFiles: false, env: {}, baseDir: "/etc/egressd" } as const;
const SECOND_KEY = "XQY2+iq1v2dtKDyqMZq5s3Y2dxXCBiMiHKa/9biuUH4=";

/** Two exits, as the README shows them. A fresh object on every call. */
function twoExits(): Record<string, any> {
  return {
    interface: {},
    exits: [
      { name: "hetzner", publicKey: EXIT_PUBLIC_KEY, endpoint: "vps1.example.net:51820", addresses: ["10.100.0.2/32"] },
      { name: "ovh", publicKey: SECOND_KEY, endpoint: "vps2.example.net:51820", addresses: ["10.100.1.2/32"] },
    ],
  };
}

describe("exits", () => {
  test("the first exit is `exit`; defaults fill each entry and the failover section", () => {
    const c = parseConfig({ ...twoExits(), failover: {} }, NO_FILES);
    expect(c.exit.name).toBe("hetzner");
    expect(c.interface.addresses).toEqual(["10.100.0.2/32"]);
    expect(c.exits!.map((e) => [e.name, e.persistentKeepalive, e.allowedIps])).toEqual([
      ["hetzner", 25, ["0.0.0.0/0", "::/0"]],
      ["ovh", 25, ["0.0.0.0/0", "::/0"]],
    ]);
    expect(c.failover).toEqual(FAILOVER_DEFAULTS);
    expect(FAILOVER_DEFAULTS).toMatchObject({ probe: { interval: 3000, timeout: 2000 }, downAfter: 3, upAfter: 3, failback: "preempt" });
  });

  test("the host spec: derived interface names, own addresses, one exit per entry; the layout validates", () => {
    const spec = hostSpec(parseConfig(twoExits(), NO_FILES), 64000);
    expect(spec.exits!.map((e) => [e.exit.name, e.interfaceName, e.addresses])).toEqual([
      ["hetzner", "wg-egress-0", ["10.100.0.2/32"]],
      ["ovh", "wg-egress-1", ["10.100.1.2/32"]],
    ]);
    const layout = validateExits(spec);
    expect(layout.exits.map((e) => e.spec.routing.table)).toEqual([51821, 51822]);
  });

  test("the one-exit form maps exactly as before (no exits in the host spec)", () => {
    expect(hostSpec(parseConfig(minimalConfig(), NO_FILES), 64000).exits).toBeUndefined();
  });

  test("round-trips through the effective config", () => {
    const input = { ...twoExits(), failover: { probe: { interval: "5s", target: { kind: "tcp", host: "192.0.2.80", port: 443 } }, failback: "stay" } };
    const c = parseConfig(input, NO_FILES);
    const again = parseConfig(JSON.parse(JSON.stringify(effectiveConfig(c))), NO_FILES);
    expect(again).toEqual(c);
  });

  test("a change of exits is not refused as a whole: it is left to the exit plan (lib/daemon/exit-reload.ts)", () => {
    const a = parseConfig(twoExits(), NO_FILES);
    const more = twoExits();
    more.exits.push({ name: "scw", publicKey: SECOND_KEY.replace("XQ", "YQ"), endpoint: "vps3.example.net:51820", addresses: ["10.100.2.2/32"] });
    const b = parseConfig(more, NO_FILES);
    expect(hostChanges(a, b)).toEqual([]);
    expect(exitsDiffer(a, b)).toBe(true);
    // The first exit's fields fill `exit` and `interface.addresses`; changing them is still no blanket refusal.
    const first = twoExits();
    first.exits[0].endpoint = "vps9.example.net:51820";
    expect(hostChanges(a, parseConfig(first, NO_FILES))).toEqual([]);
  });

  test("moving between the one-exit and the several-exit form is a host change", () => {
    const a = parseConfig(twoExits(), NO_FILES);
    const one = twoExits() as Record<string, any>;
    one.exit = { ...one.exits[0] };
    delete one.exit.addresses;
    one.interface = { ...one.interface, addresses: one.exits[0].addresses };
    delete one.exits;
    expect(hostChanges(a, parseConfig(one, NO_FILES))).toContain("exits");
  });

  const mutate = (f: (c: Record<string, any>) => void) => {
    const c = twoExits();
    f(c);
    return c;
  };
  test.each([
    ["a duplicate name", mutate((c) => (c.exits[1].name = "hetzner")), 'exits[1].name: "hetzner" is already the name of exits[0]'],
    ["overlapping addresses", mutate((c) => (c.exits[1].addresses = ["10.100.0.0/24"])), 'exits[1].addresses[0]: "10.100.0.0/24" must not overlap 10.100.0.2/32 of exits[0]: each exit needs tunnel addresses of its own'],
    ["a derived interface name too long", mutate((c) => (c.interface.name = "wg-egress-home")), 'exits[0].interface: "wg-egress-home-0" (the default) is longer than 15 characters (interface.name + "-0"); set exits[0].interface or a shorter interface.name'],
    ["the same interface twice", mutate((c) => (c.exits[1].interface = "wg-egress-0")), 'exits[1].interface: "wg-egress-0" is already the interface of exits[0]'],
    ["exit and exits together", mutate((c) => (c.exit = { publicKey: EXIT_PUBLIC_KEY, endpoint: "vps.example.net:51820" })), 'exit: {"publicKey":"3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08... is not allowed together with "exits"; move it into the list'],
    ["interface addresses with exits", mutate((c) => (c.interface.addresses = ["10.100.0.2/32"])), 'interface.addresses: ["10.100.0.2/32"] is not allowed with "exits"; each exit has its own "addresses"'],
    ["a single exit in the list", mutate((c) => c.exits.pop()), 'exits: [{"name":"hetzner","publicKey":"3p7bfXt9wbTTW2HC7OQ1Nz+DQ... needs two or more exits; one exit is written as "exit"'],
    ["an exit without addresses", mutate((c) => delete c.exits[1].addresses), "exits[1].addresses: is required (array)"],
    ["a fixed listen port", mutate((c) => (c.interface.listenPort = 51820)), 'interface.listenPort: 51820 must be null with "exits": each exit\'s interface needs a port of its own'],
    ["a listener pinned to an unknown exit", mutate((c) => (c.proxy = { listen: ["127.0.0.1:1080"], pinnedListeners: { "127.0.0.1:1080": "aws" } })), 'proxy.pinnedListeners.127.0.0.1:1080: "aws" is not the name of an exit (hetzner, ovh)'],
    ["a pinned listener that is not a listener", mutate((c) => (c.proxy = { pinnedListeners: { "127.0.0.1:1081": "ovh" } })), 'proxy.pinnedListeners.127.0.0.1:1081: "ovh" is pinned to an address that is not in proxy.listen (127.0.0.1:1080)'],
    ["failover without exits", { ...minimalConfig(), failover: {} }, 'failover: {} needs "exits" (two or more); with one exit there is nothing to fail over to'],
    ["a probe target that is a name", mutate((c) => (c.failover = { probe: { target: { kind: "tcp", host: "example.com", port: 443 } } })), 'failover.probe.target.host: "example.com" is not an IP address'],
  ])("refuses %s, naming the field", (_name, input, message) => {
    expect(problemsOf(input)).toContain(message);
  });

  // Regression: the pin was checked against proxy.listen as raw text, while the proxy keys listeners
  // by socket address, so another spelling of the same listener was refused.
  test.each([
    ["the same text", "[::1]:1080", "[::1]:1080"],
    ["an IPv6 listener spelt longer in the pin", "[::1]:1080", "[0:0::1]:1080"],
    ["an IPv6 listener spelt longer in proxy.listen", "[0:0:0:0:0:0:0:1]:1080", "[::1]:1080"],
    ["an IPv4-mapped pin of an IPv4 listener", "127.0.0.1:1080", "[::ffff:127.0.0.1]:1080"],
  ])("a pinned listener matches its listener as a socket address: %s", (_name, listen, pin) => {
    const c = mutate((x) => (x.proxy = { listen: [listen], pinnedListeners: { [pin]: "ovh" } }));
    const p = parseConfig(c, NO_FILES); // throws, naming the pin, when refused
    expect(Object.values(p.proxy.pinnedListeners ?? {})).toEqual(["ovh"]);
  });

  test("a pin on another port or address of the same spelling is still refused", () => {
    for (const pin of ["[::1]:1081", "[::2]:1080", "not-an-address"]) {
      const c = mutate((x) => (x.proxy = { listen: ["[::1]:1080"], pinnedListeners: { [pin]: "ovh" } }));
      expect(problemsOf(c)).toContain(`proxy.pinnedListeners.${pin}: "ovh" is pinned to an address that is not in proxy.listen ([::1]:1080)`);
    }
  });
});
