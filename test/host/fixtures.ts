/**
 * A scripted host for unit tests: a {@link FakeRunner} whose observation commands answer from a small
 * mutable state, with just enough side effects (link creation/deletion, nft apply/delete) for up() and
 * down() to run their real code paths. Rules and routes are static arrays a test edits to create drift.
 * Outputs are copied from real `ip -j`, `wg show dump` and `nft -j` runs on iproute2 6.1 / nftables 1.0.6.
 */
import { ROUTING_DEFAULTS } from "../../lib/config/schema.ts";
import { FakeRunner, type FakeChild } from "../exec/fake.ts";
import type { HostSpec } from "../../lib/host/spec.ts";
import type { SysctlAccess } from "../../lib/host/sysctl.ts";

/** Test keys (generated with `wg genkey`; never used anywhere real). */
export const KEYS = {
  gatewayPrivate: "UD4zlLY+TyKcOdggJRrg7dPNLwoVlAhy3NAdqSS71E8=",
  gatewayPublic: "hcJFAVEVQz/e7glq0r9EYYCcBz29+S2grMO88teFwxI=",
  exitPublic: "Z5H9cJ0S7VTvB2mWZPa5+2EoTfi/PRZTAl4+8PPV9V0=",
  psk: "KDOLWmgiRJyIVRUAvFhb4qrkP2qIqK77ZSTQ+z+ipEY=",
  strangerPublic: "WvOH+8vncxLmr3QUk3Ej7QVXgFKlSU6T/MVaj1ep0lU=",
} as const;

/** The spec used by the unit tests: the shapes of the production defaults. */
export function testSpec(over: { interface?: Partial<HostSpec["interface"]>; exit?: Partial<HostSpec["exit"]>; routing?: Partial<HostSpec["routing"]>; uid?: number } = {}): HostSpec {
  return {
    interface: {
      name: "wg-egress",
      privateKeyFile: "/run/credentials/egressd.service/private-key",
      addresses: ["10.100.0.2/32", "fd00::2/128"],
      mtu: 1420,
      implementation: "auto",
      listenPort: null,
      ...over.interface,
    },
    exit: {
      name: "hetzner",
      publicKey: KEYS.exitPublic,
      endpoint: "198.51.100.2:51820",
      presharedKeyFile: null,
      persistentKeepalive: 25,
      allowedIps: ["0.0.0.0/0", "::/0"],
      ...over.exit,
    },
    routing: {
      ...ROUTING_DEFAULTS,
      allowDestinations: [],
      ...over.routing,
    },
    uid: over.uid ?? 64000,
  };
}

/** A second exit's key (generated with `wg genkey | wg pubkey`; never used anywhere real). */
export const SECOND_EXIT_PUBLIC = "XQY2+iq1v2dtKDyqMZq5s3Y2dxXCBiMiHKa/9biuUH4=";

/**
 * {@link testSpec} with several exits (default two: hetzner, ovh; three adds `scaleway`), each with its
 * own interface and tunnel addresses, as the daemon maps `exits: [...]`.
 */
export function twoExitSpec(over: { count?: 2 | 3; routing?: Partial<HostSpec["routing"]> } = {}): HostSpec {
  const base = testSpec({ routing: over.routing });
  const names = ["hetzner", "ovh", "scaleway"].slice(0, over.count ?? 2);
  const exits = names.map((name, i) => ({
    exit: { ...base.exit, name, publicKey: i === 0 ? KEYS.exitPublic : i === 1 ? SECOND_EXIT_PUBLIC : KEYS.strangerPublic, endpoint: `198.51.100.${2 + i}:51820` },
    interfaceName: `wg-egress-${i}`,
    addresses: [`10.100.${i}.2/32`, `fd00:${i}::2/128`],
  }));
  return { ...base, interface: { ...base.interface, name: exits[0]!.interfaceName, addresses: exits[0]!.addresses }, exit: exits[0]!.exit, exits };
}

/** `ip -j -N -4 rule show` with our two rules present. */
export const HEALTHY_RULES = (family: 4 | 6) =>
  [
    { priority: 0, src: "all", table: "255" },
    { priority: 5000, src: "all", fwmark: "0xca6d", table: "254", protocol: "212" },
    { priority: 5001, src: "all", fwmark: "0xca6c", table: "254", suppress_prefixlen: 0, protocol: "212" },
    { priority: 5002, src: "all", fwmark: "0xca6c", table: "51820", protocol: "212" },
    { priority: 5003, src: "all", uid_start: 64000, uid_end: 64000, table: "254", suppress_prefixlen: 0, protocol: "212" },
    { priority: 5004, src: "all", uid_start: 64000, uid_end: 64000, table: "51820", protocol: "212" },
    { priority: 5005, src: family === 4 ? "10.100.0.2" : "fd00::2", table: "51820", protocol: "212" },
    { priority: 32766, src: "all", table: "254" },
    ...(family === 4 ? [{ priority: 32767, src: "all", table: "253" }] : []),
  ] as Record<string, unknown>[];

