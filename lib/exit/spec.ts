/**
 * One exit's side of the tunnel, as plain data: everything the renderers (wg-quick, nft, sysctl,
 * cloud-init, NixOS) need, derived from the gateway's egressd config. Pure.
 *
 * The gateway's config describes one exit today (`exit`); {@link exitSpecsFromConfig} returns a list
 * so that a config with several exits renders one spec each, and every renderer takes one spec.
 *
 * Secrets never come from here. The exit's private key is not in the gateway's config at all, and
 * the preshared key is only referenced by path there; the caller passes key material (or nothing,
 * for a placeholder) to the renderers explicitly.
 */
import { exitInterfaceName, type Config } from "../config/schema.ts";
import { formatIp, parseCidr, parseHostPort } from "../net/ip.ts";

/** The exit's side of one tunnel. */
export interface ExitSpec {
  /** The exit's friendly name in the gateway's config (`exit.name`). */
  readonly name: string;
  /** The WireGuard interface on the exit (its wg-quick file name), e.g. `wg0`. */
  readonly interfaceName: string;
  /** UDP port the exit listens on: the port of the gateway's `exit.endpoint`. */
  readonly listenPort: number;
  /** MTU, the gateway's `interface.mtu`: both ends agree, so TCP MSS clamping matches. */
  readonly mtu: number;
  /** The exit's own tunnel addresses (CIDR, host bits set); may be empty. */
  readonly addresses: readonly string[];
  /** The gateway as the exit's one peer. */
  readonly gateway: {
    readonly publicKey: string;
    /** The gateway's tunnel addresses as host prefixes (/32, /128): its AllowedIPs on the exit. */
    readonly allowedIps: readonly string[];
    /** The gateway's interface name, for comments only. */
    readonly interfaceName: string;
  };
  /** The gateway's config names a preshared key: the exit must use the same one. */
  readonly presharedKey: boolean;
}

/** What the gateway's config does not say about the exit. */
export interface ExitSpecOptions {
  /** The gateway's public key (`egressd pubkey < <interface.privateKeyFile>`). */
  gatewayPublicKey: string;
  /** The WireGuard interface name on the exit. Default `wg0`. */
  interfaceName?: string;
  /** The exit's own tunnel addresses, CIDR. Default none (the exit only routes to the gateway). */
  addresses?: readonly string[];
}

/** A bad exit-side option; `field` names it. */
export class ExitSpecError extends Error {
  override name = "ExitSpecError";
  constructor(
    readonly field: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${field}: ${message}`, options);
  }
}

const IF_NAME = /^[A-Za-z0-9_=+.-]{1,15}$/; // wg-quick's own rule for interface names

/**
 * The exit spec of every exit in the gateway's config: the one `exit`, or each of `exits` (with its
 * own endpoint port, preshared key, and the gateway's tunnel addresses and interface for that exit).
 * Throws {@link ExitSpecError}.
 */
export function exitSpecsFromConfig(config: Config, opts: ExitSpecOptions): ExitSpec[] {
  if (!config.exits) return [exitSpecOf(config, opts)];
  return config.exits.map((e, i) =>
    exitSpecOf({ ...config, exit: e, interface: { ...config.interface, name: exitInterfaceName(config, e, i), addresses: e.addresses } }, opts),
  );
}

function exitSpecOf(config: Config, opts: ExitSpecOptions): ExitSpec {
  const interfaceName = opts.interfaceName ?? "wg0";
  if (!IF_NAME.test(interfaceName)) throw new ExitSpecError("interface", `"${interfaceName}" is not a wg-quick interface name (1-15 of letters, digits, _ = + . -)`);
  const addresses = (opts.addresses ?? []).map((a) => {
    try {
      const c = parseCidr(a, { allowHostBits: true });
      return `${formatIp(c)}/${c.prefix}`;
    } catch (e) {
      throw new ExitSpecError("address", `"${a}" is not an address with a prefix length, e.g. 10.100.0.1/24`, { cause: e });
    }
  });
  const { port } = parseHostPort(config.exit.endpoint, { names: true });
  const allowedIps = config.interface.addresses.map((a) => {
    const c = parseCidr(a, { allowHostBits: true });
    return `${formatIp(c)}/${c.family === 4 ? 32 : 128}`;
  });
  return {
    name: config.exit.name,
    interfaceName,
    listenPort: port,
    mtu: config.interface.mtu,
    addresses,
    gateway: { publicKey: opts.gatewayPublicKey.trim(), allowedIps, interfaceName: config.interface.name },
    presharedKey: config.exit.presharedKeyFile !== null,
  };
}

/** The address families the tunnel carries (from the gateway's addresses). */
export function families(spec: ExitSpec): { v4: boolean; v6: boolean } {
  return { v4: spec.gateway.allowedIps.some((a) => !a.includes(":")), v6: spec.gateway.allowedIps.some((a) => a.includes(":")) };
}
