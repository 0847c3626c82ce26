/**
 * Seeded HTTP/1.1 request heads for fuzzing: valid heads of every form the proxy serves, then
 * mutated (truncated, bytes flipped, CR/LF/NUL/obs-fold inserted, huge lines, many fields, a
 * second head glued on). Pure and deterministic: the same seed gives the same cases, so a failing
 * run is replayed with its seed. Used by the parser's fuzz table test and by the live-listener fuzz.
 */
import { prng } from "./prng.ts";

export { prng };

/** One generated case: the bytes, and the mutations applied, for a failure message. */
export interface HttpFuzzCase {
  readonly bytes: Uint8Array;
  readonly mutations: readonly string[];
}

/** Options for {@link httpFuzzCases}. */
export interface HttpFuzzOptions {
  /** Target hosts the valid heads name. Default `["127.0.0.1", "www.example.test", "[::1]"]`. */
  readonly hosts?: readonly string[];
  /** Target port. Default 80 (443 for CONNECT). */
  readonly port?: number;
}

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

function templates(r: () => number, opts: HttpFuzzOptions): string[] {
  const int = (n: number) => Math.floor(r() * n);
  const hosts = opts.hosts ?? ["127.0.0.1", "www.example.test", "[::1]"];
  const host = hosts[int(hosts.length)]!;
  const port = opts.port;
  const hp = (dflt: number) => `${host}:${port ?? dflt}`;
  const method = METHODS[int(METHODS.length)]!;
  const path = ["/", "/a/b?c=d", "/%20x", "/" + "p".repeat(int(300))][int(4)]!;
  const abs = `http://${port === undefined ? host : hp(80)}${path}`;
  return [
    `CONNECT ${hp(443)} HTTP/1.1\r\nHost: ${hp(443)}\r\nUser-Agent: fuzz\r\n\r\n`,
    `${method} ${abs} HTTP/1.1\r\nHost: ${host}\r\nAccept: */*\r\nProxy-Connection: keep-alive\r\n\r\n`,
    `POST ${abs} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\n\r\nhello`,
    `POST ${abs} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    `GET ${abs} HTTP/1.0\r\nConnection: keep-alive\r\nProxy-Authorization: Basic cG9kOnB3\r\n\r\n`,
    `GET ${abs} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    `OPTIONS * HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
  ];
}

const INSERTS = ["\r", "\n", "\r\n", "\0", "\r\n ", "\r\n\t", " ", ":", "\r\n\r\n", "\x7f", "\xff", "%", "[", "]", "@", "#"];
const FIELDS = ["Content-Length: 0", "Content-Length: 7", "Transfer-Encoding: chunked", "Transfer-Encoding: gzip", "Host: other.test", "Connection: close", "Expect: 100-continue"];

function bytesOf(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

function splice(b: Uint8Array, at: number, del: number, ins: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length - del + ins.length);
  out.set(b.subarray(0, at));
  out.set(ins, at);
  out.set(b.subarray(at + del), at + ins.length);
  return out;
}

function mutate(b: Uint8Array, r: () => number, log: string[]): Uint8Array {
  const int = (n: number) => Math.floor(r() * n);
  const at = () => int(b.length + 1);
  switch (int(9)) {
    case 0: {
      const n = at();
      log.push(`truncate@${n}`);
      return b.subarray(0, n);
    }
    case 1: {
      const i = int(Math.max(b.length, 1));
      log.push(`flip@${i}`);
      const out = Uint8Array.from(b);
      if (out.length > 0) out[i] = out[i]! ^ (1 << int(8));
      return out;
    }
    case 2: {
      const s = INSERTS[int(INSERTS.length)]!;
      const i = at();
      log.push(`insert${JSON.stringify(s)}@${i}`);
      return splice(b, i, 0, bytesOf(s));
    }
    case 3: {
      const i = at();
      const n = int(4);
      log.push(`delete${n}@${i}`);
      return splice(b, i, Math.min(n, b.length - i), new Uint8Array(0));
    }
    case 4: {
      // 9000 and more exceed the line limit; three 7000-byte lines exceed only the head limit.
      const [n, times] = [[100, 1], [7000, 3], [9000, 1], [17000, 1], [70000, 1]][int(5)]!;
      const i = at();
      log.push(`hugeLine${n}x${times}@${i}`);
      return splice(b, i, 0, bytesOf(("X-Huge: " + "h".repeat(n!) + "\r\n").repeat(times!)));
    }
    case 5: {
      const n = [50, 101, 500][int(3)]!;
      log.push(`fields${n}`);
      return splice(b, firstLineEnd(b), 0, bytesOf("X-N: 1\r\n".repeat(n)));
    }
    case 6: {
      const f = FIELDS[int(FIELDS.length)]!;
      log.push(`field${JSON.stringify(f)}`);
      return splice(b, firstLineEnd(b), 0, bytesOf(f + "\r\n"));
    }
    case 7: {
      const i = at();
      const n = 1 + int(8);
      log.push(`random${n}@${i}`);
      return splice(b, i, 0, Uint8Array.from({ length: n }, () => int(256)));
    }
    default: {
      log.push("glue");
      return splice(b, b.length, 0, b);
    }
  }
}

function firstLineEnd(b: Uint8Array): number {
  const lf = b.indexOf(0x0a);
  return lf < 0 ? b.length : lf + 1;
}

/**
 * `count` cases from `seed`. About one case in eight is a valid head left as it is, so a fuzz run
 * also checks that good requests keep working between bad ones.
 */
export function* httpFuzzCases(seed: number, count: number, opts: HttpFuzzOptions = {}): Generator<HttpFuzzCase> {
  const r = prng(seed);
  for (let k = 0; k < count; k++) {
    const ts = templates(r, opts);
    let bytes = bytesOf(ts[Math.floor(r() * ts.length)]!);
    const mutations: string[] = [];
    const n = r() < 0.125 ? 0 : 1 + Math.floor(r() * 4);
    for (let m = 0; m < n; m++) bytes = mutate(bytes, r, mutations);
    yield { bytes, mutations };
  }
}
