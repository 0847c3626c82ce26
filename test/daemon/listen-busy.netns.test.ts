/**
 * The compiled daemon, in the namespace lab, refuses to start on a busy proxy address and says
 * which field and address, and who holds it when it can see that: a listener of the daemon's own
 * uid is named, one of root (whose /proc entries the unprivileged daemon cannot read) is not.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createLab, labUnsupported, type Lab } from "../lab/index.ts";
import { type LabDaemon, PYTHON, removeDaemonDirs, startLabDaemon } from "./helpers.ts";

const skip = labUnsupported();
const name = (n: string) => (skip ? `${n} [skipped: ${skip}]` : n);
let lab: Lab;
const holders: ReturnType<typeof Bun.spawn>[] = [];
const daemons: LabDaemon[] = [];

beforeAll(async () => {
  if (skip) return;
  lab = await createLab({ prefix: "egdlb" });
}, 60_000);

afterEach(async () => {
  for (const d of daemons.splice(0)) {
    d.signal("SIGKILL");
    await d.exited;
    await d.notify.close().catch(() => undefined);
  }
  for (const h of holders.splice(0)) {
    h.kill("SIGKILL");
    await h.exited;
  }
}, 30_000);

afterAll(async () => {
  await lab?.destroy();
  removeDaemonDirs();
}, 60_000);

/** A TCP listener on `host:port` in the gateway namespace, as `uid`; resolves once it listens. */
async function holdPort(host: string, port: number, uid?: number): Promise<number> {
  const script = `import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind((${JSON.stringify(host)},${port}))\ns.listen()\nprint("listening",flush=True)\ntime.sleep(300)`;
  const p = Bun.spawn([...lab.prefix(lab.ns.gw, uid === undefined ? {} : { uid }), PYTHON, "-c", script], { stdout: "pipe", stderr: "pipe" });
  holders.push(p);
  const reader = p.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!new TextDecoder().decode(value ?? new Uint8Array()).includes("listening")) throw new Error(`the holder did not listen: ${await new Response(p.stderr).text()}`);
  return p.pid;
}

async function failedStart(): Promise<{ code: number; text: string }> {
  const d = await startLabDaemon(lab, { waitReady: false });
  daemons.push(d);
  const code = await d.exited;
  return { code, text: d.logText() };
}

describe("a busy proxy address at start", () => {
  test.skipIf(skip !== null)(name("held by a process of the daemon's uid: the field, the address and the holder"), async () => {
    const pid = await holdPort(lab.addr.gwLan, 1080, lab.uid);
    const r = await failedStart();
    expect(r.code).toBe(1);
    expect(r.text).toContain(`proxy.listen[0] ${lab.addr.gwLan}:1080: address already in use (held by pid ${pid} python3)`);
    expect(r.text).toContain("egressd could not start");
  }, 90_000);

  test.skipIf(skip !== null)(name("held by root, which the daemon cannot see into: the field and the address"), async () => {
    await holdPort(lab.addr.gwLan, 1080);
    const r = await failedStart();
    expect(r.code).toBe(1);
    expect(r.text).toContain(`proxy.listen[0] ${lab.addr.gwLan}:1080: address already in use`);
    expect(r.text).not.toContain("held by");
  }, 90_000);
});
