/**
 * The lab topology as plain data: namespace and interface names, addresses, and the argv steps that
 * build it. Pure, so tests, the lab runtime (lab.ts) and `egressd demo` share one definition.
 *
 * ```
 *  client                gw (the home gateway)            inet (ISP router + "internet" host)        exit (VPS)
 *  lan 10.1.0.2/24 ── lan 10.1.0.1/24
 *                        wan 192.0.2.2/24 ────────────── gw 192.0.2.1/24
 *                            2001:db8:1::2/64                2001:db8:1::1/64
 *                                                          lo 203.0.113.10, 2001:db8:3::10   exit 198.51.100.1/24 ── wan 198.51.100.2/24
 *                                                          lo 203.0.113.11, 2001:db8:3::11 (silent)
 *                                                                                             2001:db8:2::1/64        2001:db8:2::2/64
 *                        <wg gateway> 10.100.0.2/32, fd00::2/128  ═══ WireGuard ═══  <wg exit> 10.100.0.1/24, fd00::1/64
 *                                                                                    masquerade out of wan
 * ```
 * With `exits: 2` a second VPS namespace `exit2` hangs off inet too (wan 203.0.113.130/25, 2001:db8:4::2/64,
 * tunnel 10.100.1.1/24 and fd00:1::1/64 to the gateway's 10.100.1.2/32 and fd00:1::2/128): through it, a
 * process shows up as 203.0.113.130. With `exits: 3` a third, `exit3`, as well (wan 203.0.113.66/26,
 * 2001:db8:5::2/64, tunnel 10.100.2.1/24 and fd00:2::1/64 to the gateway's 10.100.2.2/32 and
 * fd00:2::2/128): through it, a process shows up as 203.0.113.66.
 *
 * The silent host (203.0.113.11, 2001:db8:3::11) is an address of inet whose every packet inet's
 * `lab_silent` table drops, with no ICMP and no RST: a connection to it neither succeeds nor fails
 * until the connecting side gives up, as with a host behind a firewall that drops. An unused address
 * would not do: inet answers it with "host unreachable" at once.
 *
 * A process on gw reaching 203.0.113.10 directly shows up there as 192.0.2.2 (the "home" address);
 * through the tunnel it shows up as 198.51.100.2 (the exit's address). Only documentation ranges and
 * 10.x are used, and only inside the lab's own namespaces.
 *
 * Names carry the creating pid, so parallel runs never collide and a later run can tell a stale lab
 * (its pid is gone) from a live one. WireGuard interface names are unique too, because wireguard-go's
 * control sockets (/var/run/wireguard/<if>.sock) are shared by all namespaces.
 */

/** The four namespaces. */
export interface LabNamespaces {
  readonly client: string;
  readonly gw: string;
  readonly exit: string;
  readonly inet: string;
  /** The second VPS, with `exits: 2` or 3 only. */
  readonly exit2?: string;
  /** The third VPS, with `exits: 3` only. */
  readonly exit3?: string;
}

