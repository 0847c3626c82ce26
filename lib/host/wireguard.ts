/**
 * The WireGuard interface: create it (kernel module, else wireguard-go), configure it, keep it matching
 * the spec, and remove it.
 *
 * - Creation tries `ip link add <if> type wireguard`. Without the module (`Unknown device type`) and with
 *   `implementation: "auto"`, it starts `wireguard-go -f <if>` as a child of the daemon instead.
 * - The interface is marked as ours with its ifalias {@link IFALIAS}. A device with our name but without
 *   that alias is someone else's, and is never touched.
 * - Configuration is one `wg setconf <if> /dev/stdin`, keys on stdin (never argv): private key, the
 *   socket's own fwmark (trap 4), the exit peer (public key, optional PSK, endpoint, allowed IPs,
 *   keepalive). Then addresses, MTU, link up — the order wg-quick uses.
 * - Drift is read from `wg show <if> dump` and `ip -j -d addr show dev <if>`. A changed endpoint is put
 *   back with `wg set ... peer ... endpoint`, which keeps the session; other WireGuard drift is repaired
 *   with `setconf` (a fresh handshake follows).
 *
 * wireguard-go ownership: it runs in the foreground as our child, so its pid is known and `down()` stops
 * it. It is started through `setpriv --pdeathsig TERM`, so it dies with the daemon instead of holding a
 * tunnel nobody manages; systemd's control-group kill covers the rest. It shares the daemon's uid, which
 * is why its socket must carry `wireguardFwmark` and nftables marks only `meta mark 0` packets (trap 4).
 * Its control socket lives in /var/run/wireguard/<if>.sock, which must be writable by the daemon's user.
 *
 * It does not do policy routing or nftables (routing.ts, nftables.ts).
 */
import { readFile } from "node:fs/promises";
import type { ChildHandle, Runner } from "../exec/runner.ts";
import { CommandError, MissingToolError } from "../exec/errors.ts";
import { formatCidr } from "../net/ip.ts";
import { silentLogger, type Logger } from "../log/logger.ts";
import type { Change } from "./change.ts";
import { canonicalEndpoint, formatEndpoint, isHandshakeStale, systemResolver, type Resolver } from "./endpoint.ts";
import {
  InterfaceConflictError,
  KeyFileError,
  MissingCapabilityError,
  WireGuardStartError,
  WireGuardUnavailableError,
  explainCommandError,
  isPermissionDenied,
} from "./errors.ts";
import { formatMark, type NormalizedSpec } from "./spec.ts";
import { readWgDump, type WgDump, type WgPeerDump } from "./wgdump.ts";

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
  try {
    const { stdout } = await runner.run(["ip", "-j", "-d", "addr", "show", "dev", ifname]);
    return parseLink(stdout);
  } catch (err) {
    if (err instanceof CommandError && /does not exist|Cannot find device/.test(err.stderr)) return null;
    throw explainCommandError(err);
  }
}

/** True when egressd created this link: our alias, and a WireGuard-capable kind. */
export function isOurs(link: LinkState): boolean {
  return link.alias === IFALIAS && (link.kind === "wireguard" || link.kind === "tun");
}

/** The implementation behind a link of ours. */
export function implementationOf(link: LinkState): ActiveImplementation | null {
  return link.kind === "wireguard" ? "kernel" : link.kind === "tun" ? "userspace" : null;
}

/** What `wg setconf` is given. */
export interface WgConfig {
  readonly privateKey: string;
  readonly listenPort: number | null;
  readonly fwmark: number;
  readonly peer: {
    readonly publicKey: string;
    readonly presharedKey: string | null;
    /** `ip:port`, or null while the name does not resolve. */
    readonly endpoint: string | null;
    readonly allowedIps: readonly string[];
    /** Seconds; 0 is off. */
    readonly persistentKeepalive: number;
  };
}

