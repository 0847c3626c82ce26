/**
 * The active health probe of one exit: a TCP connect, or a DNS query, to a target beyond the exit,
 * sent from the exit's own tunnel address so that the policy routing carries it through that exit
 * and no other.
 *
 * What this module does NOT do: it never decides health (see `health.ts`), and never routes: the
 * source address only works because the host's rules send it into the right tunnel. A probe never
 * throws; every failure is a result with a reason a person can read.
 */
import { connect as netConnect } from "node:net";

/** Where a probe goes. */
export type ProbeTarget =
  | { readonly kind: "tcp"; readonly host: string; readonly port: number }
  | { readonly kind: "dns"; readonly server: string; readonly port: number; readonly name: string };

/** A probe's outcome. */
export type ProbeResult = { readonly ok: true; readonly latencySeconds: number } | { readonly ok: false; readonly reason: string };

/** Options of {@link probe}. */
export interface ProbeOptions {
  /** Source address (the exit's tunnel address). Default: the kernel picks. */
  readonly localAddress?: string;
  /** Give up after this long. Default 2000 ms. */
  readonly timeoutMs?: number;
}

/** Default {@link ProbeOptions.timeoutMs}. */
export const PROBE_TIMEOUT_MS = 2000;

/** Sends one probe and reports how it went. */
export function probe(target: ProbeTarget, options: ProbeOptions = {}): Promise<ProbeResult> {
  return target.kind === "tcp" ? probeTcp(target, options) : probeDns(target, options);
}

function probeTcp(t: { host: string; port: number }, o: ProbeOptions): Promise<ProbeResult> {
  const timeoutMs = o.timeoutMs ?? PROBE_TIMEOUT_MS;
  const started = performance.now();
  return new Promise((resolve) => {
    const sock = netConnect({ host: t.host, port: t.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    const timer = setTimeout(() => done({ ok: false, reason: `no answer from ${t.host}:${t.port} within ${timeoutMs} ms` }), timeoutMs);
    function done(r: ProbeResult): void {
      clearTimeout(timer);
      // destroy() closes the fd at once, so an unanswered SYN does not hold it until the kernel gives up.
      sock.destroy();
      resolve(r);
    }
    sock.once("connect", () => done({ ok: true, latencySeconds: (performance.now() - started) / 1000 }));
    sock.once("error", (err: NodeJS.ErrnoException) => done({ ok: false, reason: `${t.host}:${t.port}: ${describeError(err)}` }));
  });
}

function describeError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ECONNREFUSED":
      return "connection refused (the path works, but choose a target that listens)";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `no route (${err.code}): the exit's tunnel is not there`;
    case "EADDRNOTAVAIL":
      return "the exit's tunnel address is not configured (EADDRNOTAVAIL)";
    default:
      return err.code ? `${err.code}: ${err.message}` : err.message;
  }
}

/*
 * A DNS query (RFC 1035 §4.1): a 12-byte header with one question, then QNAME, QTYPE A, QCLASS IN.
 * Any answer with our ID counts, NXDOMAIN included: what is probed is the path, not the name.
 */
function dnsQuery(id: number, name: string): Uint8Array {
  const labels = name.replace(/\.$/, "").split(".");
  const qname: number[] = [];
  for (const l of labels) {
    const bytes = new TextEncoder().encode(l);
    qname.push(bytes.length, ...bytes);
  }
  qname.push(0);
  return Uint8Array.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, ...qname, 0, 1, 0, 1]);
}

async function probeDns(t: { server: string; port: number; name: string }, o: ProbeOptions): Promise<ProbeResult> {
  const timeoutMs = o.timeoutMs ?? PROBE_TIMEOUT_MS;
  const id = Math.floor(Math.random() * 0x10000);
  const family6 = t.server.includes(":");
  let answered: (() => void) | null = null;
  let sock: Bun.udp.Socket<"uint8array">;
  try {
    sock = await Bun.udpSocket({
      hostname: o.localAddress ?? (family6 ? "::" : "0.0.0.0"),
      port: 0,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, port, address) => {
          if (port === t.port && address === t.server && data.length >= 12 && ((data[0]! << 8) | data[1]!) === id && (data[2]! & 0x80) !== 0) answered?.();
        },
      },
    });
  } catch (err) {
    return { ok: false, reason: `cannot open a probe socket on ${o.localAddress ?? "any address"}: ${describeError(err as NodeJS.ErrnoException)}` };
  }
  const started = performance.now();
  try {
    return await new Promise<ProbeResult>((resolve) => {
      const timer = setTimeout(() => resolve({ ok: false, reason: `no DNS answer from ${t.server}:${t.port} within ${timeoutMs} ms` }), timeoutMs);
      answered = () => {
        clearTimeout(timer);
        resolve({ ok: true, latencySeconds: (performance.now() - started) / 1000 });
      };
      try {
        if (!sock.send(dnsQuery(id, t.name), t.port, t.server)) {
          clearTimeout(timer);
          resolve({ ok: false, reason: "the probe socket's buffer is full" });
        }
      } catch (err) {
        clearTimeout(timer);
        resolve({ ok: false, reason: `${t.server}:${t.port}: ${describeError(err as NodeJS.ErrnoException)}` });
      }
    });
  } finally {
    sock.close();
  }
}