/** `ip -j -<f> route show table 51820` with our routes present. */
export const HEALTHY_ROUTES = (family: 4 | 6, ifname = "wg-egress") =>
  (family === 4
    ? [
        { dst: "default", dev: ifname, protocol: "212", scope: "link", metric: 100, flags: [] },
        { type: "unreachable", dst: "default", protocol: "212", metric: 4294967295, flags: [] },
      ]
    : [
        { dst: "default", dev: ifname, protocol: "212", metric: 100, flags: [], pref: "medium" },
        { type: "unreachable", dst: "default", dev: "lo", protocol: "212", metric: 4294967295, flags: [], pref: "medium" },
      ]) as Record<string, unknown>[];

/** A link as the simulated host keeps it. */
export interface LinkFixture {
  kind: string;
  alias: string | null;
  mtu: number;
  up: boolean;
  /** `[address, prefixlen, "inet" | "inet6"]` */
  addrs: [string, number, string][];
}

/** Our healthy interface (userspace unless `kind` says otherwise), with overrides. */
export function link(o: Partial<LinkFixture> = {}): LinkFixture {
  return {
    kind: "tun",
    alias: "egressd",
    mtu: 1420,
    up: true,
    addrs: [
      ["10.100.0.2", 32, "inet"],
      ["fd00::2", 128, "inet6"],
    ],
    ...o,
  };
}

/** `ip -j -d addr show dev <if>` for a link fixture. */
export function linkJson(l: LinkFixture, ifname = "wg-egress"): string {
  const out: Record<string, unknown> = {
    ifindex: 5,
    ifname,
    flags: l.up ? ["POINTOPOINT", "MULTICAST", "NOARP", "UP", "LOWER_UP"] : ["POINTOPOINT", "MULTICAST", "NOARP"],
    mtu: l.mtu,
    linkinfo: { info_kind: l.kind },
    addr_info: [
      ...l.addrs.map(([local, prefixlen, family]) => ({ family, local, prefixlen, scope: "global" })),
      { family: "inet6", local: "fe80::1234", prefixlen: 64, scope: "link" },
    ],
  };
  if (l.alias !== null) out.ifalias = l.alias;
  return JSON.stringify([out]);
}

/** `wg show <if> dump` for a healthy interface. */
export function dumpText(o: { publicKey?: string; peer?: string; fwmark?: string; endpoint?: string; allowed?: string; handshake?: number; keepalive?: string; psk?: string; extraPeer?: boolean } = {}): string {
  const lines = [
    `${KEYS.gatewayPrivate}\t${o.publicKey ?? KEYS.gatewayPublic}\t43123\t${o.fwmark ?? "0xca6d"}`,
    `${o.peer ?? KEYS.exitPublic}\t${o.psk ?? "(none)"}\t${o.endpoint ?? "198.51.100.2:51820"}\t${o.allowed ?? "0.0.0.0/0,::/0"}\t${o.handshake ?? 1_700_000_000}\t1234\t5678\t${o.keepalive ?? "25"}`,
  ];
  if (o.extraPeer) lines.push(`${KEYS.strangerPublic}\t(none)\t(none)\t10.9.9.9/32\t0\t0\t0\toff`);
  return lines.join("\n") + "\n";
}

/** A stand-in for `nft -j list table inet egressd` (content only matters through its fingerprint). */
export function nftJson(o: { extraRule?: boolean; packets?: number } = {}): string {
  const items: unknown[] = [
    { metainfo: { version: "1.0.6", json_schema_version: 1 } },
    { table: { family: "inet", name: "egressd", handle: 7 } },
    { counter: { family: "inet", name: "leak_guard", table: "egressd", handle: 5, packets: o.packets ?? 0, bytes: (o.packets ?? 0) * 60 } },
    { chain: { family: "inet", table: "egressd", name: "mark_uid", handle: 1, type: "route", hook: "output", prio: -150, policy: "accept" } },
    { rule: { family: "inet", table: "egressd", chain: "mark_uid", handle: 9, comment: "mark uid 64000", expr: [] } },
  ];
  if (o.extraRule) items.push({ rule: { family: "inet", table: "egressd", chain: "mark_uid", handle: 10, expr: [{ accept: null }] } });
  return JSON.stringify({ nftables: items });
}

