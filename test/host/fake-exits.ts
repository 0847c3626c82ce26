/**
 * A simulated host for several exits: any number of interfaces (kernel WireGuard), rules, one route
 * list per table, and the nft table, over a {@link FakeRunner}. The single-interface fakeHost
 * (fixtures.ts) keeps one route list for every table; changing the exits on a running host needs each
 * exit's table and interface kept apart, so that what is torn down and what is left are both visible.
 */
import { FakeRunner } from "../exec/fake.ts";
import type { SysctlAccess } from "../../lib/host/sysctl.ts";
import { HEALTHY_RULES, KEYS, dumpText, scriptRules, link, linkJson, nftJson, type LinkFixture } from "./fixtures.ts";

/** The state behind {@link fakeExitsHost}. */
export interface FakeExitsState {
  links: Map<string, LinkFixture>;
  rules: { 4: Record<string, unknown>[]; 6: Record<string, unknown>[] };
  /** `"<family>:<table>"` -> routes, as `ip -j route show table` prints them. */
  tables: Map<string, Record<string, unknown>[]>;
  /** The last script fed to `nft -f -`, or null when the table is absent. */
  nft: string | null;
  /** Interfaces whose creation fails (`ip link add` answers an error). */
  failCreate: Set<string>;
  /** The last `wg setconf` of each interface. */
  configs: Map<string, string>;
}

