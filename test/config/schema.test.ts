/**
 * The config schema in process (no files): every malformed row gives exactly one problem naming its
 * field, defaults are the documented safe ones, and the effective config loads back unchanged.
 */
import { describe, expect, test } from "bun:test";
import { effectiveConfig } from "../../lib/config/effective.ts";
import { ConfigError, formatPath } from "../../lib/config/errors.ts";
import { parseConfig } from "../../lib/config/load.ts";
import { type Config, configSchema } from "../../lib/config/schema.ts";
import { EXIT_PUBLIC_KEY, minimalConfig } from "./fixtures.ts";
import { MALFORMED, malformedConfig } from "./malformed.ts";

const NO_FILES = { checkFiles: false, env: {}, baseDir: "/etc/egressd" } as const;

/** The problems `input` produces; fails the test when it parses. */
function problemsOf(input: unknown): { path: string; message: string }[] {
  try {
    parseConfig(input, NO_FILES);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems.map((p) => ({ path: p.path, message: p.message }));
  }
  throw new Error("the config was accepted");
}

describe("malformed configs give one line naming the field", () => {
  test("the minimal config they all start from is valid", () => {
    expect(() => parseConfig(minimalConfig(), NO_FILES)).not.toThrow();
  });

  test.each(MALFORMED.map((r) => [r.name, r] as const))("%s", (_name, row) => {
    const problems = problemsOf(malformedConfig(row));
    expect(problems).toEqual([{ path: row.path, message: row.message }]);
    expect(row.message).not.toContain("\n");
    expect(row.message.startsWith(`${row.path}: `)).toBe(true);
  });

  test.each([
    ["an array", [], "(root): [] is an array, expected an object"],
    ["null", null, "(root): null is null, expected an object"],
    ["a string", "config", `(root): "config" is a string, expected an object`],
  ])("a root that is %s", (_name, input, message) => {
    expect(problemsOf(input)).toEqual([{ path: "(root)", message }]);
  });

  test("the wildcard check also reports alongside an unrelated error", () => {
    const c = minimalConfig();
    c.proxy = { listen: ["0.0.0.0:1080"] };
    c.interface.mtu = 1;
    expect(problemsOf(c).map((p) => p.path)).toEqual(["interface.mtu", "proxy.listen[0]"]);
  });

  test.each([
    ["proxy", { proxy: { listen: ["0.0.0.0:1080", "[::]:1080"], allowWildcardBind: true } }],
    ["metrics", { metrics: { listen: "0.0.0.0:9586", allowWildcardBind: true } }],
  ])("allowWildcardBind lets %s bind a wildcard", (_name, extra) => {
    expect(() => parseConfig({ ...minimalConfig(), ...extra }, NO_FILES)).not.toThrow();
  });

  test.each([
    ["IPv4 and IPv6 wildcards on one port (IPv6 listeners are v6-only)", ["0.0.0.0:1080", "[::]:1080"]],
    ["a wildcard and a specific address on different ports", ["0.0.0.0:1080", "10.1.0.1:1081"]],
    ["an IPv4 wildcard and a specific IPv6 address on one port", ["0.0.0.0:1080", "[fd00::1]:1080"]],
    ["two specific addresses on one port", ["10.1.0.1:1080", "10.2.0.1:1080"]],
  ])("listeners that do not collide are accepted: %s", (_name, listen) => {
    const c = { ...minimalConfig(), proxy: { allowWildcardBind: true, listen } };
    expect(parseConfig(c, NO_FILES).proxy.listen).toEqual(listen);
  });

  test("metrics: null turns the listener off, so the proxy may use its default address", () => {
    const c = { ...minimalConfig(), proxy: { listen: ["127.0.0.1:9586"] }, metrics: { listen: null } };
    expect(parseConfig(c, NO_FILES).metrics.listen).toBeNull();
  });

  test("tunnel DNS may go without servers in system mode", () => {
    const c = { ...minimalConfig(), proxy: { dns: { mode: "system", servers: [] } } };
    expect(parseConfig(c, NO_FILES).proxy.dns.servers).toEqual([]);
  });

  test("every problem is reported, in one line each", () => {
    const c = minimalConfig();
    c.interface.mtu = "big";
    c.routing = { table: 254, fwmark: 0 };
    c.proxy = { allowClient: [] };
    expect(problemsOf(c).map((p) => p.path).sort()).toEqual(
      ["interface.mtu", "proxy.allowClient", "routing.fwmark", "routing.table"].sort(),
    );
  });
});