/** The mutable state behind {@link fakeHost}. */
export interface FakeHostState {
  /** `ip link add ... type wireguard` works (kernel module present). */
  kernelWireguard: boolean;
  link: LinkFixture | null;
  dump: string;
  rules: { 4: Record<string, unknown>[]; 6: Record<string, unknown>[] };
  routes: { 4: Record<string, unknown>[]; 6: Record<string, unknown>[] };
  nft: string | null;
  srcValidMark: string;
}

/**
 * A fake runner, fake sysctl and fake key reader over one {@link FakeHostState}. The runner simulates the
 * commands egressd issues (rule/route add/del, link add/del/set, address add/del, nft -f/delete), so up(),
 * down() and rollbacks act on consistent state.
 */
export function fakeHost(initial: Partial<FakeHostState> = {}, ifname = "wg-egress") {
  const state: FakeHostState = {
    kernelWireguard: false,
    link: null,
    dump: dumpText(),
    rules: { 4: HEALTHY_RULES(4).filter((r) => r.protocol === undefined), 6: HEALTHY_RULES(6).filter((r) => r.protocol === undefined) },
    routes: { 4: [], 6: [] },
    nft: null,
    srcValidMark: "0",
    ...initial,
  };
  const runner = new FakeRunner();
  scriptRules(runner, () => state.rules);
  let child: FakeChild | null = null;
  const fam = (argv: readonly string[]) => (argv[1] === "-6" ? 6 : 4);
  const word = (argv: readonly string[], key: string) => {
    const i = argv.indexOf(key);
    return i < 0 ? undefined : argv[i + 1];
  };
  const noLink = { exitCode: 1, stderr: `Cannot find device "${ifname}"` };
  runner
    .on(`ip -j -d addr show dev ${ifname}`, () => (state.link ? { stdout: linkJson(state.link, ifname) } : { exitCode: 1, stderr: `Device "${ifname}" does not exist.` }))
    .on(`wg show ${ifname} dump`, () => (state.link ? { stdout: state.dump } : { exitCode: 1, stderr: "Unable to access interface: Protocol not supported" }))
    .on("wg pubkey", { stdout: KEYS.gatewayPublic + "\n" })
    .on("ip -j -N -4 rule show", () => ({ stdout: JSON.stringify(state.rules[4]) }))
    .on("ip -j -N -6 rule show", () => ({ stdout: JSON.stringify(state.rules[6]) }))
    .on(/^ip -j -4 route show table/, () => (state.routes[4].length ? { stdout: JSON.stringify(state.routes[4]) } : { exitCode: 2, stderr: "Error: ipv4: FIB table does not exist.\nDump terminated" }))
    .on(/^ip -j -6 route show table/, () => (state.routes[6].length ? { stdout: JSON.stringify(state.routes[6]) } : { exitCode: 2, stderr: "Error: ipv6: FIB table does not exist.\nDump terminated" }))
    .on(/^ip -[46] route add /, (c) => {
      const unreachable = c.argv[4] === "unreachable";
      const dst = c.argv[unreachable ? 5 : 4]!;
      const route: Record<string, unknown> = unreachable ? { type: "unreachable", dst } : { dst };
      if (word(c.argv, "dev")) route.dev = word(c.argv, "dev");
      route.protocol = word(c.argv, "proto");
      route.metric = Number(word(c.argv, "metric"));
      route.flags = [];
      state.routes[fam(c.argv)].push(route);
      return {};
    })
    .on(/^ip -[46] route del /, (c) => {
      const unreachable = c.argv[4] === "unreachable";
      const dst = c.argv[unreachable ? 5 : 4]!;
      const list = state.routes[fam(c.argv)];
      const i = list.findIndex((r) => r.dst === dst && (r.type === "unreachable") === unreachable && Number(r.metric ?? 0) === Number(word(c.argv, "metric") ?? 0));
      if (i < 0) return { exitCode: 2, stderr: "RTNETLINK answers: No such process" };
      list.splice(i, 1);
      return {};
    })
    .on("nft -j list table inet egressd", () => (state.nft ? { stdout: state.nft } : { exitCode: 1, stderr: "Error: No such file or directory\nlist table inet egressd" }))
    .on("nft list table inet egressd", () => (state.nft ? { stdout: "table inet egressd {\n}\n" } : { exitCode: 1, stderr: "Error: No such file or directory" }))
    .on("nft -j list counter inet egressd leak_guard", () => (state.nft ? { stdout: state.nft } : { exitCode: 1, stderr: "Error: No such file or directory" }))
    .on("nft -f -", () => {
      state.nft = nftJson();
      return {};
    })
    .on("nft delete table inet egressd", () => {
      if (!state.nft) return { exitCode: 1, stderr: "Error: Could not process rule: No such file or directory" };
      state.nft = null;
      return {};
    })
    .on(`ip link add dev ${ifname} type wireguard`, () => {
      if (!state.kernelWireguard) return { exitCode: 2, stderr: "Error: Unknown device type." };
      state.link = link({ kind: "wireguard", alias: null, addrs: [], up: false });
      return {};
    })
    .on(/wireguard-go -f/, () => {
      state.link = link({ kind: "tun", alias: null, addrs: [], up: false });
      return {};
    })
    .on(`ip link del dev ${ifname}`, () => {
      if (!state.link) return noLink;
      state.link = null;
      child?.finish();
      return {};
    })
    .on(`ip link set dev ${ifname}`, (c) => {
      if (!state.link) return noLink;
      const what = c.argv[5];
      if (what === "alias") state.link.alias = c.argv[6]!;
      else if (what === "mtu") state.link.mtu = Number(c.argv[6]);
      else if (what === "up") state.link.up = true;
      else if (what === "down") state.link.up = false;
      return {};
    })
    .on(/^ip -[46] address (add|del) /, (c) => {
      if (!state.link) return noLink;
      const [local, len] = c.argv[4]!.split("/");
      const entry: [string, number, string] = [local!, Number(len), fam(c.argv) === 4 ? "inet" : "inet6"];
      if (c.argv[3] === "add") state.link.addrs.push(entry);
      else state.link.addrs = state.link.addrs.filter((a) => a[0] !== local);
      return {};
    });
  const origStart = runner.start.bind(runner);
  runner.start = (argv, opts) => {
    child = origStart(argv, opts);
    return child;
  };
  const sysctl: SysctlAccess = {
    async read() {
      return state.srcValidMark;
    },
    async write(_key, value) {
      state.srcValidMark = value;
    },
  };
  const readSecret = async () => KEYS.gatewayPrivate + "\n";
  /** Puts the host in the state a successful up() leaves (for hosts set up without calling up()). */
  const makeHealthy = (kind = "tun") => {
    state.link = link({ kind });
    state.dump = dumpText();
    state.rules = { 4: HEALTHY_RULES(4), 6: HEALTHY_RULES(6) };
    state.routes = { 4: HEALTHY_ROUTES(4, ifname), 6: HEALTHY_ROUTES(6, ifname) };
    state.nft = nftJson();
    state.srcValidMark = "1";
  };
  return { runner, state, sysctl, readSecret, makeHealthy, child: () => child };
}

