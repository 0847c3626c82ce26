/**
 * The lab's "internet host": a "what is my IP" HTTP server and a one-zone DNS server, so that a
 * client of the demo can run `curl --socks5h 10.1.0.1:1080 http://whoami.example/` and see which
 * address its request (and the proxy's DNS query) came from.
 *
 * - HTTP: every request is answered `200`, `text/plain`, with the peer's address and a newline.
 * - DNS (UDP only): `A` queries for the configured names are answered; `AAAA` for them gets an empty
 *   answer (the demo's internet host is reached over IPv4); other names get NXDOMAIN; anything but a
 *   standard `IN` query gets NOTIMP; what does not parse is dropped. No recursion, no EDNS, no TCP.
 *
 * Every request and query is logged as one line with the peer's address, which is how the demo shows
 * that tunnel-mode DNS queries arrive from the exit. The parser and encoder are pure
 * ({@link parseDnsQuery}, {@link encodeDnsAnswer}); {@link serveWhoami} is the I/O around them.
 */
import { formatIp, parseIp } from "../net/ip.ts";

/** Header flag bits, RFC 1035 §4.1.1. */
export const DnsFlag = { qr: 0x8000, aa: 0x0400, tc: 0x0200, rd: 0x0100, ra: 0x0080 } as const;
/** OPCODE values, RFC 1035 §4.1.1 (bits 11-14 of the flags). */
export const DnsOpcode = { query: 0 } as const;
/** RCODE values, RFC 1035 §4.1.1. */
export const DnsRcode = { noError: 0, formErr: 1, servFail: 2, nxDomain: 3, notImp: 4, refused: 5 } as const;
/** TYPE values, RFC 1035 §3.2.2 and RFC 3596 §2.1. */
export const DnsType = { a: 1, aaaa: 28 } as const;
/** CLASS IN, RFC 1035 §3.2.4. */
export const DNS_CLASS_IN = 1;
/** TTL of our answers, seconds: short, the lab lives for minutes. */
export const DNS_TTL = 60;

const HEADER_LEN = 12;

/** The one question of a query. */
export interface DnsQuery {
  readonly id: number;
  readonly flags: number;
  /** The name as asked, without the trailing dot, case preserved. */
  readonly name: string;
  readonly type: number;
  readonly class: number;
  /** The question section's bytes, echoed back in the answer. */
  readonly question: Uint8Array;
}

/**
 * Parses a DNS query datagram's header and first question. Returns null for anything that is not a
 * well-formed query (a response, no question, a truncated or compressed name): such datagrams are
 * dropped, not answered.
 *
 * ```
 *  0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15      RFC 1035 §4.1.1
 * +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 * |                      ID                       |
 * |QR|   Opcode  |AA|TC|RD|RA|   Z    |   RCODE   |
 * |           QDCOUNT / ANCOUNT / NSCOUNT / ARCOUNT  (4 x 16 bits)
 * +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 * | QNAME: length-prefixed labels, then a 0 byte  |      RFC 1035 §4.1.2
 * |                     QTYPE                     |
 * |                     QCLASS                    |
 * +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 * ```
 */
export function parseDnsQuery(buf: Uint8Array): DnsQuery | null {
  if (buf.length < HEADER_LEN) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const id = view.getUint16(0);
  const flags = view.getUint16(2);
  const qdcount = view.getUint16(4);
  if (flags & DnsFlag.qr || qdcount < 1) return null;
  const labels: string[] = [];
  let off = HEADER_LEN;
  for (;;) {
    if (off >= buf.length) return null;
    const len = buf[off]!;
    off += 1;
    if (len === 0) break;
    if (len > 63) return null; // a compression pointer or a reserved label type: not in a query's question
    if (off + len > buf.length) return null;
    labels.push(new TextDecoder().decode(buf.subarray(off, off + len)));
    off += len;
  }
  if (off + 4 > buf.length) return null;
  const type = view.getUint16(off);
  const cls = view.getUint16(off + 2);
  off += 4;
  return { id, flags, name: labels.join("."), type, class: cls, question: buf.slice(HEADER_LEN, off) };
}

/** What a zone says about a question: the rcode and the IPv4 addresses of the answer. */
export function lookupZone(zone: ReadonlyMap<string, string>, q: Pick<DnsQuery, "flags" | "name" | "type" | "class">): { rcode: number; addresses: string[] } {
  const opcode = (q.flags >> 11) & 0xf;
  if (opcode !== DnsOpcode.query || q.class !== DNS_CLASS_IN) return { rcode: DnsRcode.notImp, addresses: [] };
  const address = zone.get(q.name.toLowerCase());
  if (address === undefined) return { rcode: DnsRcode.nxDomain, addresses: [] };
  return { rcode: DnsRcode.noError, addresses: q.type === DnsType.a ? [address] : [] };
}

