/**
 * The long idle hold the CI tests cannot afford: connections through egressd and through
 * microsocks sit idle for longer than microsocks's 15-minute reaper (its copy loop gives up when
 * poll() sees no byte for 15 minutes), then must still carry a byte each way.
 *
 *   bench/run.sh idle-hold [--minutes 16] [--conns 4]
 *
 * egressd runs with its defaults: no idle timeout, TCP keepalive after 60 s idle on both legs.
 * Prints, per proxy, when each connection was closed (if it was) and whether it still echoes.
 */
import { join } from "node:path";
import { viaSocks, waitForPort, type Conn } from "./client.ts";

const ROOT = join(import.meta.dir, "..");
const BUN = join(ROOT, "node_modules", ".bin", "bun");
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const MINUTES = arg("minutes", 16);
const CONNS = arg("conns", 4);

const children: ReturnType<typeof Bun.spawn>[] = [];
const stopAll = async () => {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => c.exited));
};

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

async function start(argv: string[], port: number): Promise<void> {
  children.push(Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: Bun.file(`/tmp/egressd-idle-hold-${argv[0]!.split("/").pop()}.log`) }));
  await waitForPort(port).catch((e) => {
    throw new Error(`${argv[0]} did not start`, { cause: e });
  });
}

async function echo(c: Conn, ms = 5000): Promise<boolean> {
  return Promise.race([
    new Promise<boolean>((resolve) => {
      c.onData = () => resolve(true);
      if (c.socket.write(Uint8Array.of(0x21)) !== 1) resolve(false);
    }),
    Bun.sleep(ms).then(() => false),
  ]);
}

try {
  const targets = Bun.spawn([BUN, join(import.meta.dir, "targets.ts")], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  children.push(targets);
  const { value } = await (targets.stdout as ReadableStream<Uint8Array>).getReader().read();
  const { idle } = JSON.parse(new TextDecoder().decode(value)) as { idle: number };
  const ports = { egressd: freePort(), microsocks: freePort() };
  await start([BUN, join(ROOT, "main.ts"), "proxy", "--listen", `127.0.0.1:${ports.egressd}`, "--allow-destination", "127.0.0.0/8"], ports.egressd);
  await start(["microsocks", "-i", "127.0.0.1", "-p", String(ports.microsocks)], ports.microsocks);

  const t0 = Date.now();
  const sets: Record<string, { conn: Conn; closedAt: number | null }[]> = {};
  for (const [name, port] of Object.entries(ports)) {
    sets[name] = [];
    for (let i = 0; i < CONNS; i++) {
      const conn = await viaSocks(port, idle);
      if (!(await echo(conn))) throw new Error(`${name}: no echo before the hold`);
      const entry = { conn, closedAt: null as number | null };
      void conn.closed.then(() => (entry.closedAt = Date.now() - t0));
      sets[name]!.push(entry);
    }
  }
  console.log(`holding ${CONNS} idle connections through each proxy for ${MINUTES} min (microsocks reaps after 15 min without a byte)`);
  for (let m = 1; m <= MINUTES; m++) {
    await Bun.sleep(60_000);
    const open = Object.entries(sets).map(([n, s]) => `${n} ${s.filter((e) => e.closedAt === null).length}/${CONNS} open`);
    console.log(`  ${m} min: ${open.join(", ")}`);
  }
  for (const [name, s] of Object.entries(sets)) {
    let alive = 0;
    for (const e of s) if (e.closedAt === null && (await echo(e.conn))) alive++;
    const closed = s.filter((e) => e.closedAt !== null).map((e) => `${(e.closedAt! / 60_000).toFixed(2)} min`);
    console.log(`${name.padEnd(10)} after ${MINUTES} min idle: ${alive}/${CONNS} still echo${closed.length ? `; closed by the proxy at ${closed.join(", ")}` : ""}`);
  }
} finally {
  await stopAll();
}