/** Renders a wg(8) configuration for `wg setconf`. Pure. Contains secrets: stdin only. */
export function renderWgConfig(c: WgConfig): string {
  const lines = ["[Interface]", `PrivateKey = ${c.privateKey}`];
  if (c.listenPort !== null) lines.push(`ListenPort = ${c.listenPort}`);
  lines.push(`FwMark = ${formatMark(c.fwmark)}`, "", "[Peer]", `PublicKey = ${c.peer.publicKey}`);
  if (c.peer.presharedKey !== null) lines.push(`PresharedKey = ${c.peer.presharedKey}`);
  if (c.peer.endpoint !== null) lines.push(`Endpoint = ${c.peer.endpoint}`);
  lines.push(`AllowedIPs = ${c.peer.allowedIps.join(", ")}`);
  if (c.peer.persistentKeepalive > 0) lines.push(`PersistentKeepalive = ${c.peer.persistentKeepalive}`);
  return lines.join("\n") + "\n";
}

/**
 * Lists how the WireGuard state differs from the spec, endpoint aside (see {@link WireGuardInterface}).
 * Pure. An empty list means no `setconf` is needed.
 */
export function wgConfigDrift(n: NormalizedSpec, ownPublicKey: string, dump: WgDump): string[] {
  const out: string[] = [];
  const want = n.spec;
  if (dump.interface.publicKey !== ownPublicKey) out.push("interface private key differs from interface.privateKeyFile");
  if (want.interface.listenPort !== null && dump.interface.listenPort !== want.interface.listenPort) {
    out.push(`listen port ${dump.interface.listenPort}, want ${want.interface.listenPort}`);
  }
  if (dump.interface.fwmark !== want.routing.wireguardFwmark) {
    out.push(`socket fwmark ${dump.interface.fwmark === null ? "off" : formatMark(dump.interface.fwmark)}, want ${formatMark(want.routing.wireguardFwmark)}`);
  }
  const others = dump.peers.filter((p) => p.publicKey !== want.exit.publicKey);
  if (others.length > 0) out.push(`${others.length} unknown peer(s)`);
  const peer = dump.peers.find((p) => p.publicKey === want.exit.publicKey);
  if (!peer) {
    out.push("exit peer is missing");
    return out;
  }
  const wantIps = n.allowedIps.map(formatCidr).sort();
  const haveIps = [...peer.allowedIps].sort();
  if (wantIps.join(",") !== haveIps.join(",")) out.push(`allowed IPs ${haveIps.join(",") || "(none)"}, want ${wantIps.join(",")}`);
  const keepalive = peer.persistentKeepalive ?? 0;
  if (keepalive !== want.exit.persistentKeepalive) out.push(`persistent keepalive ${keepalive}, want ${want.exit.persistentKeepalive}`);
  if (peer.hasPresharedKey !== (want.exit.presharedKeyFile !== null)) out.push(peer.hasPresharedKey ? "unexpected preshared key" : "preshared key is missing");
  return out;
}

/** Dependencies and knobs of {@link WireGuardInterface}. */
export interface WireGuardOptions {
  /** Default: must be given by the manager. */
  runner: Runner;
  /** Default {@link silentLogger}. */
  log?: Logger;
  /** Default {@link systemResolver}. */
  resolve?: Resolver;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Reads a key file. Default: `fs.readFile(path, "utf8")`. */
  readSecret?: (path: string) => Promise<string>;
  /** Minimum time between two re-resolutions of a DNS endpoint, ms. Default 30000. */
  reresolveIntervalMs?: number;
  /** How long wireguard-go may take to create its interface and socket, ms. Default 5000. */
  startTimeoutMs?: number;
  /** Start wireguard-go via `setpriv --pdeathsig TERM` so it dies with the daemon. Default true. */
  parentDeathSignal?: boolean;
}

/** What {@link WireGuardInterface.status} reports. */
export interface WireGuardStatus {
  /** Which implementation created the interface, or null before creation. */
  readonly implementation: ActiveImplementation | null;
  /** wireguard-go's pid while it runs; null for the kernel implementation. */
  readonly pid: number | null;
  /** Endpoints the configured one currently resolves to, `ip:port`. */
  readonly resolvedEndpoints: readonly string[];
  /** Why the last resolution failed, or null. */
  readonly resolveError: string | null;
  /** Successful re-resolutions of a DNS endpoint because the handshake was stale (not counting the first). */
  readonly endpointReresolutions: number;
}

const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** The interface, the WireGuard configuration on it, and the exit's endpoint. Used by the host manager. */
export class WireGuardInterface {
  readonly #n: NormalizedSpec;
  readonly #runner: Runner;
  readonly #log: Logger;
  readonly #resolve: Resolver;
  readonly #now: () => number;
  readonly #readSecret: (path: string) => Promise<string>;
  readonly #reresolveMs: number;
  readonly #startTimeoutMs: number;
  readonly #pdeathsig: boolean;

