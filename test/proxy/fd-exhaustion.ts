/**
 * Run by exhaustion.test.ts under `prlimit --nofile=128:128`:
 *
 *   bun test/proxy/fd-exhaustion.ts ECHO_PORT
 *
 * Starts a ProxyServer on 127.0.0.1:0 (allowing 127.0.0.0/8) and prints `{"port":N}`. Then takes
 * commands on stdin, one a line, and answers each with one JSON line:
 * - `fill`: opens /dev/null until EMFILE, then closes one, so that the next accept gets the last
 *   fd and the outbound socket finds none (fds eaten outside the proxy's own count, as other
 *   parts of a daemon would);
 * - `free`: closes them again;
 * - `stats`: the server's counters;
 * - `reload`: `update()` with maxConnections 20000, answering with the warnings logged.
 */
import { closeSync, openSync } from "node:fs";
import { parseCidr, parseIp } from "../../lib/net/ip.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { ProxyServer } from "../../lib/proxy/server.ts";

const lines: string[] = [];
const log = createLogger({ level: "warn", format: "text", write: (l) => lines.push(l) });

const options = {
  listeners: [{ host: "127.0.0.1", port: 0 }],
  allowClients: [parseCidr("127.0.0.0/8")],
  allowDestinations: [parseCidr("127.0.0.0/8")],
  resolve: async () => [parseIp("127.0.0.1")!],
  maxConnections: 20,
  log,
};
const server = new ProxyServer(options);
server.start();
const held: number[] = [];
console.log(JSON.stringify({ port: Number(/:(\d+)$/.exec(server.listening[0]!)![1]) }));

for await (const line of console) {
  const cmd = line.trim();
  if (cmd === "fill") {
    try {
      for (;;) held.push(openSync("/dev/null", "r"));
    } catch (err) {
      closeSync(held.pop()!);
      console.log(JSON.stringify({ filled: held.length, code: (err as { code?: string }).code }));
    }
  } else if (cmd === "free") {
    for (const fd of held.splice(0)) closeSync(fd);
    console.log(JSON.stringify({ freed: true }));
  } else if (cmd === "reload") {
    lines.length = 0;
    server.update({ ...options, maxConnections: 20000 });
    console.log(JSON.stringify({ warnings: lines.filter((l) => / warn /.test(l)) }));
  } else if (cmd === "stats") {
    const s = server.stats;
    console.log(JSON.stringify({ connectionsTotal: s.connectionsTotal, acceptPauses: s.acceptPauses, listening: server.listening }));
  }
}
