/** The config -> HostSpec / ProxyServerOptions mapping, and which config changes touch the host. */
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type NetworkInterfaceInfo, tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../lib/config/load.ts";
import type { Config } from "../../lib/config/schema.ts";
import { hostChanges, hostSpec, missingRouting, ownAddresses, proxyOptions, reloadRefusal } from "../../lib/daemon/specs.ts";
import { parseRoutes, parseRules } from "../../lib/host/routing-parse.ts";
import { validateSpec } from "../../lib/host/spec.ts";
import { formatCidr, formatIp } from "../../lib/net/ip.ts";
import type { Credentials } from "../../lib/proxy/auth.ts";

const EXIT_KEY = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";

/** A config with a non-default value in every field the mapping carries. */
function full(): Record<string, any> {
  return {
    interface: { name: "wg-test", privateKeyFile: "gw.key", addresses: ["10.100.0.2/32", "fd00::2/128"], mtu: 1380, implementation: "userspace", listenPort: 51999 },
    exit: { name: "vps", publicKey: EXIT_KEY, endpoint: "vps.example.net:443", presharedKeyFile: "/etc/egressd/psk", persistentKeepalive: 15, allowedIps: ["0.0.0.0/0"] },
    routing: { fwmark: "0x1234", wireguardFwmark: "0x1235", table: 777, rulePriority: 6000, killSwitch: false },
    proxy: {
      listen: ["10.1.0.1:1080", "[fd00:1::1]:1081"],
      allowClients: ["10.1.0.0/24", "fd00:1::/64"],
      auth: { username: "pod", passwordFile: "proxy-password" },
      allowDestinations: ["10.2.0.0/16"],
      dns: { mode: "system", servers: ["1.1.1.1"], timeout: "2s" },
      idleTimeout: "1h",
      connectTimeout: "3s",
      handshakeTimeout: "4s",
      maxConnections: 99,
      keepaliveIdle: "2m",
    },
    metrics: { listen: "10.1.0.1:9586" },
    control: { socket: "/run/egressd/control.sock" },
    daemon: { reconcileInterval: "5s" },
  };
}

function parse(input: Record<string, any>): Config {
  return parseConfig(input, { checkFiles: false, baseDir: "/etc/egressd", env: {} });
}

describe("hostSpec", () => {
  test("carries every host field, with secret paths resolved and the daemon's uid", () => {
    expect(hostSpec(parse(full()), 400)).toEqual({
      interface: { name: "wg-test", privateKeyFile: "/etc/egressd/gw.key", addresses: ["10.100.0.2/32", "fd00::2/128"], mtu: 1380, implementation: "userspace", listenPort: 51999 },
      exit: { name: "vps", publicKey: EXIT_KEY, endpoint: "vps.example.net:443", presharedKeyFile: "/etc/egressd/psk", persistentKeepalive: 15, allowedIps: ["0.0.0.0/0"] },
      routing: { fwmark: 0x1234, wireguardFwmark: 0x1235, table: 777, rulePriority: 6000, killSwitch: false, allowDestinations: ["10.2.0.0/16"] },
      uid: 400,
    });
  });

  test("a relative key path is a systemd credential when $CREDENTIALS_DIRECTORY is set", () => {
    const c = parseConfig(full(), { checkFiles: false, baseDir: "/etc/egressd", env: { CREDENTIALS_DIRECTORY: "/run/credentials/egressd.service" } });
    expect(hostSpec(c, 400).interface.privateKeyFile).toBe("/run/credentials/egressd.service/gw.key");
  });

  test("what it makes, the host manager accepts", () => {
    expect(() => validateSpec(hostSpec(parse(full()), 400))).not.toThrow();
    expect(() => validateSpec(hostSpec(parse({ interface: { addresses: ["10.100.0.2/32"] }, exit: { publicKey: EXIT_KEY, endpoint: "192.0.2.1:51820" } }), 400))).not.toThrow();
  });
});

