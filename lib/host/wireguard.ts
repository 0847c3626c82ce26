/**
 * The WireGuard configuration on our interface: the private key, the socket's own fwmark (trap 4) and
 * the exit peer (public key, optional PSK, endpoint, allowed IPs, keepalive).
 *
 * - It is applied with one `wg setconf <if> /dev/stdin`, keys on stdin (never argv).
 * - Drift is read from `wg show <if> dump` ({@link wgConfigDrift}, pure) and repaired with `setconf`
 *   (a fresh handshake follows). The endpoint alone is tracked by endpoint.ts, whose `wg set ... endpoint`
 *   keeps the session.
 *
 * It does not create the link (interface.ts), run wireguard-go (wireguard-go.ts), or route (policy.ts).
 */
import { readFile } from "node:fs/promises";
import type { Runner } from "../exec/runner.ts";
import { formatCidr } from "../net/ip.ts";
import type { Change } from "./change.ts";
import { runHostCommand } from "./command.ts";
import { KeyFileError } from "./errors.ts";
import { formatMark, type NormalizedSpec } from "./spec.ts";
import type { WgDump } from "./wgdump.ts";

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
 * Lists how the WireGuard state differs from the spec, endpoint aside (see endpoint.ts).
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

const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Options for {@link WireGuardConfig}. */
export interface WireGuardConfigOptions {
  /** Runs `wg pubkey` (a read). */
  runner: Runner;
  /** Reads a key file. Default: `fs.readFile(path, "utf8")`. */
  readSecret?: (path: string) => Promise<string>;
  /** The peer endpoint to configure now (`ip:port`), or null while unresolved. */
  endpoint: () => string | null;
}

/** One interface's WireGuard configuration: render, apply (`setconf`), and plan its repair. */
export class WireGuardConfig {
  readonly #n: NormalizedSpec;
  readonly #o: WireGuardConfigOptions;
  readonly #readSecret: (path: string) => Promise<string>;
  #publicKey: string | null = null;

  /** `exit` is the spec of the interface and its one exit peer. */
  constructor(exit: NormalizedSpec, opts: WireGuardConfigOptions) {
    this.#n = exit;
    this.#o = opts;
    this.#readSecret = opts.readSecret ?? ((p) => readFile(p, "utf8"));
  }

  /** Our own public key, derived once from the private key file (`wg pubkey`, key on stdin). */
  async ownPublicKey(): Promise<string> {
    if (this.#publicKey !== null) return this.#publicKey;
    const privateKey = await this.#key("interface.privateKeyFile", this.#n.spec.interface.privateKeyFile);
    const { stdout } = await this.#o.runner.run(["wg", "pubkey"], { stdin: privateKey + "\n" });
    this.#publicKey = stdout.trim();
    return this.#publicKey;
  }

  /** Applies the whole configuration with `wg setconf <if> /dev/stdin` through `run`. */
  async setconf(run: Runner): Promise<void> {
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
        endpoint: this.#o.endpoint(),
        allowedIps: this.#n.allowedIps.map(formatCidr),
        persistentKeepalive: s.exit.persistentKeepalive,
      },
    });
    await runHostCommand(run, ["wg", "setconf", this.#n.ifname, "/dev/stdin"], { stdin: config });
  }

  /** Plans a `setconf` when the dumped state differs from the spec (endpoint aside); else nothing. */
  async plan(dump: WgDump): Promise<Change[]> {
    const drift = wgConfigDrift(this.#n, await this.ownPublicKey(), dump);
    if (drift.length === 0) return [];
    return [
      {
        component: "wireguard",
        action: "configure-wireguard",
        reason: drift.join("; "),
        // No undo: the previous configuration was not ours and its keys cannot be read back.
        apply: (run) => this.setconf(run),
      },
    ];
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
}