/**
 * Scripts `ip rule add` and `ip rule del` over a rule list per family, as `ip -j -N rule show` prints
 * them (shared by the fake hosts of one and of several exits).
 */
export function scriptRules(runner: FakeRunner, rules: () => { 4: Record<string, unknown>[]; 6: Record<string, unknown>[] }): void {
  const fam = (argv: readonly string[]) => (argv[1] === "-6" ? 6 : 4);
  const word = (argv: readonly string[], key: string) => {
    const i = argv.indexOf(key);
    return i < 0 ? undefined : argv[i + 1];
  };
  runner
    .on(/^ip -[46] rule add /, (c) => {
      const table = word(c.argv, "lookup")!;
      const rule: Record<string, unknown> = { priority: Number(word(c.argv, "priority")), src: word(c.argv, "from") ?? "all" };
      if (word(c.argv, "fwmark") !== undefined) rule.fwmark = word(c.argv, "fwmark");
      const uids = word(c.argv, "uidrange")?.split("-");
      if (uids) Object.assign(rule, { uid_start: Number(uids[0]), uid_end: Number(uids[1]) });
      rule.table = table === "main" ? "254" : table;
      if (word(c.argv, "suppress_prefixlength") !== undefined) rule.suppress_prefixlen = Number(word(c.argv, "suppress_prefixlength"));
      rule.protocol = word(c.argv, "protocol");
      const list = rules()[fam(c.argv)];
      list.push(rule);
      list.sort((a, b) => Number(a.priority) - Number(b.priority));
      return {};
    })
    .on(/^ip -[46] rule del /, (c) => {
      const list = rules()[fam(c.argv)];
      const table = word(c.argv, "lookup");
      const i = list.findIndex(
        (r) =>
          r.priority === Number(word(c.argv, "priority")) &&
          r.fwmark === word(c.argv, "fwmark") &&
          r.src === (word(c.argv, "from") ?? "all") &&
          (r.uid_start === undefined ? undefined : `${r.uid_start}-${r.uid_end}`) === word(c.argv, "uidrange") &&
          (table === undefined || r.table === (table === "main" ? "254" : table)),
      );
      if (i < 0) return { exitCode: 2, stderr: "RTNETLINK answers: No such file or directory" };
      list.splice(i, 1);
      return {};
    });
}