describe("proxyOptions", () => {
  test("maps listeners, ACLs, auth, DNS and limits; reads the password without its trailing newline", async () => {
    const read: string[] = [];
    const o = await proxyOptions(parse(full()), { own: [], readSecret: async (p) => (read.push(p), "s3cret\n") });
    expect(read).toEqual(["/etc/egressd/proxy-password"]);
    expect(o.listeners).toEqual([{ host: "10.1.0.1", port: 1080 }, { host: "fd00:1::1", port: 1081 }]);
    expect(o.allowClients.map(formatCidr)).toEqual(["10.1.0.0/24", "fd00:1::/64"]);
    expect(o.allowDestinations!.map(formatCidr)).toEqual(["10.2.0.0/16"]);
    expect(o.auth).toEqual([{ username: "pod", password: "s3cret" }]);
    expect(o.dns).toEqual({ mode: "system", servers: ["1.1.1.1"], timeoutMs: 2000 });
    expect([o.connectTimeoutMs, o.handshakeTimeoutMs, o.idleTimeoutMs, o.maxConnections]).toEqual([3000, 4000, 3_600_000, 99]);
    expect(o.allowWildcardBind).toBe(false);
    expect(o.keepalive).toEqual({ enabled: true, idleMs: 120_000, intervalMs: 15_000, count: 8 });
  });

  test("a proxy.listen object names the protocols of its listener; a plain address speaks all", async () => {
    const c = full() as any;
    c.proxy.listen = ["10.1.0.1:1080", { address: "10.1.0.1:3128", protocols: ["http"] }, { address: "10.1.0.1:1081" }];
    const o = await proxyOptions(parse(c), { readSecret: async () => "s3cret\n", own: [] });
    expect(o.listeners).toEqual([{ host: "10.1.0.1", port: 1080 }, { host: "10.1.0.1", port: 3128, protocols: ["http"] }, { host: "10.1.0.1", port: 1081, protocols: ["socks5", "http"] }]);
  });

  test("proxy.udp: defaults (on, every listener, ends with its TCP connection), and each field mapped", async () => {
    const dflt = await proxyOptions(parse(full()), { readSecret: async () => "s3cret\n", own: [] });
    expect(dflt.udp).toEqual({ enabled: true, listeners: null, idleTimeoutMs: 0, maxAssociations: 1024, maxDestinations: 256, portRange: null });
    const c = full() as any;
    c.proxy.udp = { enabled: true, listeners: ["[fd00:1::1]:1081"], idleTimeout: "2m", maxAssociations: 10, maxDestinations: 5, portRange: "40000-40100" };
    const o = await proxyOptions(parse(c), { readSecret: async () => "s3cret\n", own: [] });
    expect(o.udp).toEqual({ enabled: true, listeners: [{ host: "fd00:1::1", port: 1081 }], idleTimeoutMs: 120_000, maxAssociations: 10, maxDestinations: 5, portRange: { first: 40000, last: 40100 } });
  });

  test("proxy.keepaliveIdle 0 turns keepalive off on both legs", async () => {
    const c = full() as any;
    c.proxy.keepaliveIdle = 0;
    const o = await proxyOptions(parse(c), { readSecret: async () => "s3cret\n", own: [] });
    expect(o.keepalive).toEqual({ enabled: false });
  });

  test.each([
    ["pw\n", "pw"],
    ["pw\r\n", "pw"],
    ["pw", "pw"],
    ["pw\n\n", "pw\n"], // only one line ending is the file's; the rest is the password's
    [" pw ", " pw "],
  ])("password file %j -> %j", async (file, password) => {
    const o = await proxyOptions(parse(full()), { own: [], readSecret: async () => file });
    expect((o.auth as Credentials[])[0]!.password).toBe(password);
  });

  // Regression (issue 19): the daemon read the password with Bun.file().text(), so a file swapped
  // for a FIFO after check-config hung start and reload, and a world-readable one was used.
  test.each([
    ["a FIFO with no writer", (file: string) => void Bun.spawnSync(["mkfifo", file]), "is a FIFO (named pipe), not a regular file"],
    [
      "a world-readable file",
      (file: string) => (writeFileSync(file, "pw\n"), chmodSync(file, 0o644)),
      `has permissions 0644, which others can access; run chmod 600 "@FILE"`,
    ],
  ])("the password file by default is read by check-config's rule: %s is refused", async (_name, make, problem) => {
    const dir = mkdtempSync(join(tmpdir(), "egressd-specs-"));
    try {
      const file = join(dir, "proxy-password");
      make(file);
      const c = full();
      c.proxy.auth.passwordFile = file;
      await expect(proxyOptions(parse(c), { own: [] })).rejects.toThrow(`proxy.auth.passwordFile: "${file}" ${problem.replace("@FILE", file)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the password file by default: one trailing newline is not part of the password", async () => {
    const dir = mkdtempSync(join(tmpdir(), "egressd-specs-"));
    try {
      const file = join(dir, "proxy-password");
      writeFileSync(file, "pw\n\n", { mode: 0o600 });
      const c = full();
      c.proxy.auth.passwordFile = file;
      expect((await proxyOptions(parse(c), { own: [] })).auth).toEqual([{ username: "pod", password: "pw\n" }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("without auth no secret is read", async () => {
    const c = full();
    c.proxy.auth = null;
    const o = await proxyOptions(parse(c), { own: [], readSecret: async () => { throw new Error("read"); } });
    expect(o.auth).toBeNull();
  });

  test("own addresses: every interface address (zone stripped) and the tunnel's", () => {
    const nic = (address: string, family: "IPv4" | "IPv6") => ({ address, family, netmask: "", mac: "", internal: false, cidr: null }) as NetworkInterfaceInfo;
    const own = ownAddresses(parse(full()), {
      lo: [nic("127.0.0.1", "IPv4"), nic("::1", "IPv6")],
      wan: [nic("192.0.2.2", "IPv4"), nic("fe80::1%wan", "IPv6")],
    });
    expect(own.map(formatIp)).toEqual(["127.0.0.1", "::1", "192.0.2.2", "fe80::1", "10.100.0.2", "fd00::2"]);
  });
});

describe("hostChanges", () => {
  test.each([
    ["proxy.listen", (c: any) => c.proxy.listen.push("10.1.0.1:1082")],
    ["proxy.allowClients", (c: any) => (c.proxy.allowClients = ["10.1.0.0/16"])],
    ["proxy.auth", (c: any) => (c.proxy.auth = null)],
    ["proxy.maxConnections", (c: any) => (c.proxy.maxConnections = 5)],
    ["metrics.listen", (c: any) => (c.metrics.listen = "10.1.0.1:9587")],
    ["daemon.reconcileInterval", (c: any) => (c.daemon.reconcileInterval = "1m")],
  ])("a change to %s leaves the host alone", (_f, change) => {
    const b = full();
    change(b);
    expect(hostChanges(parse(full()), parse(b))).toEqual([]);
  });

  test.each([
    ["interface.mtu", (c: any) => (c.interface.mtu = 1420)],
    ["interface.name", (c: any) => (c.interface.name = "wg-other")],
    ["exit.endpoint", (c: any) => (c.exit.endpoint = "vps2.example.net:443")],
    ["exit.persistentKeepalive", (c: any) => (c.exit.persistentKeepalive = 25)],
    ["routing.table", (c: any) => (c.routing.table = 778)],
    ["routing.killSwitch", (c: any) => (c.routing.killSwitch = true)],
    ["proxy.allowDestinations", (c: any) => (c.proxy.allowDestinations = [])], // the leak guard's allow list
  ])("a change to %s changes the host, and is named so", (field, change) => {
    const b = full();
    change(b);
    expect(hostChanges(parse(full()), parse(b))).toEqual([field]);
  });

  test("reloadRefusal: none for proxy-only changes; the socket, one or several host fields refused by name", () => {
    const b = full();
    b.proxy.maxConnections = 5;
    expect(reloadRefusal(parse(full()), parse(b))).toBeNull();
    const sock = full();
    sock.control.socket = "/run/egressd/other.sock";
    expect(reloadRefusal(parse(full()), parse(sock))).toBe("control.socket cannot change on reload; restart egressd");
    const one = full();
    one.exit.endpoint = "vps2.example.net:443";
    expect(reloadRefusal(parse(full()), parse(one))).toBe(
      "exit.endpoint cannot change on reload without taking the tunnel's rules and kill switch down; restart egressd to apply it",
    );
    one.routing.table = 778;
    expect(reloadRefusal(parse(full()), parse(one))).toBe(
      "exit.endpoint, routing.table cannot change on reload without taking the tunnel's rules and kill switch down; restart egressd to apply them",
    );
  });

  test("several changes are named in config order", () => {
    const b = full();
    b.routing.table = 778;
    b.exit.endpoint = "vps2.example.net:443";
    b.interface.mtu = 1420;
    expect(hostChanges(parse(full()), parse(b))).toEqual(["interface.mtu", "exit.endpoint", "routing.table"]);
  });
});

describe("missingRouting", () => {
  // What `ip -j -N -<f> rule show` and `ip -j -<f> route show table 51820` print on a healthy gateway
  // (captured from the lab, interface renamed).
  const RULES = (f: 4 | 6) =>
    JSON.stringify([
      { priority: 0, src: "all", table: "255" },
      { priority: 5000, src: "all", fwmark: "0xca6d", table: "254", protocol: "212" },
      { priority: 5001, src: "all", fwmark: "0xca6c", table: "254", suppress_prefixlen: 0, protocol: "212" },
      { priority: 5002, src: "all", fwmark: "0xca6c", table: "51820", protocol: "212" },
      { priority: 5003, src: "all", uid_start: 400, uid_end: 400, table: "254", suppress_prefixlen: 0, protocol: "212" },
      { priority: 5004, src: "all", uid_start: 400, uid_end: 400, table: "51820", protocol: "212" },
      { priority: 5005, src: f === 4 ? "10.100.0.2" : "fd00::2", table: "51820", protocol: "212" },
      { priority: 32766, src: "all", table: "254" },
      ...(f === 4 ? [{ priority: 32767, src: "all", table: "253" }] : []),
    ]);
  const ROUTES = (f: 4 | 6) =>
    JSON.stringify(
      f === 4
        ? [
            { dst: "default", dev: "wg-egress", protocol: "212", scope: "link", metric: 100, flags: [] },
            { type: "unreachable", dst: "default", protocol: "212", metric: 4294967295, flags: [] },
          ]
        : [
            { dst: "default", dev: "wg-egress", protocol: "212", metric: 100, flags: [], pref: "medium" },
            { type: "unreachable", dst: "default", dev: "lo", protocol: "212", metric: 4294967295, flags: [], pref: "medium" },
          ],
    );
  const PRIOS = [5000, 5001, 5002, 5003, 5004, 5005];
  const n = validateSpec(hostSpec(parse({ interface: { addresses: ["10.100.0.2/32", "fd00::2/128"] }, exit: { publicKey: EXIT_KEY, endpoint: "192.0.2.1:51820" } }), 400));
  const observed = (drop: (kind: "rule" | "route", f: 4 | 6, o: { priority?: number; type?: string }) => boolean = () => false) => {
    const rules = ([4, 6] as const).flatMap((f) => parseRules(JSON.stringify(JSON.parse(RULES(f)).filter((o: any) => !drop("rule", f, o))), f, PRIOS));
    const routes = ([4, 6] as const).flatMap((f) => parseRoutes(JSON.stringify(JSON.parse(ROUTES(f)).filter((o: any) => !drop("route", f, o))), f));
    return { rules, routes };
  };

  test("nothing is missing on a healthy gateway", () => {
    expect(missingRouting(n, [4, 6], observed())).toEqual([]);
  });

  test("names each missing rule and route, the kill switch's among them", () => {
    const got = missingRouting(n, [4, 6], observed((kind, f, o) => (kind === "rule" && f === 4 && o.priority === 5000) || (kind === "route" && f === 4 && o.type === "unreachable") || (kind === "rule" && f === 6 && o.priority === 5004)));
    expect(got).toEqual([
      "IPv4 rule priority 5000 fwmark 0xca6d lookup main",
      "IPv4 route unreachable default metric 4294967295",
      "IPv6 rule priority 5004 uidrange 400-400 lookup 51820",
    ]);
  });

  test("an empty host misses everything, per family asked for", () => {
    expect(missingRouting(n, [4, 6], { rules: [], routes: [] }).length).toBe(2 * (6 + 2));
    expect(missingRouting(n, [4], { rules: [], routes: [] }).every((m) => m.startsWith("IPv4 "))).toBe(true);
  });

  test("a rule that differs (another uid) does not count as ours", () => {
    const obs = observed();
    const other = parseRules(RULES(4).replaceAll('"uid_end":400', '"uid_end":401'), 4, PRIOS);
    const got = missingRouting(n, [4, 6], { rules: [...other, ...obs.rules.filter((r) => r.family === 6)], routes: obs.routes });
    expect(got).toEqual(["IPv4 rule priority 5003 uidrange 400-400 lookup main suppress_prefixlength 0", "IPv4 rule priority 5004 uidrange 400-400 lookup 51820"]);
  });
});
