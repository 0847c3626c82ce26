/**
 * The interface host part: our WireGuard link, its addresses, MTU and state, and (through its
 * collaborators) the WireGuard configuration on it, the exit's endpoint and, without the kernel module,
 * the wireguard-go process behind it.
 *
 * - Creation tries `ip link add <if> type wireguard`. Without the module (`Unknown device type`) and with
 *   `implementation: "auto"`, it starts wireguard-go instead (wireguard-go.ts). Then alias, `wg setconf`
 *   (wireguard.ts), addresses, MTU, link up — the order wg-quick uses. A creation that fails halfway
 *   removes what it built before it throws.
 * - The link is marked as ours with its ifalias {@link IFALIAS}. A device with our name but without that
 *   alias is someone else's, and is never touched.
 * - Drift is read from `ip -j -d addr show dev <if>` and `wg show <if> dump`, in that order and once each
 *   per pass; the WireGuard configuration and the endpoint plan from that one dump. A missing link, a
 *   userspace link without our live child, or an unreadable dump is recreated.
 *
 * One instance per exit, built from that exit's spec (its own interface name). It does not route or
 * touch nftables (policy.ts, firewall.ts).
 */
import type { Runner } from "../exec/runner.ts";
import type { Logger } from "../log/logger.ts";
import type { Change } from "./change.ts";
import { runHost, runHostCommand } from "./command.ts";
import { EndpointTracker, type EndpointStatus, type Resolver } from "./endpoint.ts";
import { InterfaceConflictError, WireGuardUnavailableError, explainCommandError } from "./errors.ts";
import { driftOf, type Drift, type HostContext, type HostPart, type PlanMode } from "./part.ts";
import type { NormalizedSpec } from "./spec.ts";
import { WireGuardConfig } from "./wireguard.ts";
import { UserspaceSupervisor } from "./wireguard-go.ts";
import { readWgDump, type WgDump } from "./wgdump.ts";

/** The ifalias egressd sets on its interface: the ownership marker. */
export const IFALIAS = "egressd";

/** Which implementation runs an interface. */
export type ActiveImplementation = "kernel" | "userspace";

/** An address on the interface, from `ip -j addr`. */
export interface LinkAddress {
  readonly family: 4 | 6;
  readonly local: string;
  readonly prefixlen: number;
  readonly scope: string;
}

/** A link as read from `ip -j -d addr show dev <if>`. */
export interface LinkState {
  readonly ifname: string;
  /** `linkinfo.info_kind`: `wireguard` (kernel), `tun` (wireguard-go), `veth`, ... or null. */
  readonly kind: string | null;
  readonly alias: string | null;
  readonly mtu: number;
  /** Administratively up (`UP` flag). */
  readonly up: boolean;
  readonly addresses: readonly LinkAddress[];
}

/** Parses `ip -j -d addr show dev <if>` (first entry). Pure. */
export function parseLink(json: string): LinkState | null {
  const list = JSON.parse(json || "[]") as Record<string, unknown>[];
  const l = list[0];
  if (!l) return null;
  const info = l.linkinfo as { info_kind?: string } | undefined;
  const addrs = (l.addr_info as Record<string, unknown>[] | undefined) ?? [];
  return {
    ifname: String(l.ifname),
    kind: info?.info_kind ?? null,
    alias: typeof l.ifalias === "string" ? l.ifalias : null,
    mtu: Number(l.mtu),
    up: Array.isArray(l.flags) && l.flags.includes("UP"),
    addresses: addrs
      .filter((a) => a.family === "inet" || a.family === "inet6")
      .map((a) => ({ family: a.family === "inet" ? 4 : 6, local: String(a.local), prefixlen: Number(a.prefixlen), scope: String(a.scope ?? "global") })),
  };
}

/** Reads the link; null when no device has that name. */
export async function observeLink(runner: Runner, ifname: string): Promise<LinkState | null> {
  const r = await runHost(runner, ["ip", "-j", "-d", "addr", "show", "dev", ifname], { tolerate: ["linkGone"] });
  return r.ok ? parseLink(r.stdout) : null;
}

/** True when egressd created this link: our alias, and a WireGuard-capable kind. */
export function isOurs(link: LinkState): boolean {
  return link.alias === IFALIAS && (link.kind === "wireguard" || link.kind === "tun");
}

/** The implementation behind a link of ours. */
export function implementationOf(link: LinkState): ActiveImplementation | null {
  return link.kind === "wireguard" ? "kernel" : link.kind === "tun" ? "userspace" : null;
}


/** Knobs of {@link InterfacePart}; every one is optional. */
export interface InterfaceOptions {
  /** Resolves the exit's DNS name. Default: the system resolver. */
  resolve?: Resolver;
  /** Reads a key file. Default: `fs.readFile(path, "utf8")`. */
  readSecret?: (path: string) => Promise<string>;
  /** Minimum time between two re-resolutions of a DNS endpoint, ms. Default 30000. */
  reresolveIntervalMs?: number;
  /** How long wireguard-go may take to come up, ms. Default 5000. */
  startTimeoutMs?: number;
  /** Start wireguard-go via `setpriv --pdeathsig TERM`. Default true. */
  parentDeathSignal?: boolean;
  /** Part name. Default `interface`. */
  name?: string;
  /** With several exits: the exit it belongs to (tags its changes). Default: none. */
  exit?: string;
}

