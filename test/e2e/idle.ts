/**
 * Idle connections through the tunnel: open N SOCKS connections from the client to the TCP echo on
 * the internet host, check that each echoes, leave them idle, and check again at the end. Shared by
 * the short CI version (idle.test.ts) and the 20-minute one (bench/idle-tunnel.ts).
 */
import type { Bed } from "./helpers.ts";
import { startPool } from "./helpers.ts";

/** What an idle hold found. */
export interface IdleResult {
  connections: number;
  opened: number;
  idleMs: number;
  echoedBefore: number;
  echoedAfter: number;
  /** egressd's count of active connections just before the final echo. */
  activeAtEnd: number;
  errors: string[];
}

/** Holds `connections` connections idle for `idleMs`; `progress` is called about once a minute. */
export async function holdIdle(bed: Bed, connections: number, idleMs: number, progress: (line: string) => void = () => {}): Promise<IdleResult> {
  const pool = startPool(bed.lab);
  try {
    const opened = await pool.open(connections);
    const before = await pool.echo();
    progress(`opened ${opened.opened}/${connections}, ${before.ok} echoed; idle for ${Math.round(idleMs / 1000)} s`);
    const start = Date.now();
    while (Date.now() - start < idleMs) {
      await Bun.sleep(Math.min(60_000, idleMs - (Date.now() - start)));
      const s = await bed.gw.status();
      const peer = s.peers[0];
      progress(`idle ${Math.round((Date.now() - start) / 1000)} s: egressd reports ${s.proxy.active} active connections, handshake ${peer?.latestHandshake ? `${Math.round(Date.now() / 1000 - peer.latestHandshake)} s ago` : "never"}`);
    }
    const activeAtEnd = (await bed.gw.status()).proxy.active;
    const after = await pool.echo(20_000);
    progress(`after ${Math.round(idleMs / 1000)} s idle: ${after.ok}/${opened.opened} echoed`);
    return { connections, opened: opened.opened, idleMs, echoedBefore: before.ok, echoedAfter: after.ok, activeAtEnd, errors: [...opened.errors, ...before.errors, ...after.errors] };
  } finally {
    await pool.close();
  }
}
