// Layer 2: the relay through a spawned `egressd proxy`: half-close both ways, resets, backpressure,
// and 1 GiB each way at once, verified by SHA-256 on both ends.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { Socket } from "bun";
import { AuthMethod, Command, NEED_MORE, Reply } from "../../lib/proxy/socks5.ts";
import { encodeGreeting, parseMethodSelection } from "../../lib/proxy/socks5-greeting.ts";
import { encodeRequest, parseReply } from "../../lib/proxy/socks5-request.ts";
import { RawConn, cleanup, host, onCleanup, socksConnect, spawnProxy, type ProxyProcess } from "./helpers.ts";

let proxy: ProxyProcess;
beforeAll(async () => {
  proxy = await spawnProxy(["--allow-destination", "127.0.0.0/8"]);
});
afterAll(cleanup);

/**
 * A target server with these handlers. Note Bun's half-close events: once a socket has sent its
 * FIN (`shutdown()`), the peer's FIN arrives as `close`, not `end`.
 */
function target<T>(handlers: {
  open(s: Socket<T>): void;
  data?(s: Socket<T>, d: Uint8Array): void;
  end?(s: Socket<T>): void;
  close?(s: Socket<T>): void;
  drain?(s: Socket<T>): void;
}): number {
  const l = Bun.listen<T>({ hostname: "127.0.0.1", port: 0, allowHalfOpen: true, socket: { data() {}, ...handlers } });
  onCleanup(() => l.stop(true));
  return l.port;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("half-close", () => {
  test("client FIN reaches the target; the target's answer still flows back", async () => {
    const response = crypto.getRandomValues(new Uint8Array(1 << 20));
    let targetSaw = "";
    let finBeforeAnswer = false;
    const port = target<{ got: string }>({
      open(s) {
        s.data = { got: "" };
      },
      data(s, d) {
        s.data.got += text(d);
      },
      end(s) {
        targetSaw = s.data.got;
        finBeforeAnswer = true; // the request ended while we had not answered yet
        let at = 0;
        const pump = () => {
          while (at < response.length) {
            const n = s.write(response.subarray(at));
            if (n <= 0) return;
            at += n;
          }
          s.end();
        };
        s.data = Object.assign(s.data, { pump });
        pump();
      },
      drain(s) {
        (s.data as unknown as { pump?: () => void }).pump?.();
      },
    });
    const { conn, reply } = await socksConnect(proxy.port, host("127.0.0.1"), port);
    expect(reply.reply).toBe(Reply.succeeded);
    conn.write("the whole request");
    conn.shutdown();
    const got = await conn.readToEnd(10_000);
    expect(finBeforeAnswer).toBe(true);
    expect(targetSaw).toBe("the whole request");
    expect(got.length).toBe(response.length);
    expect(Bun.hash(got)).toBe(Bun.hash(response));
  });

  test("target FIN reaches the client; the client's data still flows to the target", async () => {
    const upload = crypto.getRandomValues(new Uint8Array(1 << 20));
    let received = 0;
    const hasher = new Bun.CryptoHasher("sha256");
    const done = Promise.withResolvers<void>();
    const port = target<undefined>({
      open(s) {
        s.write("banner then FIN");
        s.shutdown(); // half-close: we can still read
      },
      data(_s, d) {
        received += d.length;
        hasher.update(d);
      },
      end(s) {
        s.end();
        done.resolve();
      },
      close() {
        done.resolve(); // the client's FIN, after ours
      },
    });
    const { conn } = await socksConnect(proxy.port, host("127.0.0.1"), port);
    await until(() => conn.eof); // the target's FIN arrived...
    expect(text(conn.buffered)).toBe("banner then FIN");
    for (let at = 0; at < upload.length; at += 65536) {
      // ...and the client keeps sending afterwards
      const chunk = upload.subarray(at, at + 65536);
      let off = 0;
      while (off < chunk.length) {
        const n = conn.socket.write(chunk.subarray(off));
        if (n > 0) off += n;
        else await Bun.sleep(1);
      }
    }
    conn.shutdown();
    await done.promise;
    expect(received).toBe(upload.length);
    expect(hasher.digest("hex")).toBe(new Bun.CryptoHasher("sha256").update(upload).digest("hex"));
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}

test("a reset by the target resets the client, not a clean end of stream", async () => {
  const port = target<undefined>({
    open(s) {
      s.write("partial");
      setTimeout(() => s.terminate(), 50);
    },
  });
  const { conn } = await socksConnect(proxy.port, host("127.0.0.1"), port);
  await conn.closed;
  expect(text(conn.buffered)).toBe("partial");
  expect(conn.error?.message ?? "clean close").toMatch(/ECONNRESET|reset/);
});

/** Sends `total` bytes of a stamped pattern with backpressure, hashing what it sends. */
class Pump {
  readonly sent = new Bun.CryptoHasher("sha256");
  readonly received = new Bun.CryptoHasher("sha256");
  receivedBytes = 0;
  accepted = 0; // bytes the socket took
  #block = 0;
  #cur: Uint8Array | null = null;
  #at = 0;
  paused = false;
  readonly eof = Promise.withResolvers<void>();
  constructor(
    readonly total: number,
    readonly pattern: Uint8Array,
  ) {}

  #next(): Uint8Array | null {
    const size = this.pattern.length;
    if (this.#block * size >= this.total) return null;
    const b = Uint8Array.from(this.pattern); // a copy, stamped with its index
    new DataView(b.buffer).setFloat64(0, this.#block++);
    const left = this.total - (this.#block - 1) * size;
    const out = left < size ? b.subarray(0, left) : b;
    this.sent.update(out);
    return out;
  }

  pump(s: { write(d: Uint8Array): number; shutdown(): void }): void {
    if (this.paused) return;
    for (;;) {
      if (!this.#cur || this.#at >= this.#cur.length) {
        this.#cur = this.#next();
        this.#at = 0;
        if (!this.#cur) {
          s.shutdown();
          return;
        }
      }
      const n = s.write(this.#cur.subarray(this.#at));
      if (n <= 0) return;
      this.#at += n;
      this.accepted += n;
      if (this.#at < this.#cur.length) return; // wait for drain
    }
  }

  take(d: Uint8Array): void {
    this.receivedBytes += d.length;
    this.received.update(d);
  }
}

/** Opens a SOCKS5 CONNECT with streaming handlers; `pump` takes over once the reply arrived. */
function socksStream(proxyPort: number, targetPort: number, side: Pump): Promise<void> {
  let hs = new Uint8Array(0);
  let relaying = false;
  const ready = Promise.withResolvers<void>();
  Bun.connect({
    hostname: "127.0.0.1",
    port: proxyPort,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.write(new Uint8Array([...encodeGreeting([AuthMethod.noAuth]), ...encodeRequest(Command.connect, host("127.0.0.1"), targetPort)]));
        onCleanup(() => s.terminate());
      },
      data(s, d) {
        if (relaying) return side.take(d);
        const b = new Uint8Array(hs.length + d.length);
        b.set(hs);
        b.set(d, hs.length);
        hs = b;
        const m = parseMethodSelection(hs);
        if (m === NEED_MORE || m instanceof Error) return;
        const r = parseReply(hs.subarray(2));
        if (r === NEED_MORE) return;
        if (r instanceof Error || r.value.reply !== 0) return ready.reject(new Error(`proxy refused: ${JSON.stringify(r)}`));
        relaying = true;
        ready.resolve();
        const rest = hs.subarray(2 + r.consumed);
        if (rest.length) side.take(rest);
        side.pump(s);
      },
      drain(s) {
        side.pump(s);
      },
      end() {
        side.eof.resolve(); // our own stream may still be going; the pump sends our FIN
      },
      close() {
        side.eof.resolve();
      },
    },
  }).catch(ready.reject);
  return ready.promise;
}

function bulkTarget(side: Pump, opts: { pauseReading?: boolean } = {}): { port: number; socket: () => Socket<undefined> | undefined } {
  let sock: Socket<undefined> | undefined;
  const port = target<undefined>({
    open(s) {
      sock = s;
      if (opts.pauseReading) s.pause();
      side.pump(s);
    },
    data(_s, d) {
      side.take(d);
    },
    drain(s) {
      side.pump(s);
    },
    end() {
      side.eof.resolve();
    },
    close() {
      side.eof.resolve();
    },
  });
  return { port, socket: () => sock };
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]);
}

test("1 GiB each way at the same time, intact (SHA-256 on both ends)", async () => {
  const GiB = 1 << 30;
  const pattern = crypto.getRandomValues(new Uint8Array(4 << 20));
  const client = new Pump(GiB, pattern);
  const server = new Pump(GiB, pattern.slice().reverse());
  const t = bulkTarget(server);
  const t0 = Date.now();
  await socksStream(proxy.port, t.port, client);
  await Promise.all([client.eof.promise, server.eof.promise]);
  const seconds = (Date.now() - t0) / 1000;
  expect(server.receivedBytes).toBe(GiB);
  expect(client.receivedBytes).toBe(GiB);
  expect(server.received.digest("hex")).toBe(client.sent.digest("hex"));
  expect(client.received.digest("hex")).toBe(server.sent.digest("hex"));
  // the proxy's own accounting agrees
  await until(() => /up=1073741824 down=1073741824/.test(proxy.stderr()));
  console.log(`1 GiB each way in ${seconds.toFixed(1)} s (${((2 * GiB) / seconds / 1e6).toFixed(0)} MB/s total)`);
}, 120_000);

test("backpressure: a target that stops reading stops the client, and the proxy does not buffer", async () => {
  const total = 512 << 20;
  const client = new Pump(total, crypto.getRandomValues(new Uint8Array(1 << 20)));
  const server = new Pump(0, new Uint8Array(1));
  const t = bulkTarget(server, { pauseReading: true });
  const rss0 = rssKiB(proxy.proc.pid);
  await socksStream(proxy.port, t.port, client);
  await Bun.sleep(1500);
  const stuckAt = client.accepted;
  const rss1 = rssKiB(proxy.proc.pid);
  // Only kernel socket buffers hold data now: far less than what the client wanted to send.
  expect(stuckAt).toBeLessThan(160 << 20);
  expect(rss1 - rss0).toBeLessThan(64 << 10);
  await Bun.sleep(500);
  expect(client.accepted - stuckAt).toBeLessThan(1 << 20); // and it stays stuck
  t.socket()!.resume();
  await server.eof.promise;
  expect(server.receivedBytes).toBe(total);
  expect(server.received.digest("hex")).toBe(client.sent.digest("hex"));
  console.log(`stalled client at ${(stuckAt / 2 ** 20).toFixed(1)} MiB, proxy RSS +${((rss1 - rss0) / 1024).toFixed(1)} MiB`);
}, 60_000);
