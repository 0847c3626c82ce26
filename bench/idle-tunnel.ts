/**
 * Idle connections through the whole path, the long version (on demand, not in CI):
 *
 *   node_modules/.bin/bun bench/idle-tunnel.ts [--connections 200] [--minutes 20]      (as root)
 *
 * Builds the e2e lab (client, gw running the compiled dist/egressd as uid 64000 with ambient
 * CAP_NET_ADMIN, exit, internet host), opens the connections from the client through the proxy and
 * the WireGuard tunnel to a TCP echo on the internet host, checks that each echoes, leaves them all
 * idle, and checks again at the end. 20 minutes is past microsocks's 15-minute idle reaper, the bar
 * the issue sets. Prints egressd's view once a minute and one result line; exit 0 when every
 * connection still echoes. CI runs the same code for 60 s (test/e2e/idle.test.ts).
 *
 * bench/idle-hold.ts is the proxy alone against microsocks on loopback; this one is the tunnel path.
 */
import { labUnsupported } from "../test/lab/index.ts";
import { startGateway } from "../test/e2e/helpers.ts";
import { holdIdle } from "../test/e2e/idle.ts";

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}
const CONNECTIONS = Number(flag("connections", "200"));
const MINUTES = Number(flag("minutes", "20"));

const skip = labUnsupported();
if (skip) {
  console.error(`idle-tunnel: ${skip}`);
  process.exit(2);
}
const t0 = Date.now();
const stamp = () => `[${new Date().toISOString().slice(11, 19)} +${Math.round((Date.now() - t0) / 1000)} s]`;
const bed = await startGateway({ dns: false });
let ok = false;
try {
  console.log(`${stamp()} idle-tunnel: ${CONNECTIONS} connections, ${MINUTES} min idle, through ${bed.lab.ns.gw} (egressd pid ${bed.gw.daemon.pid})`);
  const r = await holdIdle(bed, CONNECTIONS, MINUTES * 60_000, (l) => console.log(`${stamp()} ${l}`));
  ok = r.opened === CONNECTIONS && r.echoedBefore === CONNECTIONS && r.echoedAfter === CONNECTIONS;
  console.log(
    `${stamp()} idle-tunnel result: ${ok ? "PASS" : "FAIL"}: ${r.echoedAfter}/${r.connections} connections echoed after ${MINUTES} min idle ` +
      `(opened ${r.opened}, echoed before ${r.echoedBefore}, egressd active at the end ${r.activeAtEnd})${r.errors.length ? `; errors: ${r.errors.join("; ")}` : ""}`,
  );
} finally {
  await bed.destroy();
}
process.exit(ok ? 0 : 1);
