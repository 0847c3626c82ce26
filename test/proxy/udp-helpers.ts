/**
 * Helpers for the UDP ASSOCIATE tests: UDP peers that queue what they receive, a UDP echo server,
 * and a raw SOCKS5 UDP ASSOCIATE over a real TCP control connection. Every socket is registered
 * with {@link onCleanup}. All traffic stays on 127.0.0.0/8 and ::1.
 */
import { parseIp } from "../../lib/net/ip.ts";
import { encodeUdpDatagram } from "../../lib/proxy/socks5-udp.ts";
import { AuthMethod, Command } from "../../lib/proxy/socks5.ts";
import { encodeGreeting, parseMethodSelection } from "../../lib/proxy/socks5-greeting.ts";
import { encodeRequest, parseReply, type ReplyMessage } from "../../lib/proxy/socks5-request.ts";
import { host, onCleanup, RawConn } from "./helpers.ts";

/** A Bun UDP socket with `Uint8Array` payloads. */
export type Sock = Bun.udp.Socket<"uint8array">;

/** One datagram received. */
export interface Received {
  readonly data: Uint8Array;
  readonly port: number;
  readonly address: string;
}

/** A UDP socket that queues what it receives. */
export interface Peer {
  readonly sock: Sock;
  readonly got: Received[];
  /** The next datagram, or null after `ms`. */
  next(ms?: number): Promise<Received | null>;
}

/** A UDP socket on `hostname`:0 that queues what it receives. */
export async function peer(hostname = "127.0.0.1"): Promise<Peer> {
  const got: Received[] = [];
  const sock = await Bun.udpSocket({
    hostname,
    port: 0,
    binaryType: "uint8array",
    socket: { data: (_s, data, port, address) => void got.push({ data: data.slice(), port, address }) },
  });
  onCleanup(() => sock.close());
  return {
    sock,
    got,
    async next(ms = 1000) {
      const deadline = Date.now() + ms;
      while (got.length === 0 && Date.now() < deadline) await Bun.sleep(5);
      return got.shift() ?? null;
    },
  };
}

/** A UDP echo server: answers each datagram with "echo:" + payload; `seen` records what came. */
export async function udpEcho(hostname = "127.0.0.1"): Promise<{ sock: Sock; seen: Received[] }> {
  const seen: Received[] = [];
  const sock = await Bun.udpSocket({
    hostname,
    port: 0,
    binaryType: "uint8array",
    socket: {
      data: (s, data, port, address) => {
        seen.push({ data: data.slice(), port, address });
        s.send(Buffer.concat([Buffer.from("echo:"), data]), port, address);
      },
    },
  });
  onCleanup(() => sock.close());
  return { sock, seen };
}

/** `text` wrapped in a SOCKS5 UDP header for `ip:port`. */
export function wrap(ip: string, port: number, text: string): Uint8Array {
  return encodeUdpDatagram({ host: { type: "ip", ip: parseIp(ip)! }, port }, new TextEncoder().encode(text));
}

/**
 * UDP ASSOCIATE over a fresh TCP connection to `proxyHost:proxyPort` (no auth), with DST
 * `0.0.0.0:hintPort`. Resolves to the control connection and the reply.
 */
export async function associate(proxyPort: number, opts: { proxyHost?: string; hintPort?: number } = {}): Promise<{ conn: RawConn; reply: ReplyMessage }> {
  const conn = await RawConn.connect(proxyPort, opts.proxyHost ?? "127.0.0.1");
  conn.write(new Uint8Array([...encodeGreeting([AuthMethod.noAuth]), ...encodeRequest(Command.udpAssociate, host("0.0.0.0"), opts.hintPort ?? 0)]));
  await conn.read(parseMethodSelection);
  return { conn, reply: await conn.read(parseReply) };
}