/**
 * Encodes the response to `q`: the header with QR and AA set and RD copied, the question echoed,
 * then one `A` record per address, its name a pointer to the question's (RFC 1035 §4.1.4).
 *
 * ```
 * +------------------+------+-------+-----+----------+-------+      RFC 1035 §4.1.3
 * | NAME (0xC00C)    | TYPE | CLASS | TTL | RDLENGTH | RDATA |
 * +------------------+------+-------+-----+----------+-------+
 * |        2         |  2   |   2   |  4  |    2     |   4   |
 * ```
 */
export function encodeDnsAnswer(q: DnsQuery, rcode: number, addresses: readonly string[]): Uint8Array {
  const ips = addresses.map((a) => {
    const ip = parseIp(a);
    if (!ip || ip.family !== 4) throw new TypeError(`encodeDnsAnswer: "${a}" is not an IPv4 address`);
    return ip.bytes;
  });
  const out = new Uint8Array(HEADER_LEN + q.question.length + ips.length * 16);
  const view = new DataView(out.buffer);
  view.setUint16(0, q.id);
  view.setUint16(2, DnsFlag.qr | DnsFlag.aa | (q.flags & (DnsFlag.rd | 0x7800)) | (rcode & 0xf));
  view.setUint16(4, 1);
  view.setUint16(6, ips.length);
  out.set(q.question, HEADER_LEN);
  let off = HEADER_LEN + q.question.length;
  for (const bytes of ips) {
    view.setUint16(off, 0xc000 | HEADER_LEN);
    view.setUint16(off + 2, DnsType.a);
    view.setUint16(off + 4, DNS_CLASS_IN);
    view.setUint32(off + 6, DNS_TTL);
    view.setUint16(off + 10, 4);
    out.set(bytes, off + 12);
    off += 16;
  }
  return out;
}

/** Human name of a query type, for the log. */
function typeName(type: number): string {
  return type === DnsType.a ? "A" : type === DnsType.aaaa ? "AAAA" : `TYPE${type}`;
}

/** Options for {@link serveWhoami}. */
export interface WhoamiOptions {
  /** The IPv4 address to listen on (HTTP and DNS). */
  address: string;
  /** HTTP port. Default 80. */
  httpPort?: number;
  /** DNS port (UDP). Default 53. */
  dnsPort?: number;
  /** Names the DNS server answers, each with its IPv4 address. Default: none (every name is NXDOMAIN). */
  names?: Record<string, string>;
  /** Receives one line per request or query. Default: stdout. */
  log?: (line: string) => void;
}

/** A running whoami server. */
export interface WhoamiServer {
  /** The bound ports (useful with port 0). */
  readonly httpPort: number;
  readonly dnsPort: number;
  stop(): void;
}

/** Starts the HTTP and DNS servers. See the module comment. */
export async function serveWhoami(opts: WhoamiOptions): Promise<WhoamiServer> {
  const log = opts.log ?? ((line: string) => process.stdout.write(line + "\n"));
  const zone = new Map(Object.entries(opts.names ?? {}).map(([k, v]) => [k.toLowerCase().replace(/\.$/, ""), v]));
  const http = Bun.serve({
    hostname: opts.address,
    port: opts.httpPort ?? 80,
    fetch(req, server) {
      const peer = server.requestIP(req)?.address ?? "unknown";
      const ip = parseIp(peer);
      const shown = ip ? formatIp(ip) : peer;
      log(`http ${req.method} ${new URL(req.url).pathname} from ${shown}`);
      return new Response(shown + "\n", { headers: { "content-type": "text/plain" } });
    },
  });
  const dns = await Bun.udpSocket({
    hostname: opts.address,
    port: opts.dnsPort ?? 53,
    socket: {
      data(socket, data, port, address) {
        const q = parseDnsQuery(data);
        if (!q) return;
        const { rcode, addresses } = lookupZone(zone, q);
        log(`dns ${typeName(q.type)} ${q.name} from ${address}: ${rcode === DnsRcode.noError ? addresses.join(", ") || "(no records)" : rcode === DnsRcode.nxDomain ? "NXDOMAIN" : `rcode ${rcode}`}`);
        socket.send(encodeDnsAnswer(q, rcode, addresses), port, address);
      },
    },
  });
  return {
    httpPort: http.port ?? 0,
    dnsPort: dns.port,
    stop() {
      void http.stop(true);
      dns.close();
    },
  };
}
