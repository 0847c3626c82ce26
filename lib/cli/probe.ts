/**
 * `egressd check --probe`: asks the exit whether it answers a WireGuard handshake initiation from
 * the gateway's key (lib/probe), for when there has been no handshake to judge by. Nagios exit
 * codes, as `egressd check`.
 *
 * It runs only when there is no live session: the daemon's latest handshake is 0 (never) or older
 * than {@link HANDSHAKE_WARN_S}; otherwise the session already answers the question, and the probe
 * could disturb it (an exit that accepts the initiation sends the session's packets to the probe's
 * port until the gateway speaks again).
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../config/errors.ts";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { controlRequest } from "../daemon/control.ts";
import { CheckState, type DaemonStatus, HANDSHAKE_WARN_S } from "../daemon/status.ts";
import { decodeKey } from "../keys/keys.ts";
import { parseHostPort } from "../net/ip.ts";
import { ProbeError, probeExit, type ProbeResult } from "../probe/probe.ts";
import { out } from "./common.ts";

/** The config the systemd unit runs with, and so the probe's default. */
export const DEFAULT_CONFIG = "/etc/egressd/config.json";

/** The part of `egressd check --help` about the probe. */
export const PROBE_HELP = `  -p, --probe    instead: send WireGuard handshake initiations to the exit from the gateway's key
                 (--config FILE; root or CAP_NET_ADMIN, for the WireGuard fwmark) and report
                 whether it answers. Skipped while a session is live (a handshake in the last
                 ${HANDSHAKE_WARN_S} s), which it could disturb. Outcomes:
                   OK        a valid handshake response: reachable, and both keys are right
                   WARNING   a cookie reply: reachable and under load; the exit's key is right
                   CRITICAL  no answer: the exit is down or unreachable, the endpoint is wrong,
                             or a key is wrong on either side (WireGuard stays silent to a key
                             it does not know); or an answer that does not verify (e.g. another
                             preshared key)
                 With --probe, --config names the gateway's config (default ${DEFAULT_CONFIG}).
`;

/** Runs the probe; returns the nagios exit code. */
export async function runProbe(o: { configFile: string; socket: string }): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(o.configFile);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    await out(`UNKNOWN: probe: ${e.file ?? "config"}: ${e.problems.map((p) => p.message).join("; ")}\n`);
    return CheckState.unknown;
  }
  const live = await liveSession(o.socket, config.exit.publicKey);
  if (live.ageS !== null && live.ageS <= HANDSHAKE_WARN_S) {
    await out(`OK: probe: skipped, a session is live (latest handshake ${live.ageS} s ago) and answers the question; the probe could disturb it\n`);
    return CheckState.ok;
  }
  const { host, port } = parseHostPort(config.exit.endpoint, { names: true });
  const key = (file: string) => decodeKey(readFileSync(file, "utf8"));
  let result: ProbeResult;
  try {
    result = await probeExit(
      { host, port, privateKey: key(config.interface.privateKeyFile), exitPublicKey: decodeKey(config.exit.publicKey), presharedKey: config.exit.presharedKeyFile ? key(config.exit.presharedKeyFile) : null },
      { fwmark: config.routing.wireguardFwmark },
    );
  } catch (e) {
    if (!(e instanceof ProbeError)) throw e;
    await out(`UNKNOWN: probe: ${e.message}\n`);
    return CheckState.unknown;
  }
  const where = `${config.exit.name} at ${result.address}:${port}`;
  const context = live.note ? ` (${live.note})` : "";
  switch (result.outcome) {
    case "answered":
      await out(`OK: probe: ${where} answered a handshake initiation with a valid response in ${result.rttMs} ms: reachable, and both keys are right${context}\n`);
      return CheckState.ok;
    case "busy":
      await out(`WARNING: probe: ${where} sent a cookie reply in ${result.rttMs} ms: reachable and under load; its key is right, the gateway's is not proven${context}\n`);
      return CheckState.warning;
    case "no-answer":
      await out(
        `CRITICAL: probe: no answer from ${where} to ${result.attempts} handshake initiations in ${(result.waitedMs / 1000).toFixed(1)} s: ` +
          `the exit is down or unreachable, the endpoint is wrong, or a key is wrong on either side (the exit lacks the gateway's public key as a peer, or exit.publicKey is not its key); WireGuard stays silent to keys it does not know${context}\n`,
      );
      return CheckState.critical;
    case "invalid":
      await out(`CRITICAL: probe: ${where} answered, but not validly: ${result.reason}${context}\n`);
      return CheckState.critical;
  }
}

/** The daemon's latest handshake with the exit, in seconds ago (null: none, or no daemon to ask). */
async function liveSession(socket: string, exitKey: string): Promise<{ ageS: number | null; note: string | null }> {
  let status: DaemonStatus;
  try {
    status = (await controlRequest(socket, "status")) as DaemonStatus;
  } catch (e) {
    return { ageS: null, note: `the daemon did not answer on ${socket}, so no session of its own was checked: ${(e as Error).message}` };
  }
  const peer = status.peers.find((p) => p.publicKey === exitKey);
  if (!peer || peer.latestHandshake === 0) return { ageS: null, note: "no handshake yet" };
  const age = Math.max(0, Math.round(status.now / 1000 - peer.latestHandshake));
  return { ageS: age, note: `latest handshake ${age} s ago` };
}
