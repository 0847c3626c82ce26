/**
 * A pool of SOCKS5 connections held open, driven over stdin/stdout by the e2e tests (helpers.ts
 * startPool). Runs inside the client namespace: `bun socks-pool.ts PROXY_HOST:PORT ECHO_HOST ECHO_PORT`.
 * Uses the `socks` npm package, a client independent of egressd's own SOCKS code.
 *
 * One JSON request per line in, one JSON reply per line out:
 *   {"op":"open","n":200}          -> {"opened":200,"failed":0,"errors":[]}
 *   {"op":"echo","timeoutMs":5000} -> {"ok":200,"failed":0,"errors":[]}   (a unique line on each, echoed back)
 */
import type { Socket } from "node:net";
import { SocksClient } from "socks";

const [proxy, echoHost, echoPort] = process.argv.slice(2);
const [proxyHost, proxyPort] = [proxy!.slice(0, proxy!.lastIndexOf(":")), Number(proxy!.slice(proxy!.lastIndexOf(":") + 1))];

interface Conn {
  socket: Socket;
  buf: string;
  closed: string | null;
}
const conns: Conn[] = [];
let round = 0;

async function open(n: number) {
  const errors: string[] = [];
  const results = await Promise.allSettled(
    Array.from({ length: n }, () =>
      SocksClient.createConnection({
        proxy: { host: proxyHost, port: proxyPort, type: 5 },
        command: "connect",
        destination: { host: echoHost!, port: Number(echoPort) },
        timeout: 10_000,
      }),
    ),
  );
  for (const r of results) {
    if (r.status === "rejected") {
      errors.push(String(r.reason?.message ?? r.reason));
      continue;
    }
    const c: Conn = { socket: r.value.socket, buf: "", closed: null };
    c.socket.setEncoding("utf8");
    c.socket.on("data", (d: string) => (c.buf += d));
    c.socket.on("close", () => (c.closed ??= "closed by peer"));
    c.socket.on("error", (e) => (c.closed = e.message));
    conns.push(c);
  }
  return { opened: results.length - errors.length, failed: errors.length, errors: [...new Set(errors)].slice(0, 5) };
}

async function echo(timeoutMs: number) {
  round++;
  const errors: string[] = [];
  let ok = 0;
  await Promise.all(
    conns.map(async (c, i) => {
      const line = `round ${round} conn ${i} ${Math.random().toString(36).slice(2)}\n`;
      if (c.closed) {
        errors.push(c.closed);
        return;
      }
      c.buf = "";
      c.socket.write(line);
      const deadline = Date.now() + timeoutMs;
      while (!c.buf.includes(line) && !c.closed && Date.now() < deadline) await Bun.sleep(10);
      if (c.buf.includes(line)) ok++;
      else errors.push(c.closed ?? "no echo in time");
    }),
  );
  return { ok, failed: conns.length - ok, errors: [...new Set(errors)].slice(0, 5) };
}

const decoder = new TextDecoder();
let buf = "";
for await (const chunk of Bun.stdin.stream()) {
  buf += decoder.decode(chunk, { stream: true });
  let nl: number;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const req = JSON.parse(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    const reply = req.op === "open" ? await open(req.n) : req.op === "echo" ? await echo(req.timeoutMs ?? 10_000) : { error: `unknown op ${req.op}` };
    process.stdout.write(JSON.stringify(reply) + "\n");
  }
}