/** What {@link InterfacePart.status} reports. */
export interface InterfaceStatus extends EndpointStatus {
  /** Which implementation created the interface, or null before creation. */
  readonly implementation: ActiveImplementation | null;
  /** wireguard-go's pid while it runs; null for the kernel implementation. */
  readonly pid: number | null;
}

/** See the module comment. */
export class InterfacePart implements HostPart {
  readonly name: string;
  readonly exit?: string;
  readonly steps = { add: "addInterface", remove: "removeInterface" } as const;
  readonly #n: NormalizedSpec;
  readonly #ctx: HostContext;
  readonly #log: Logger;
  readonly #wg: WireGuardConfig;
  readonly #endpoint: EndpointTracker;
  readonly #userspace: UserspaceSupervisor;
  #implementation: ActiveImplementation | null = null;
  #kernelUnsupported = false;

  /** `exit` is this part's spec: its interface and its one exit peer. */
  constructor(exit: NormalizedSpec, ctx: HostContext, opts: InterfaceOptions = {}) {
    this.#n = exit;
    this.#ctx = ctx;
    this.#log = ctx.log;
    this.name = opts.name ?? "interface";
    if (opts.exit !== undefined) this.exit = opts.exit;
    this.#endpoint = new EndpointTracker({
      ifname: exit.ifname,
      publicKey: exit.spec.exit.publicKey,
      configured: exit.spec.exit.endpoint,
      endpoint: exit.endpoint,
      resolve: opts.resolve,
      log: ctx.log,
      now: ctx.now,
      reresolveIntervalMs: opts.reresolveIntervalMs,
    });
    this.#wg = new WireGuardConfig(exit, { runner: ctx.runner, readSecret: opts.readSecret, endpoint: () => this.#endpoint.current });
    this.#userspace = new UserspaceSupervisor({
      ifname: exit.ifname,
      implementation: exit.spec.interface.implementation,
      runner: ctx.runner,
      log: ctx.log,
      now: ctx.now,
      startTimeoutMs: opts.startTimeoutMs,
      parentDeathSignal: opts.parentDeathSignal,
    });
  }

  /** Implementation, pid and endpoint resolution state. Runs no command. */
  status(): InterfaceStatus {
    return { implementation: this.#implementation, pid: this.#userspace.pid, ...this.#endpoint.status() };
  }

  /** `wg show <if> dump`, parsed; null when the interface does not exist. */
  dump(): Promise<WgDump | null> {
    return readWgDump(this.#ctx.runner, this.#n.ifname);
  }

  /** Reads the link; null when it does not exist. */
  link(): Promise<LinkState | null> {
    return observeLink(this.#ctx.runner, this.#n.ifname);
  }

  /**
   * Plans the interface changes. `up` replaces a stale interface of ours left by a crashed run instead of
   * adopting it. A device with our name that is not ours throws {@link InterfaceConflictError}.
   */
  async plan(mode: PlanMode): Promise<Change[]> {
    return this.#plan(mode, true);
  }

  /** Removes the interface if it is ours and stops wireguard-go. Already gone is success. */
  remove(): Promise<void> {
    return this.#remove(this.#ctx.runner);
  }

  /** What a reconcile pass would repair, without re-resolving the endpoint. */
  async observe(): Promise<Drift[]> {
    return driftOf(await this.#plan("reconcile", false));
  }

  async #plan(mode: PlanMode, resolve: boolean): Promise<Change[]> {
    const ifname = this.#n.ifname;
    const link = await observeLink(this.#ctx.runner, ifname);
    if (link === null) return [this.#createChange("create-interface", `interface ${ifname} is missing`)];
    if (!isOurs(link)) throw new InterfaceConflictError(ifname, link.kind, link.alias);
    if (mode === "up") return [this.#createChange("replace-stale-interface", `interface ${ifname} was left by an earlier run`)];

    const impl = implementationOf(link);
    if (impl === "userspace" && !this.#userspace.running) {
      return [this.#createChange("recreate-interface", `wireguard-go for ${ifname} is not running as our child`)];
    }
    const dump = await readWgDump(this.#ctx.runner, ifname);
    if (dump === null) return [this.#createChange("recreate-interface", `WireGuard state of ${ifname} is unreadable`)];
    this.#implementation = impl;

    // A setconf sets the endpoint too, so the endpoint is only planned on its own when nothing else drifted.
    const changes = await this.#wg.plan(dump);
    if (changes.length === 0) {
      const peer = dump.peers.find((p) => p.publicKey === this.#n.spec.exit.publicKey);
      if (peer) changes.push(...(resolve ? await this.#endpoint.plan(peer) : this.#endpoint.observe(peer)));
    }
    changes.push(...planLinkAttributes(this.#n, link));
    return changes;
  }

  async #remove(runner: Runner): Promise<void> {
    const ifname = this.#n.ifname;
    // Detach first: from here on its exit (and its complaints about the vanishing device) are expected.
    const stopped = this.#userspace.detach();
    const link = await observeLink(runner, ifname);
    if (link !== null && !isOurs(link)) {
      this.#log.warn("not removing an interface that is not ours", { ifname, kind: link.kind, alias: link.alias });
    } else if (link !== null) {
      await runHostCommand(runner, ["ip", "link", "del", "dev", ifname], { tolerate: ["linkGone"] });
    }
    await stopped();
    this.#implementation = null;
  }

  #createChange(action: string, reason: string): Change {
    return {
      component: "interface",
      action,
      reason,
      apply: async (run) => {
        if (action !== "create-interface") await this.#remove(run);
        await this.#create(run);
      },
      undo: (run) => this.#remove(run),
    };
  }

  async #create(run: Runner): Promise<void> {
    const n = this.#n;
    const ifname = n.ifname;
    await this.#wg.ownPublicKey();
    await this.#endpoint.ensureResolved();
    try {
      this.#implementation = await this.#addLink(run);
      await run.run(["ip", "link", "set", "dev", ifname, "alias", IFALIAS]);
      await this.#wg.setconf(run);
      for (const a of n.addresses) await run.run(["ip", `-${a.family}`, "address", "add", a.cidr, "dev", ifname]);
      await run.run(["ip", "link", "set", "dev", ifname, "mtu", String(n.spec.interface.mtu)]);
      await run.run(["ip", "link", "set", "dev", ifname, "up"]);
      this.#log.info("WireGuard interface created", { ifname, implementation: this.#implementation, pid: this.#userspace.pid ?? undefined });
    } catch (err) {
      // Leave nothing half-built: the caller's rollback only undoes changes that completed.
      await this.#remove(run).catch((cleanupErr: unknown) =>
        this.#log.error("could not remove half-created interface", { ifname, error: String(cleanupErr) }),
      );
      throw explainCommandError(err);
    }
  }

  async #addLink(run: Runner): Promise<ActiveImplementation> {
    const wanted = this.#n.spec.interface.implementation;
    if (wanted !== "userspace" && !this.#kernelUnsupported) {
      // EPERM comes back as MissingCapabilityError; only a missing module falls through to wireguard-go.
      const r = await runHost(run, ["ip", "link", "add", "dev", this.#n.ifname, "type", "wireguard"], { tolerate: ["noKernelWireguard"] });
      if (r.ok) return "kernel";
      if (wanted === "kernel") {
        throw new WireGuardUnavailableError("kernel", "the kernel has no WireGuard module (ip link: Unknown device type); set interface.implementation to auto or userspace", { cause: r.error });
      }
      this.#kernelUnsupported = true;
      this.#log.info("kernel WireGuard unavailable; using wireguard-go", { ifname: this.#n.ifname });
    }
    await this.#userspace.start(run);
    return "userspace";
  }
}

/** Plans the addresses, MTU and up state of a link of ours to match the spec. Pure. */
export function planLinkAttributes(n: NormalizedSpec, link: LinkState): Change[] {
  const ifname = n.ifname;
  const changes: Change[] = [];
  const run = (argv: string[]) => (r: Runner) => runHostCommand(r, argv);
  const want = n.addresses;
  const global = link.addresses.filter((a) => a.scope !== "link" && a.scope !== "host");
  for (const a of want) {
    if (!global.some((g) => g.family === a.family && g.local === a.local && g.prefixlen === a.prefixlen)) {
      const add = ["ip", `-${a.family}`, "address", "add", a.cidr, "dev", ifname];
      const del = ["ip", `-${a.family}`, "address", "del", a.cidr, "dev", ifname];
      changes.push({ component: "interface", action: "add-address", reason: `address ${a.cidr} is missing on ${ifname}`, apply: run(add), undo: run(del) });
    }
  }
  for (const g of global) {
    if (!want.some((a) => g.family === a.family && g.local === a.local && g.prefixlen === a.prefixlen)) {
      const cidr = `${g.local}/${g.prefixlen}`;
      const add = ["ip", `-${g.family}`, "address", "add", cidr, "dev", ifname];
      const del = ["ip", `-${g.family}`, "address", "del", cidr, "dev", ifname];
      changes.push({ component: "interface", action: "delete-address", reason: `unexpected address ${cidr} on ${ifname}`, apply: run(del), undo: run(add) });
    }
  }
  const mtu = n.spec.interface.mtu;
  if (link.mtu !== mtu) {
    const old = link.mtu;
    changes.push({
      component: "interface",
      action: "set-mtu",
      reason: `MTU ${old}, want ${mtu}`,
      apply: run(["ip", "link", "set", "dev", ifname, "mtu", String(mtu)]),
      undo: run(["ip", "link", "set", "dev", ifname, "mtu", String(old)]),
    });
  }
  if (!link.up) {
    changes.push({
      component: "interface",
      action: "set-link-up",
      reason: `${ifname} is down`,
      apply: run(["ip", "link", "set", "dev", ifname, "up"]),
      undo: run(["ip", "link", "set", "dev", ifname, "down"]),
    });
  }
  return changes;
}