/** Every address in the lab. */
export const LAB_ADDRESSES = {
  clientLan: "10.1.0.2",
  gwLan: "10.1.0.1",
  lanPrefix: "10.1.0.0/24",
  gwWan4: "192.0.2.2",
  gwWan6: "2001:db8:1::2",
  inetGw4: "192.0.2.1",
  inetGw6: "2001:db8:1::1",
  exitWan4: "198.51.100.2",
  exitWan6: "2001:db8:2::2",
  inetExit4: "198.51.100.1",
  inetExit6: "2001:db8:2::1",
  /** The "internet" host: where test servers listen. */
  host4: "203.0.113.10",
  host6: "2001:db8:3::10",
  /** The silent host: packets to it are dropped, so connecting to it times out. */
  silent4: "203.0.113.11",
  silent6: "2001:db8:3::11",
  tunnelGw4: "10.100.0.2/32",
  tunnelGw6: "fd00::2/128",
  tunnelExit4: "10.100.0.1/24",
  tunnelExit6: "fd00::1/64",
  /** The second exit (`exits: 2`): its public addresses and both ends of its tunnel. */
  exit2Wan4: "203.0.113.130",
  exit2Wan6: "2001:db8:4::2",
  inetExit2_4: "203.0.113.129",
  inetExit2_6: "2001:db8:4::1",
  tunnel2Gw4: "10.100.1.2/32",
  tunnel2Gw6: "fd00:1::2/128",
  tunnel2Exit4: "10.100.1.1/24",
  tunnel2Exit6: "fd00:1::1/64",
  /** The third exit (`exits: 3`). */
  exit3Wan4: "203.0.113.66",
  exit3Wan6: "2001:db8:5::2",
  inetExit3_4: "203.0.113.65",
  inetExit3_6: "2001:db8:5::1",
  tunnel3Gw4: "10.100.2.2/32",
  tunnel3Gw6: "fd00:2::2/128",
  tunnel3Exit4: "10.100.2.1/24",
  tunnel3Exit6: "fd00:2::1/64",
} as const;

/** Interface names inside the namespaces (veths) and the two WireGuard interfaces. */
export interface LabInterfaces {
  /** gw's LAN veth (peer `lan` in client). */
  readonly gwLan: "lan";
  /** gw's WAN veth (peer `gw` in inet): where captures of "the gateway's WAN side" run. */
  readonly gwWan: "wan";
  /** The gateway's WireGuard interface name, for the HostSpec: unique per lab. */
  readonly gatewayWg: string;
  /** The exit's WireGuard interface (run by the lab with wireguard-go). */
  readonly exitWg: string;
  /** With `exits: 2`: the gateway's second WireGuard interface name and the second exit's. */
  readonly gatewayWg2: string;
  readonly exit2Wg: string;
  /** With `exits: 3`: the gateway's third WireGuard interface name and the third exit's. */
  readonly gatewayWg3: string;
  readonly exit3Wg: string;
}

/** One build step. */
export interface LabStep {
  readonly name: string;
  readonly argv: readonly string[];
  /** stdin for the step (the exit's nft script). */
  readonly stdin?: string;
}

/** The whole plan. */
export interface LabPlan {
  /** `<prefix>-<pid>-<seq>`: every namespace name starts with it. */
  readonly id: string;
  readonly ns: LabNamespaces;
  readonly ifs: LabInterfaces;
  readonly steps: readonly LabStep[];
  /** Every veth end as `[namespace, device]`; the lab waits for their IPv6 link-local addresses. */
  readonly veths: readonly (readonly [string, string])[];
  /** The exit's WireGuard UDP port. */
  readonly exitPort: number;
  /** A DNS name for the exit that the lab writes into gw's /etc/netns hosts file. */
  readonly exitHostName: string;
}

/** Options for {@link planLab}. */
export interface PlanOptions {
  /** Namespace name prefix. Default `egt`. */
  prefix?: string;
  /** Pid recorded in names. Default `process.pid`. */
  pid?: number;
  /** Distinguishes labs of one process. Default 0. */
  seq?: number;
  /** Exit listen port. Default 51820. */
  exitPort?: number;
  /**
   * Masquerade the client's LAN out of gw's WAN, as a home router does, so the client can reach the
   * internet host directly (it then shows up as the home address, 192.0.2.2). Default false.
   */
  homeNat?: boolean;
  /**
   * Masquerade everything leaving the exit's WAN. Default true. The lab turns it off when the exit
   * is configured from `egressd exit-config`, whose nft rules masquerade the tunnel's traffic.
   */
  exitMasquerade?: boolean;
  /** 2 adds a second VPS namespace (see the module comment), 3 a third as well; they always masquerade. Default 1. */
  exits?: 1 | 2 | 3;
}

