/**
 * The effective config: what `check-config` prints. It is valid config text again (durations as
 * `"10s"`, marks as hex), so it can be saved and loaded back. Secret values never appear, because the
 * config only ever holds the paths to secret files; the proxy username is shown, the password is not.
 */
import { formatDuration } from "./duration.ts";
import type { Config } from "./schema.ts";

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Renders a validated config back to plain JSON-able data, defaults included. */
export function effectiveConfig(c: Config): unknown {
  // With `exits`, `exit` and `interface.addresses` are derived from the first exit: not written back.
  const several = c.exits !== undefined;
  const { exit, ...rest } = c;
  const { addresses, ...iface } = c.interface;
  return {
    ...(several ? rest : { ...rest, exit }),
    interface: several ? iface : { ...iface, addresses },
    ...(c.failover
      ? {
          failover: {
            ...c.failover,
            probe: { ...c.failover.probe, interval: formatDuration(c.failover.probe.interval), timeout: formatDuration(c.failover.probe.timeout) },
            staleHandshake: formatDuration(c.failover.staleHandshake),
          },
        }
      : {}),
    routing: { ...c.routing, fwmark: hex(c.routing.fwmark), wireguardFwmark: hex(c.routing.wireguardFwmark) },
    proxy: {
      ...c.proxy,
      dns: { ...c.proxy.dns, timeout: formatDuration(c.proxy.dns.timeout) },
      idleTimeout: formatDuration(c.proxy.idleTimeout),
      connectTimeout: formatDuration(c.proxy.connectTimeout),
      handshakeTimeout: formatDuration(c.proxy.handshakeTimeout),
      keepaliveIdle: formatDuration(c.proxy.keepaliveIdle),
      keepaliveInterval: formatDuration(c.proxy.keepaliveInterval),
    },
    daemon: {
      ...c.daemon,
      reconcileInterval: formatDuration(c.daemon.reconcileInterval),
      drainTimeout: formatDuration(c.daemon.drainTimeout),
    },
  };
}