/** A fake runner, sysctl and key reader over one {@link FakeExitsState}. */
export function fakeExitsHost() {
  const state: FakeExitsState = {
    links: new Map(),
    rules: { 4: HEALTHY_RULES(4).filter((r) => r.protocol === undefined), 6: HEALTHY_RULES(6).filter((r) => r.protocol === undefined) },
    tables: new Map(),
    nft: null,
    failCreate: new Set(),
    configs: new Map(),
  };
  const runner = new FakeRunner();
  scriptRules(runner, () => state.rules);
  const fam = (argv: readonly string[]) => (argv[1] === "-6" || argv[2] === "-6" ? 6 : 4);
  const word = (argv: readonly string[], key: string) => {
    const i = argv.indexOf(key);
    return i < 0 ? undefined : argv[i + 1];
  };
  const table = (argv: readonly string[]) => {
    const key = `${fam(argv)}:${word(argv, "table")}`;
    if (!state.tables.has(key)) state.tables.set(key, []);
    return state.tables.get(key)!;
  };
  const dropRoutesVia = (dev: string) => {
    for (const list of state.tables.values()) for (let i = list.length - 1; i >= 0; i--) if (list[i]!.dev === dev) list.splice(i, 1);
  };
  const noLink = (name: string) => ({ exitCode: 1, stderr: `Cannot find device "${name}"` });
  const routeOf = (argv: readonly string[]) => {
    const unreachable = argv[4] === "unreachable";
    const dst = argv[unreachable ? 5 : 4]!;
    const route: Record<string, unknown> = unreachable ? { type: "unreachable", dst } : { dst };
    if (word(argv, "dev")) route.dev = word(argv, "dev");
    route.protocol = word(argv, "proto");
    route.metric = Number(word(argv, "metric"));
    route.flags = [];
    return route;
  };
  const sameRoute = (a: Record<string, unknown>, b: Record<string, unknown>) => a.dst === b.dst && (a.type === "unreachable") === (b.type === "unreachable") && Number(a.metric ?? 0) === Number(b.metric ?? 0);
  runner
    .on(/^ip -j -d addr show dev /, (c) => {
      const name = c.argv[6]!;
      const l = state.links.get(name);
      return l ? { stdout: linkJson(l, name) } : { exitCode: 1, stderr: `Device "${name}" does not exist.` };
    })
    .on("wg pubkey", { stdout: KEYS.gatewayPublic + "\n" })
    .on(/^wg setconf /, (c) => {
      const l = state.links.get(c.argv[2]!);
      if (!l) return noLink(c.argv[2]!);
      state.configs.set(c.argv[2]!, c.stdin ?? "");
      return {};
    })
    .on(/^wg show \S+ dump/, (c) => {
      const conf = state.configs.get(c.argv[2]!);
      if (!state.links.has(c.argv[2]!) || conf === undefined) return { exitCode: 1, stderr: "Unable to access interface: No such device" };
      // What the kernel would show for the configuration last set: the peer's key, endpoint and allowed IPs.
      const field = (k: string) => new RegExp(`^${k} = (.*)$`, "m").exec(conf)?.[1] ?? "";
      return { stdout: dumpText({ peer: field("PublicKey"), endpoint: field("Endpoint"), allowed: field("AllowedIPs").replace(/, /g, ",") }) };
    })
    .on("ip -j -N -4 rule show", () => ({ stdout: JSON.stringify(state.rules[4]) }))
    .on("ip -j -N -6 rule show", () => ({ stdout: JSON.stringify(state.rules[6]) }))
    .on(/^ip -j -[46] route show table/, (c) => {
      const list = state.tables.get(`${c.argv[2] === "-6" ? 6 : 4}:${c.argv[6]}`) ?? [];
      return list.length ? { stdout: JSON.stringify(list) } : { exitCode: 2, stderr: "Error: ipv4: FIB table does not exist.\nDump terminated" };
    })
    .on(/^ip -[46] route (add|replace) /, (c) => {
      const list = table(c.argv);
      const route = routeOf(c.argv);
      const i = list.findIndex((r) => sameRoute(r, route));
      if (i >= 0 && c.argv[3] === "add") return { exitCode: 2, stderr: "RTNETLINK answers: File exists" };
      if (i >= 0) list.splice(i, 1);
      list.push(route);
      return {};
    })
    .on(/^ip -[46] route del /, (c) => {
      const list = table(c.argv);
      const i = list.findIndex((r) => sameRoute(r, routeOf(c.argv)));
      if (i < 0) return { exitCode: 2, stderr: "RTNETLINK answers: No such process" };
      list.splice(i, 1);
      return {};
    })
    .on("nft -j list table inet egressd", () => (state.nft ? { stdout: nftJson() } : { exitCode: 1, stderr: "Error: No such file or directory\nlist table inet egressd" }))
    .on("nft list table inet egressd", () => (state.nft ? { stdout: "table inet egressd {\n}\n" } : { exitCode: 1, stderr: "Error: No such file or directory" }))
    .on("nft -j list counter inet egressd leak_guard", () => (state.nft ? { stdout: nftJson() } : { exitCode: 1, stderr: "Error: No such file or directory" }))
    .on("nft -f -", (c) => {
      state.nft = c.stdin;
      return {};
    })
    .on("nft delete table inet egressd", () => {
      if (!state.nft) return { exitCode: 1, stderr: "Error: Could not process rule: No such file or directory" };
      state.nft = null;
      return {};
    })
    .on(/^ip link add dev \S+ type wireguard/, (c) => {
      const name = c.argv[4]!;
      if (state.failCreate.has(name)) return { exitCode: 2, stderr: "RTNETLINK answers: Cannot allocate memory" };
      state.links.set(name, link({ kind: "wireguard", alias: null, addrs: [], up: false }));
      return {};
    })
    .on(/^ip link del dev /, (c) => {
      const name = c.argv[4]!;
      if (!state.links.delete(name)) return noLink(name);
      state.configs.delete(name);
      dropRoutesVia(name);
      return {};
    })
    .on(/^ip link set dev /, (c) => {
      const name = c.argv[4]!;
      const l = state.links.get(name);
      if (!l) return noLink(name);
      const what = c.argv[5];
      if (what === "alias") l.alias = c.argv[6]!;
      else if (what === "mtu") l.mtu = Number(c.argv[6]);
      else if (what === "up") l.up = true;
      else if (what === "down") l.up = false;
      return {};
    })
    .on(/^ip -[46] address (add|del) /, (c) => {
      const name = c.argv[6]!;
      const l = state.links.get(name);
      if (!l) return noLink(name);
      const [local, len] = c.argv[4]!.split("/");
      if (c.argv[3] === "add") l.addrs.push([local!, Number(len), fam(c.argv) === 4 ? "inet" : "inet6"]);
      else l.addrs = l.addrs.filter((a) => a[0] !== local);
      return {};
    });
  let srcValidMark = "0";
  const sysctl: SysctlAccess = {
    async read() {
      return srcValidMark;
    },
    async write(_key, value) {
      srcValidMark = value;
    },
  };
  const readSecret = async () => KEYS.gatewayPrivate + "\n";
  /** The host as plain data, for comparing before and after (the order of routes within a table is not state). */
  const snapshot = () => JSON.stringify({ links: [...state.links.entries()].sort(), rules: state.rules, tables: [...state.tables.entries()].filter(([, v]) => v.length > 0).map(([k, v]) => [k, v.map((r) => JSON.stringify(r)).sort()]).sort(), nft: state.nft });
  return { runner, state, sysctl, readSecret, snapshot };
}
