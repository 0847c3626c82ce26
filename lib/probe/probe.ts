/**
 * The handshake probe: sends WireGuard handshake initiations (noise.ts) to the exit from a UDP
 * socket of its own, marked with WireGuard's fwmark so that it is routed as the tunnel's own packets
 * are (never into the tunnel), and reports whether the exit answered.
 *
 * What the outcomes mean:
 * - `answered`: a handshake response that decrypts and authenticates. The exit is reachable, it has
 *   the gateway's public key as a peer, and its private key matches the exit.publicKey we used.
 * - `busy`: a valid cookie reply. The exit is reachable and under load (it asks for mac2); the
 *   mac1 it checked proves it has the exit.publicKey's private key, but not that it knows the gateway.
 * - `no-answer`: nothing came back. WireGuard never answers what it cannot authenticate, so this is
 *   one of: the exit is down or unreachable (a firewall drops UDP on the way), the endpoint is wrong,
 *   the exit does not have the gateway's public key as a peer, or exit.publicKey is not the exit's
 *   key (mac1 fails and the exit stays silent). A preshared key that differs shows as `invalid`
 *   only if the exit answers at all, which it does: the response then fails to decrypt here.
 * - `invalid`: something came back that is not a valid answer to our initiation (the reason says
 *   why; e.g. another preshared key).
 *
 * It disturbs a live session: an exit that accepts the initiation moves the gateway's endpoint to
 * the probe's port until the gateway's next packet. Callers run it only when there is no session
 * (see lib/cli/probe.ts).
 */
import { lookup } from "node:dns/promises";
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { setMark, socketFd } from "../net/sockopt.ts";
import { buildInitiation, type Initiation, type ReplyVerdict, verifyReply } from "./noise.ts";

/** Who to probe, with which keys. */
export interface ProbeTarget {
  /** `host` of the exit endpoint (an address or a DNS name) and its port. */
  host: string;
  port: number;
  /** The gateway's static private key, 32 bytes. */
  privateKey: Uint8Array;
  /** The exit's public key, 32 bytes. */
  exitPublicKey: Uint8Array;
  /** The preshared key, 32 bytes; default none (all zero, as WireGuard defines it). */
  presharedKey?: Uint8Array | null;
}

/** Options for {@link probeExit}. */
export interface ProbeOptions {
  /** SO_MARK for the socket (routing.wireguardFwmark); null sends unmarked. Default null. */
  fwmark?: number | null;
  /** Initiations to send, one per `intervalMs` (a lost packet is not a silent exit). Default 3. */
  attempts?: number;
  /** Time between initiations, and after the last one, ms. Default 1000. */
  intervalMs?: number;
}

/** The probe's outcome. */
export type ProbeResult =
  | { outcome: "answered"; address: string; rttMs: number; attempts: number }
  | { outcome: "busy"; address: string; rttMs: number; attempts: number }
  | { outcome: "no-answer"; address: string; attempts: number; waitedMs: number }
  | { outcome: "invalid"; address: string; reason: string; attempts: number };

/** The socket could not be set up (no CAP_NET_ADMIN for the mark, a name that does not resolve). */
export class ProbeError extends Error {
  override name = "ProbeError";
}

/** Probes the exit. Resolves with the outcome; throws {@link ProbeError} when it cannot send at all. */
export async function probeExit(target: ProbeTarget, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const attempts = opts.attempts ?? 3;
  const intervalMs = opts.intervalMs ?? 1000;
  const address = await resolve(target.host);
  const family = isIP(address);
  const pending: { init: Initiation; sentAt: number }[] = [];
  let verdict: { v: ReplyVerdict; at: number; sentAt: number } | null = null;
  let lastInvalid: string | null = null;
  let wake: () => void = () => {};

  const socket = await Bun.udpSocket({
    hostname: family === 6 ? "::" : "0.0.0.0",
    socket: {
      data(_s, data, port, from) {
        if (port !== target.port || normalise(from) !== normalise(address)) return; // not the exit
        const bytes = new Uint8Array(data);
        for (const p of pending) {
          const v = verifyReply(p.init, bytes, target.presharedKey ?? undefined);
          if (v.kind !== "invalid") {
            verdict ??= { v, at: performance.now(), sentAt: p.sentAt };
            wake();
            return;
          }
          lastInvalid = v.reason;
        }
      },
    },
  });
  try {
    if (opts.fwmark != null) {
      const fd = socketFd(socket);
      if (fd === null) throw new ProbeError("cannot set the WireGuard fwmark: this runtime does not expose the socket's fd");
      try {
        setMark(fd, opts.fwmark);
      } catch (e) {
        throw new ProbeError(`cannot mark the probe's socket with fwmark 0x${opts.fwmark.toString(16)} (needs CAP_NET_ADMIN): ${(e as Error).message}`, { cause: e });
      }
    }
    const started = performance.now();
    let sent = 0;
    while (sent < attempts && verdict === null) {
      const init = buildInitiation({
        staticPrivate: target.privateKey,
        responderPublic: target.exitPublicKey,
        ephemeralPrivate: new Uint8Array(randomBytes(32)),
        senderIndex: randomBytes(4).readUInt32LE(0),
        unixMs: Date.now(),
      });
      pending.push({ init, sentAt: performance.now() });
      socket.send(init.message, target.port, address);
      sent++;
      await new Promise<void>((r) => {
        const t = setTimeout(r, intervalMs);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    const found = verdict as { v: ReplyVerdict; at: number; sentAt: number } | null;
    if (found === null) {
      if (lastInvalid !== null) return { outcome: "invalid", address, reason: lastInvalid, attempts: sent };
      return { outcome: "no-answer", address, attempts: sent, waitedMs: Math.round(performance.now() - started) };
    }
    const rttMs = Math.round((found.at - found.sentAt) * 10) / 10;
    return { outcome: found.v.kind === "response" ? "answered" : "busy", address, rttMs, attempts: sent };
  } finally {
    socket.close();
  }
}

async function resolve(host: string): Promise<string> {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  if (isIP(bare)) return bare;
  try {
    return (await lookup(bare)).address;
  } catch (e) {
    throw new ProbeError(`cannot resolve the exit endpoint "${host}": ${(e as Error).message}`, { cause: e });
  }
}

function normalise(a: string): string {
  return a.replace(/^::ffff:/, "").toLowerCase();
}