describe("defaults", () => {
  test("a minimal config gets every default, and the defaults are the safe ones", () => {
    const expected: Config = {
      interface: {
        name: "wg-egress",
        privateKeyFile: "/etc/egressd/private-key",
        addresses: ["10.100.0.2/32"],
        mtu: 1420,
        implementation: "auto",
        listenPort: null,
      },
      exit: {
        name: "exit",
        publicKey: EXIT_PUBLIC_KEY,
        endpoint: "vps.example.net:51820",
        presharedKeyFile: null,
        persistentKeepalive: 25,
        allowedIps: ["0.0.0.0/0", "::/0"],
      },
      routing: { fwmark: 0xca6c, wireguardFwmark: 0xca6d, table: 51820, rulePriority: 5000, killSwitch: true },
      proxy: {
        listen: ["127.0.0.1:1080"],
        allowWildcardBind: false,
        allowClients: ["127.0.0.0/8", "::1/128"],
        auth: null,
        allowDestinations: [],
        dns: { mode: "tunnel", servers: ["9.9.9.9", "149.112.112.112"], timeout: 5000 },
        idleTimeout: 0,
        connectTimeout: 10_000,
        handshakeTimeout: 10_000,
        maxConnections: 20_000,
        keepaliveIdle: 60_000,
        keepaliveInterval: 15_000,
        keepaliveCount: 8,
        udp: { enabled: true, listeners: null, idleTimeout: 0, maxAssociations: 1024, maxDestinations: 256, portRange: null },
      },
      metrics: { listen: "127.0.0.1:9586", allowWildcardBind: false, latestHandshakeDelay: true },
      control: { socket: "/run/egressd/control.sock" },
      daemon: { reconcileInterval: 2000, teardownOnStop: true, drainTimeout: 10_000, logLevel: "info" },
    };
    expect(parseConfig(minimalConfig(), NO_FILES)).toEqual(expected);
  });

  test("a default in a section is filled in when the section is partly written", () => {
    const c = parseConfig({ ...minimalConfig(), proxy: { listen: ["10.1.0.1:1080"] }, routing: { table: 100 } }, NO_FILES);
    expect(c.proxy.allowClients).toEqual(["127.0.0.0/8", "::1/128"]);
    expect(c.proxy.dns.mode).toBe("tunnel");
    expect(c.routing.killSwitch).toBe(true);
    expect(c.routing.fwmark).toBe(0xca6c);
  });

  test("the parsed default for a section equals parsing an empty section", () => {
    // The schema writes the DNS default out by hand; it must not drift from the field defaults.
    const empty = parseConfig({ ...minimalConfig(), proxy: { dns: {} } }, NO_FILES);
    expect(parseConfig(minimalConfig(), NO_FILES).proxy.dns).toEqual(empty.proxy.dns);
  });

  test("values are normalised: fwmark hex to number, durations to ms, prefixes canonical", () => {
    const c = parseConfig(
      {
        ...minimalConfig(),
        routing: { fwmark: "0xCA6C", wireguardFwmark: "51821" },
        proxy: { allowClients: ["2001:DB8:0:0::/64"], idleTimeout: "1m30s", connectTimeout: 2.5 },
      },
      NO_FILES,
    );
    expect([c.routing.fwmark, c.routing.wireguardFwmark]).toEqual([0xca6c, 51821]);
    expect(c.proxy.allowClients).toEqual(["2001:db8::/64"]);
    expect([c.proxy.idleTimeout, c.proxy.connectTimeout]).toEqual([90_000, 2500]);
  });
});