/** Plans a lab. Pure. */
export function planLab(opts: PlanOptions = {}): LabPlan {
  const prefix = opts.prefix ?? "egt";
  const pid = opts.pid ?? process.pid;
  const seq = opts.seq ?? 0;
  const id = `${prefix}-${pid}-${seq}`;
  const two = (opts.exits ?? 1) >= 2;
  const three = opts.exits === 3;
  const ns: LabNamespaces = {
    client: `${id}-client`, gw: `${id}-gw`, exit: `${id}-exit`, inet: `${id}-inet`,
    ...(two ? { exit2: `${id}-exit2` } : {}),
    ...(three ? { exit3: `${id}-exit3` } : {}),
  };
  const token = `${pid.toString(36)}-${seq.toString(36)}`; // the dash keeps (pid, seq) pairs from colliding
  const ifs: LabInterfaces = { gwLan: "lan", gwWan: "wan", gatewayWg: `eg${token}g`, exitWg: `eg${token}x`, gatewayWg2: `eg${token}h`, exit2Wg: `eg${token}y`, gatewayWg3: `eg${token}i`, exit3Wg: `eg${token}z` };
  const a = LAB_ADDRESSES;
  const exitPort = opts.exitPort ?? 51820;
  const steps: LabStep[] = [];
  const step = (name: string, ...argv: string[]) => steps.push({ name, argv });
  const inNs = (n: string, ...argv: string[]) => ["ip", "netns", "exec", n, ...argv];

  for (const n of Object.values(ns)) step(`create ${n}`, "ip", "netns", "add", n);
  // No duplicate address detection: addresses are usable at once, and the host state a test snapshots
  // does not change under it when link-local addresses finish DAD a second later.
  for (const n of Object.values(ns)) {
    steps.push({ name: `no DAD in ${n}`, argv: inNs(n, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0") });
  }
  for (const n of Object.values(ns)) step(`lo up in ${n}`, "ip", "-n", n, "link", "set", "lo", "up");

  step("veth client<->gw", "ip", "-n", ns.gw, "link", "add", "lan", "type", "veth", "peer", "name", "lan", "netns", ns.client);
  step("veth gw<->inet", "ip", "-n", ns.gw, "link", "add", "wan", "type", "veth", "peer", "name", "gw", "netns", ns.inet);
  step("veth exit<->inet", "ip", "-n", ns.exit, "link", "add", "wan", "type", "veth", "peer", "name", "exit", "netns", ns.inet);
  if (ns.exit2) step("veth exit2<->inet", "ip", "-n", ns.exit2, "link", "add", "wan", "type", "veth", "peer", "name", "exit2", "netns", ns.inet);
  if (ns.exit3) step("veth exit3<->inet", "ip", "-n", ns.exit3, "link", "add", "wan", "type", "veth", "peer", "name", "exit3", "netns", ns.inet);

  const addr = (n: string, dev: string, cidr: string) =>
    step(`address ${cidr} on ${n}/${dev}`, "ip", "-n", n, "address", "add", cidr, "dev", dev, ...(cidr.includes(":") ? ["nodad"] : []));
  addr(ns.client, "lan", `${a.clientLan}/24`);
  addr(ns.gw, "lan", `${a.gwLan}/24`);
  addr(ns.gw, "wan", `${a.gwWan4}/24`);
  addr(ns.gw, "wan", `${a.gwWan6}/64`);
  addr(ns.inet, "gw", `${a.inetGw4}/24`);
  addr(ns.inet, "gw", `${a.inetGw6}/64`);
  addr(ns.inet, "exit", `${a.inetExit4}/24`);
  addr(ns.inet, "exit", `${a.inetExit6}/64`);
  addr(ns.inet, "lo", `${a.host4}/32`);
  addr(ns.inet, "lo", `${a.host6}/128`);
  addr(ns.inet, "lo", `${a.silent4}/32`);
  addr(ns.inet, "lo", `${a.silent6}/128`);
  addr(ns.exit, "wan", `${a.exitWan4}/24`);
  addr(ns.exit, "wan", `${a.exitWan6}/64`);
  if (ns.exit2) {
    addr(ns.inet, "exit2", `${a.inetExit2_4}/25`);
    addr(ns.inet, "exit2", `${a.inetExit2_6}/64`);
    addr(ns.exit2, "wan", `${a.exit2Wan4}/25`);
    addr(ns.exit2, "wan", `${a.exit2Wan6}/64`);
  }
  if (ns.exit3) {
    addr(ns.inet, "exit3", `${a.inetExit3_4}/26`);
    addr(ns.inet, "exit3", `${a.inetExit3_6}/64`);
    addr(ns.exit3, "wan", `${a.exit3Wan4}/26`);
    addr(ns.exit3, "wan", `${a.exit3Wan6}/64`);
  }

  const veths: (readonly [string, string])[] = [[ns.client, "lan"], [ns.gw, "lan"], [ns.gw, "wan"], [ns.inet, "gw"], [ns.inet, "exit"], [ns.exit, "wan"]];
  if (ns.exit2) veths.push([ns.inet, "exit2"], [ns.exit2, "wan"]);
  if (ns.exit3) veths.push([ns.inet, "exit3"], [ns.exit3, "wan"]);
  for (const [n, dev] of veths) {
    step(`${dev} up in ${n}`, "ip", "-n", n, "link", "set", dev, "up");
  }

  step("client default route", "ip", "-n", ns.client, "route", "add", "default", "via", a.gwLan);
  step("gw default route v4", "ip", "-n", ns.gw, "route", "add", "default", "via", a.inetGw4);
  step("gw default route v6", "ip", "-n", ns.gw, "-6", "route", "add", "default", "via", a.inetGw6);
  step("exit default route v4", "ip", "-n", ns.exit, "route", "add", "default", "via", a.inetExit4);
  step("exit default route v6", "ip", "-n", ns.exit, "-6", "route", "add", "default", "via", a.inetExit6);
  if (ns.exit2) {
    step("exit2 default route v4", "ip", "-n", ns.exit2, "route", "add", "default", "via", a.inetExit2_4);
    step("exit2 default route v6", "ip", "-n", ns.exit2, "-6", "route", "add", "default", "via", a.inetExit2_6);
  }
  if (ns.exit3) {
    step("exit3 default route v4", "ip", "-n", ns.exit3, "route", "add", "default", "via", a.inetExit3_4);
    step("exit3 default route v6", "ip", "-n", ns.exit3, "-6", "route", "add", "default", "via", a.inetExit3_6);
  }

  const extra = [ns.exit2, ns.exit3].filter((n): n is string => n !== undefined);
  for (const n of [ns.inet, ns.exit, ns.gw, ...extra]) {
    steps.push({ name: `forwarding in ${n}`, argv: inNs(n, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1") });
  }
  steps.push({
    name: "silent host",
    argv: inNs(ns.inet, "nft", "-f", "-"),
    stdin: `table inet lab_silent {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip daddr ${a.silent4} drop\n\t\tip6 daddr ${a.silent6} drop\n\t}\n}\n`,
  });
  for (const n of [ns.exit, ...extra]) {
    if (n === ns.exit && !(opts.exitMasquerade ?? true)) continue;
    steps.push({
      name: n === ns.exit ? "exit masquerade" : n === ns.exit2 ? "exit2 masquerade" : "exit3 masquerade",
      argv: inNs(n, "nft", "-f", "-"),
      stdin: `table inet lab_exit {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\toifname "wan" masquerade\n\t}\n}\n`,
    });
  }
  if (opts.homeNat) {
    steps.push({
      name: "home NAT",
      argv: inNs(ns.gw, "nft", "-f", "-"),
      stdin: `table inet lab_home {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr ${a.lanPrefix} oifname "wan" masquerade\n\t}\n}\n`,
    });
  }
  return { id, ns, ifs, steps, veths, exitPort, exitHostName: "exit.lab.test" };
}
