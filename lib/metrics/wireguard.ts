/**
 * The four WireGuard families, rendered exactly as prometheus-wireguard-exporter renders them, so
 * the dashboards and alerts built on that exporter keep working when egressd replaces it.
 *
 * Pinned against MindFlavor/prometheus_wireguard_exporter `src/wireguard.rs` (commit 2d82a9c):
 * - names, types and HELP texts as below, families in the order sent, received, latest handshake,
 *   handshake delay;
 * - labels `interface`, `public_key`, `allowed_ips`, then `friendly_name` only for a peer that has
 *   one; `allowed_ips` is `wg`'s comma list verbatim, `(none)` when empty;
 * - sent = `transfer-tx` (dump column 7), received = `transfer-rx` (column 6): the gateway's own
 *   perspective ("Bytes sent to the peer");
 * - interfaces sorted by name, peers in dump order within an interface;
 * - delay = now minus the handshake in whole seconds, so a peer that never shook hands shows the
 *   current Unix time (the exporter does the same; alerts on "delay > N" then fire, as they should).
 *
 * It does not render the exporter's optional `remote_ip`/`remote_port` labels (off by default there)
 * or its split `allowed_ip_N`/`allowed_subnet_N` mode. It differs in two harmless ways: no blank line
 * between families (the format ignores blank lines), and a handshake in the future (clock step)
 * gives a delay of 0 where the exporter panics.
 */
import type { Labels, MetricFamily, Sample } from "./exposition.ts";
import type { Collector } from "./registry.ts";
import type { MaybePromise, WgPeerSample } from "./sources.ts";

/** The exporter's family names, HELP texts and types, verbatim. */
export const WIREGUARD_FAMILIES = {
  sent: { name: "wireguard_sent_bytes_total", help: "Bytes sent to the peer", type: "counter" },
  received: { name: "wireguard_received_bytes_total", help: "Bytes received from the peer", type: "counter" },
  latestHandshake: {
    name: "wireguard_latest_handshake_seconds",
    help: "UNIX timestamp seconds of the last handshake",
    type: "gauge",
  },
  latestHandshakeDelay: {
    name: "wireguard_latest_handshake_delay_seconds",
    help: "Seconds from the last handshake",
    type: "gauge",
  },
} as const;

/** How the WireGuard families are rendered; the daemon may change these on reload. */
export interface WireguardRenderOptions {
  /** Render `wireguard_latest_handshake_delay_seconds` (config `metrics.latestHandshakeDelay`). Default true. */
  latestHandshakeDelay?: boolean;
  /** `friendly_name` by peer public key; the exit's configured name. Default: none (label omitted). */
  friendlyNames?: Readonly<Record<string, string>>;
}

/** Options for {@link wireguardFamilies}. */
export interface WireguardFamiliesOptions extends WireguardRenderOptions {
  /** Wall clock in ms, for the delay. Default `Date.now`. */
  now?: () => number;
}

/** The label pairs of one peer, in the exporter's order. */
export function wireguardLabels(peer: WgPeerSample, friendlyNames: Readonly<Record<string, string>> = {}): Labels {
  const labels: [string, string][] = [
    ["interface", peer.interface],
    ["public_key", peer.publicKey],
    ["allowed_ips", peer.allowedIps.length > 0 ? peer.allowedIps.join(",") : "(none)"],
  ];
  if (Object.hasOwn(friendlyNames, peer.publicKey)) labels.push(["friendly_name", friendlyNames[peer.publicKey]!]);
  return labels;
}

/** Renders peers as the exporter's families. Pure apart from the clock. See the module comment. */
export function wireguardFamilies(peers: readonly WgPeerSample[], opts: WireguardFamiliesOptions = {}): MetricFamily[] {
  const nowSeconds = Math.floor((opts.now ?? Date.now)() / 1000);
  // Array.prototype.sort is stable, so peers keep their dump order within an interface.
  const sorted = [...peers].sort((a, b) => (a.interface < b.interface ? -1 : a.interface > b.interface ? 1 : 0));
  const sent: Sample[] = [];
  const received: Sample[] = [];
  const handshake: Sample[] = [];
  const delay: Sample[] = [];
  const F = WIREGUARD_FAMILIES;
  for (const peer of sorted) {
    const labels = wireguardLabels(peer, opts.friendlyNames);
    sent.push({ name: F.sent.name, labels, value: peer.txBytes });
    received.push({ name: F.received.name, labels, value: peer.rxBytes });
    handshake.push({ name: F.latestHandshake.name, labels, value: peer.latestHandshake });
    delay.push({ name: F.latestHandshakeDelay.name, labels, value: Math.max(0, nowSeconds - peer.latestHandshake) });
  }
  const families: MetricFamily[] = [
    { ...F.sent, samples: sent },
    { ...F.received, samples: received },
    { ...F.latestHandshake, samples: handshake },
  ];
  if (opts.latestHandshakeDelay ?? true) families.push({ ...F.latestHandshakeDelay, samples: delay });
  return families;
}

/** Options for {@link WireguardCollector}. */
export interface WireguardCollectorOptions extends WireguardFamiliesOptions {
  /** Collector name. Default `wireguard`. */
  name?: string;
}

/** Collects the WireGuard families from a (cached) dump. */
export class WireguardCollector implements Collector {
  /** The collector name. */
  readonly name: string;
  readonly #dump: () => MaybePromise<readonly WgPeerSample[]>;
  readonly #now: () => number;
  #render: WireguardRenderOptions;

  /** `dump` should be cached (see `cached()`); this class calls it once per scrape. */
  constructor(dump: () => MaybePromise<readonly WgPeerSample[]>, opts: WireguardCollectorOptions = {}) {
    this.name = opts.name ?? "wireguard";
    this.#dump = dump;
    this.#now = opts.now ?? Date.now;
    this.#render = { latestHandshakeDelay: opts.latestHandshakeDelay, friendlyNames: opts.friendlyNames };
  }

  /** Replaces the render options (a reload); effective from the next scrape. */
  configure(opts: WireguardRenderOptions): void {
    this.#render = { ...opts };
  }

  /** The four (or three) families. Rejects if the dump fails. */
  async collect(): Promise<MetricFamily[]> {
    return wireguardFamilies(await this.#dump(), { ...this.#render, now: this.#now });
  }
}