describe("effectiveConfig", () => {
  const full = {
    interface: {
      name: "wg-test",
      privateKeyFile: "/run/credentials/egressd.service/private-key",
      addresses: ["10.100.0.2/24", "fd00::2/64"],
      mtu: 1380,
      implementation: "userspace",
      listenPort: 51000,
    },
    exit: {
      name: "hetzner",
      publicKey: EXIT_PUBLIC_KEY,
      endpoint: "[2001:db8::1]:51820",
      presharedKeyFile: "/etc/egressd/psk",
      persistentKeepalive: 0,
      allowedIps: ["0.0.0.0/0"],
    },
    routing: { fwmark: "0x1234", wireguardFwmark: 7, table: 100, rulePriority: 100, killSwitch: false },
    proxy: {
      listen: ["10.1.0.1:1080", "[fd00::1]:1080"],
      allowWildcardBind: false,
      allowClients: ["10.1.0.0/24"],
      auth: { username: "bot", passwordFile: "/etc/egressd/password" },
      allowDestinations: ["192.168.5.0/24"],
      dns: { mode: "system", servers: [], timeout: "750ms" },
      idleTimeout: "1h1m1s1ms",
      connectTimeout: 3,
      handshakeTimeout: "3s",
      maxConnections: 10,
      keepaliveIdle: "5m",
      keepaliveInterval: "1m",
      keepaliveCount: 20,
    },
    metrics: { listen: null, allowWildcardBind: true, latestHandshakeDelay: false },
    control: { socket: "/tmp/egressd.sock" },
    daemon: { reconcileInterval: "500ms", teardownOnStop: false, drainTimeout: "2m", logLevel: "debug" },
  };

  test.each([
    ["the minimal config", minimalConfig()],
    ["a config that changes every default", full],
  ])("%s round-trips: the effective config parses back to an equal config", (_name, input) => {
    const config = parseConfig(input, NO_FILES);
    const text = JSON.stringify(effectiveConfig(config));
    expect(parseConfig(JSON.parse(text), NO_FILES)).toEqual(config);
  });

  test("is written as a user would write it: hex marks, duration strings", () => {
    const e = effectiveConfig(parseConfig(full, NO_FILES)) as Record<string, any>;
    expect(e.routing.fwmark).toBe("0x1234");
    expect(e.routing.wireguardFwmark).toBe("0x7");
    expect(e.proxy.idleTimeout).toBe("1h1m1s1ms");
    expect(e.proxy.connectTimeout).toBe("3s");
    expect(e.proxy.handshakeTimeout).toBe("3s");
    expect(e.proxy.dns.timeout).toBe("750ms");
    expect(e.daemon.drainTimeout).toBe("2m");
    expect(e.proxy.keepaliveIdle).toBe("5m");
    expect(e.proxy.keepaliveInterval).toBe("1m");
    expect(e.proxy.keepaliveCount).toBe(20);
    expect(e.proxy.auth).toEqual({ username: "bot", passwordFile: "/etc/egressd/password" });
  });
});

describe("formatPath", () => {
  test.each([
    [[], "(root)"],
    [["proxy"], "proxy"],
    [["proxy", "listen", 0], "proxy.listen[0]"],
    [["exit", "allowedIps", 2, "x"], "exit.allowedIps[2].x"],
  ] as const)("%j -> %s", (path, text) => {
    expect(formatPath(path)).toBe(text);
  });
});

test("the schema object is strict at every level, so the 'did you mean' list can be built", () => {
  // problemsFromZod walks the schema for known keys; a section it cannot walk would say nothing.
  for (const section of ["interface", "exit", "routing", "proxy", "metrics", "control", "daemon"]) {
    const c = { ...minimalConfig(), [section]: { ...(minimalConfig()[section] ?? {}), zzzzzzzzzz: 1 } };
    const [p] = problemsOf(c);
    expect(p?.message).toMatch(new RegExp(`^${section}\\.zzzzzzzzzz: unknown key; known keys: \\w`));
  }
  expect(Object.keys(configSchema.in.shape)).toEqual(["interface", "exit", "exits", "failover", "routing", "proxy", "metrics", "control", "daemon"]);
});

// Regression: the UDP listener check keyed addresses without unmapping them, unlike the proxy, so an
// IPv4-mapped spelling of a listener was refused at load although the proxy serves UDP on it.
test.each([
  ["the same text", "127.0.0.1:1080", "127.0.0.1:1080"],
  ["an IPv4-mapped spelling", "127.0.0.1:1080", "[::ffff:127.0.0.1]:1080"],
  ["a longer IPv6 spelling", "[::1]:1080", "[0:0::1]:1080"],
])("proxy.udp.listeners names a listener as a socket address: %s", (_name, listen, udp) => {
  const c = parseConfig({ ...minimalConfig(), proxy: { listen: [listen], udp: { listeners: [udp] } } }, { checkFiles: false, env: {}, baseDir: "/etc/egressd" });
  expect(c.proxy.udp.listeners).toEqual([udp]);
});