  #implementation: ActiveImplementation | null = null;
  #kernelUnsupported = false;
  #userspaceChecked = false;
  /** Children being stopped on purpose: their exit is not news. */
  #stopping = new WeakSet<ChildHandle>();
  #child: ChildHandle | null = null;
  #publicKey: string | null = null;
  #endpoints: string[] = [];
  #lastResolveAt = -Infinity;
  #resolveError: string | null = null;
  #reresolutions = 0;

  constructor(n: NormalizedSpec, opts: WireGuardOptions) {
    this.#n = n;
    this.#runner = opts.runner;
    this.#log = opts.log ?? silentLogger;
    this.#resolve = opts.resolve ?? systemResolver;
    this.#now = opts.now ?? Date.now;
    this.#readSecret = opts.readSecret ?? ((p) => readFile(p, "utf8"));
    this.#reresolveMs = opts.reresolveIntervalMs ?? 30_000;
    this.#startTimeoutMs = opts.startTimeoutMs ?? 5000;
    this.#pdeathsig = opts.parentDeathSignal ?? true;
  }

  /** Implementation, pid and endpoint resolution state. */
  status(): WireGuardStatus {
    return {
      implementation: this.#implementation,
      pid: this.#child && this.#child.exitStatus === null ? this.#child.pid : null,
      resolvedEndpoints: [...this.#endpoints],
      resolveError: this.#resolveError,
      endpointReresolutions: this.#reresolutions,
    };
  }

  /** Reads the interface's dump (for observation and metrics); null when it does not exist. */
  dump(): Promise<WgDump | null> {
    return readWgDump(this.#runner, this.#n.ifname);
  }

  /**
   * Plans the interface changes. `fresh` (used by `up()`) replaces a stale interface of ours left by a
   * crashed run instead of adopting it. A device with our name that is not ours throws
   * {@link InterfaceConflictError}.
   */
  async plan(opts: { fresh: boolean }): Promise<Change[]> {
    const ifname = this.#n.ifname;
    const link = await observeLink(this.#runner, ifname);
    if (link === null) {
      return [this.#createChange("create-interface", `interface ${ifname} is missing`)];
    }
    if (!isOurs(link)) throw new InterfaceConflictError(ifname, link.kind, link.alias);
    if (opts.fresh) return [this.#createChange("replace-stale-interface", `interface ${ifname} was left by an earlier run`)];

    const impl = implementationOf(link);
    if (impl === "userspace" && (this.#child === null || this.#child.exitStatus !== null)) {
      return [this.#createChange("recreate-interface", `wireguard-go for ${ifname} is not running as our child`)];
    }
    const dump = await readWgDump(this.#runner, ifname);
    if (dump === null) return [this.#createChange("recreate-interface", `WireGuard state of ${ifname} is unreadable`)];
    this.#implementation = impl;

    const changes: Change[] = [];
    const drift = wgConfigDrift(this.#n, await this.#ownPublicKey(), dump);
    if (drift.length > 0) {
      changes.push({
        component: "wireguard",
        action: "configure-wireguard",
        reason: drift.join("; "),
        // No undo: the previous configuration was not ours and its keys cannot be read back.
        apply: (run) => this.#setconf(run),
      });
    } else {
      const peer = dump.peers.find((p) => p.publicKey === this.#n.spec.exit.publicKey);
      if (peer) changes.push(...(await this.#planEndpoint(peer)));
    }
    changes.push(...this.#planLinkAttributes(link));
    return changes;
  }

  /** Removes the interface if it is ours and stops wireguard-go. Already gone is success. */
  async remove(runner: Runner = this.#runner): Promise<void> {
    const ifname = this.#n.ifname;
    // Detach first: from here on its exit (and its complaints about the vanishing device) are expected.
    const child = this.#child;
    this.#child = null;
    if (child) this.#stopping.add(child);
    const link = await observeLink(runner, ifname);
    if (link !== null && !isOurs(link)) {
      this.#log.warn("not removing an interface that is not ours", { ifname, kind: link.kind, alias: link.alias });
    } else if (link !== null) {
      try {
        await runner.run(["ip", "link", "del", "dev", ifname]);
      } catch (err) {
        if (!(err instanceof CommandError && /Cannot find device|does not exist/.test(err.stderr))) throw explainCommandError(err);
      }
    }
    if (child) await this.#stopChild(child);
    this.#implementation = null;
  }

  // ---- creation ----

  #createChange(action: string, reason: string): Change {
    return {
      component: "interface",
      action,
      reason,
      apply: async (run) => {
        if (action !== "create-interface") await this.remove(run);
        await this.#create(run);
      },
      undo: (run) => this.remove(run),
    };
  }

  async #create(run: Runner): Promise<void> {
    const n = this.#n;
    const ifname = n.ifname;
    await this.#ownPublicKey();
    if (this.#endpoints.length === 0) await this.#resolveEndpoint();
    try {
      this.#implementation = await this.#addLink(run);
      await run.run(["ip", "link", "set", "dev", ifname, "alias", IFALIAS]);
      await this.#setconf(run);
      for (const a of n.addresses) await run.run(["ip", `-${a.family}`, "address", "add", a.cidr, "dev", ifname]);
      await run.run(["ip", "link", "set", "dev", ifname, "mtu", String(n.spec.interface.mtu)]);
      await run.run(["ip", "link", "set", "dev", ifname, "up"]);
      this.#log.info("WireGuard interface created", { ifname, implementation: this.#implementation, pid: this.status().pid ?? undefined });
    } catch (err) {
      // Leave nothing half-built: the caller's rollback only undoes changes that completed.
      await this.remove(run).catch((cleanupErr: unknown) =>
        this.#log.error("could not remove half-created interface", { ifname, error: String(cleanupErr) }),
      );
      throw explainCommandError(err);
    }
  }

  async #addLink(run: Runner): Promise<ActiveImplementation> {
    const wanted = this.#n.spec.interface.implementation;
    if (wanted !== "userspace" && !this.#kernelUnsupported) {
      try {
        await run.run(["ip", "link", "add", "dev", this.#n.ifname, "type", "wireguard"]);
        return "kernel";
      } catch (err) {
        if (isPermissionDenied(err)) throw new MissingCapabilityError(err.argv, { cause: err });
        if (!(err instanceof CommandError && /Unknown device type|not supported/i.test(err.stderr))) throw err;
        if (wanted === "kernel") {
          throw new WireGuardUnavailableError("kernel", "the kernel has no WireGuard module (ip link: Unknown device type); set interface.implementation to auto or userspace", { cause: err });
        }
        this.#kernelUnsupported = true;
        this.#log.info("kernel WireGuard unavailable; using wireguard-go", { ifname: this.#n.ifname });
      }
    }
    await this.#startUserspace(run);
    return "userspace";
  }

  async #startUserspace(run: Runner): Promise<void> {
    const ifname = this.#n.ifname;
    await this.#checkUserspaceTools();
    const argv = this.#pdeathsig ? ["setpriv", "--pdeathsig", "TERM", "wireguard-go", "-f", ifname] : ["wireguard-go", "-f", ifname];
    const env = {
      WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1",
      LOG_LEVEL: this.#log.debugEnabled ? "verbose" : "error",
    };
    const child: ChildHandle = run.start(argv, {
      env,
      onLine: (line) => {
        if (line.startsWith("ERROR") && !this.#stopping.has(child)) this.#log.warn("wireguard-go", { ifname, line });
        else if (this.#log.debugEnabled) this.#log.debug("wireguard-go", { ifname, line });
      },
    });
    this.#child = child;
    void child.exited.then((exit) => {
      if (!this.#stopping.has(child)) {
        this.#log.warn("wireguard-go exited", { ifname, pid: child.pid, code: exit.exitCode ?? undefined, signal: exit.signal ?? undefined });
      }
    });
    const deadline = this.#now() + this.#startTimeoutMs;
    for (;;) {
      if (child.exitStatus !== null) {
        const e = child.exitStatus;
        throw new WireGuardStartError(ifname, `exited during start (${e.signal ?? `status ${e.exitCode}`})`, child.outputTail());
      }
      const ready = await readWgDump(this.#runner, ifname).catch((err: unknown) => {
        if (err instanceof MissingCapabilityError) throw err;
        return null;
      });
      if (ready !== null) return;
      if (this.#now() > deadline) {
        child.kill("SIGTERM");
        throw new WireGuardStartError(ifname, `did not become ready within ${this.#startTimeoutMs} ms`, child.outputTail());
      }
      await Bun.sleep(20);
    }
  }

  /** Probes wireguard-go (and setpriv) once, so a missing binary is reported as such. */
  async #checkUserspaceTools(): Promise<void> {
    if (this.#userspaceChecked) return;
    const tools = this.#pdeathsig ? ["wireguard-go", "setpriv"] : ["wireguard-go"];
    for (const tool of tools) {
      try {
        await this.#runner.run([tool, "--version"]);
      } catch (err) {
        if (err instanceof MissingToolError && this.#n.spec.interface.implementation === "auto") {
          throw new WireGuardUnavailableError(
            "userspace",
            `the kernel has no WireGuard module and ${err.tool} is not installed (Debian package ${err.package ?? "unknown"})`,
            { cause: err },
          );
        }
        throw err;
      }
    }
    this.#userspaceChecked = true;
  }

  async #stopChild(child: ChildHandle): Promise<void> {
    if (child.exitStatus !== null) return;
    // Deleting the link makes wireguard-go exit on its own; give it a moment, then insist.
    if (await exitsWithin(child, 2000)) return;
    child.kill("SIGTERM");
    if (await exitsWithin(child, 2000)) return;
    this.#log.warn("wireguard-go ignored SIGTERM; killing it", { pid: child.pid });
    child.kill("SIGKILL");
    await child.exited;
  }

  // ---- configuration ----

  async #setconf(run: Runner): Promise<void> {
    const s = this.#n.spec;
    const privateKey = await this.#key("interface.privateKeyFile", s.interface.privateKeyFile);
    const presharedKey = s.exit.presharedKeyFile === null ? null : await this.#key("exit.presharedKeyFile", s.exit.presharedKeyFile);
    const config = renderWgConfig({
      privateKey,
      listenPort: s.interface.listenPort,
      fwmark: s.routing.wireguardFwmark,
      peer: {
        publicKey: s.exit.publicKey,
        presharedKey,
        endpoint: this.#endpoints[0] ?? null,
        allowedIps: this.#n.allowedIps.map(formatCidr),
        persistentKeepalive: s.exit.persistentKeepalive,
      },
    });
    try {
      await run.run(["wg", "setconf", this.#n.ifname, "/dev/stdin"], { stdin: config });
    } catch (err) {
      throw explainCommandError(err);
    }
  }

  async #key(field: string, path: string): Promise<string> {
    let text: string;
    try {
      text = (await this.#readSecret(path)).trim();
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new KeyFileError(field, path, code === "ENOENT" ? "file not found" : code === "EACCES" ? "permission denied" : "unreadable", { cause: err });
    }
    if (!KEY.test(text)) throw new KeyFileError(field, path, "does not contain a base64 WireGuard key (44 characters)");
    return text;
  }

  async #ownPublicKey(): Promise<string> {
    if (this.#publicKey !== null) return this.#publicKey;
    const privateKey = await this.#key("interface.privateKeyFile", this.#n.spec.interface.privateKeyFile);
    const { stdout } = await this.#runner.run(["wg", "pubkey"], { stdin: privateKey + "\n" });
    this.#publicKey = stdout.trim();
    return this.#publicKey;
  }

  #planLinkAttributes(link: LinkState): Change[] {
    const ifname = this.#n.ifname;
    const changes: Change[] = [];
    const want = this.#n.addresses;
    const global = link.addresses.filter((a) => a.scope !== "link" && a.scope !== "host");
    for (const a of want) {
      if (!global.some((g) => g.family === a.family && g.local === a.local && g.prefixlen === a.prefixlen)) {
        const add = ["ip", `-${a.family}`, "address", "add", a.cidr, "dev", ifname];
        const del = ["ip", `-${a.family}`, "address", "del", a.cidr, "dev", ifname];
        changes.push({ component: "interface", action: "add-address", reason: `address ${a.cidr} is missing on ${ifname}`, apply: (r) => runX(r, add), undo: (r) => runX(r, del) });
      }
    }
    for (const g of global) {
      if (!want.some((a) => g.family === a.family && g.local === a.local && g.prefixlen === a.prefixlen)) {
        const cidr = `${g.local}/${g.prefixlen}`;
        const add = ["ip", `-${g.family}`, "address", "add", cidr, "dev", ifname];
        const del = ["ip", `-${g.family}`, "address", "del", cidr, "dev", ifname];
        changes.push({ component: "interface", action: "delete-address", reason: `unexpected address ${cidr} on ${ifname}`, apply: (r) => runX(r, del), undo: (r) => runX(r, add) });
      }
    }
    const mtu = this.#n.spec.interface.mtu;
    if (link.mtu !== mtu) {
      const old = link.mtu;
      changes.push({
        component: "interface",
        action: "set-mtu",
        reason: `MTU ${old}, want ${mtu}`,
        apply: (r) => runX(r, ["ip", "link", "set", "dev", ifname, "mtu", String(mtu)]),
        undo: (r) => runX(r, ["ip", "link", "set", "dev", ifname, "mtu", String(old)]),
      });
    }
    if (!link.up) {
      changes.push({
        component: "interface",
        action: "set-link-up",
        reason: `${ifname} is down`,
        apply: (r) => runX(r, ["ip", "link", "set", "dev", ifname, "up"]),
        undo: (r) => runX(r, ["ip", "link", "set", "dev", ifname, "down"]),
      });
    }
    return changes;
  }

  // ---- endpoint ----

  /** Resolves the configured endpoint; on failure keeps the previous answer and records the error. */
  async #resolveEndpoint(): Promise<boolean> {
    const ep = this.#n.endpoint;
    this.#lastResolveAt = this.#now();
    if (!ep.isName) {
      this.#endpoints = [formatEndpoint(ep.host, ep.port)];
      return true;
    }
    try {
      const addrs = await this.#resolve(ep.host);
      if (addrs.length === 0) throw new Error("no addresses");
      this.#endpoints = addrs.map((a) => formatEndpoint(a, ep.port));
      this.#resolveError = null;
      return true;
    } catch (err) {
      this.#resolveError = `${ep.host}: ${(err as Error).message}`;
      this.#log.warn("cannot resolve the exit endpoint; will retry", { endpoint: this.#n.spec.exit.endpoint, error: this.#resolveError });
      return false;
    }
  }

  async #planEndpoint(peer: WgPeerDump): Promise<Change[]> {
    const ep = this.#n.endpoint;
    let reresolved = false;
    if (ep.isName && isHandshakeStale(peer.latestHandshake, this.#now()) && this.#now() - this.#lastResolveAt >= this.#reresolveMs) {
      const before = this.#endpoints.join(",");
      const ok = await this.#resolveEndpoint();
      if (ok) this.#reresolutions++;
      reresolved = ok && this.#endpoints.join(",") !== before;
    } else if (this.#endpoints.length === 0 && !ep.isName) {
      await this.#resolveEndpoint();
    }
    const target = this.#endpoints[0];
    const current = peer.endpoint === null ? null : canonicalEndpoint(peer.endpoint);
    if (target === undefined || (current !== null && this.#endpoints.includes(current))) return [];
    const ifname = this.#n.ifname;
    const pub = this.#n.spec.exit.publicKey;
    const handshake = peer.latestHandshake === 0 ? "never" : `${Math.round(this.#now() / 1000 - peer.latestHandshake)} s ago`;
    return [
      {
        component: "endpoint",
        action: reresolved ? "reresolve-endpoint" : "set-endpoint",
        reason: reresolved
          ? `${this.#n.spec.exit.endpoint} now resolves to ${this.#endpoints.join(", ")} (peer had ${peer.endpoint ?? "none"}, handshake ${handshake})`
          : `peer endpoint is ${peer.endpoint ?? "unset"}, want ${target}`,
        apply: (r) => runX(r, ["wg", "set", ifname, "peer", pub, "endpoint", target]),
        undo: current === null ? undefined : (r) => runX(r, ["wg", "set", ifname, "peer", pub, "endpoint", current]),
      },
    ];
  }
}

async function runX(runner: Runner, argv: string[]): Promise<void> {
  try {
    await runner.run(argv);
  } catch (err) {
    throw explainCommandError(err);
  }
}

function exitsWithin(child: ChildHandle, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void child.exited.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
