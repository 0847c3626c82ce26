/**
 * Debian's tinyproxy on a loopback port, as a known-good HTTP proxy to validate the client
 * wrappers (clients.ts) against, before they are used to judge egressd.
 *
 * It runs in its own mount namespace (`unshare --mount`) with a private /etc/hosts bind-mounted
 * over the host's, so that it resolves the test names (www.example.test) to loopback without
 * touching the host's files.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A running tinyproxy. */
export interface Tinyproxy {
  readonly port: number;
  readonly url: string;
  /** Its log so far. */
  log(): string;
  stop(): Promise<void>;
}

/** True when tinyproxy and unshare are installed and we are root (the bind mount needs it). */
export function tinyproxyAvailable(): boolean {
  return Bun.which("tinyproxy") !== null && Bun.which("unshare") !== null && process.getuid?.() === 0;
}

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** Options for {@link startTinyproxy}. */
export interface TinyproxyOptions {
  /** Names it resolves, to IPv4 addresses. Default `{ "www.example.test": "127.0.0.1" }`. */
  readonly hosts?: Record<string, string>;
  /** Require Proxy-Authorization: Basic with these credentials. */
  readonly auth?: { readonly user: string; readonly password: string };
  /** Host names it refuses with 403, plain requests and CONNECT alike (tinyproxy's Filter). */
  readonly deny?: readonly string[];
}

/** Starts tinyproxy and waits until it accepts connections. */
export async function startTinyproxy(opts: TinyproxyOptions = {}): Promise<Tinyproxy> {
  const dir = mkdtempSync(join(tmpdir(), "egressd-tinyproxy-"));
  const port = freePort();
  const hosts = Object.entries(opts.hosts ?? { "www.example.test": "127.0.0.1" }).map(([n, a]) => `${a} ${n}`);
  writeFileSync(join(dir, "hosts"), ["127.0.0.1 localhost", ...hosts].join("\n") + "\n");
  const conf = [
    "User nobody",
    "Group nogroup",
    `Port ${port}`,
    "Listen 127.0.0.1",
    "Timeout 60",
    "LogLevel Info",
    "MaxClients 50",
    "Allow 127.0.0.1",
    "DisableViaHeader Yes",
    ...(opts.auth ? [`BasicAuth ${opts.auth.user} ${opts.auth.password}`] : []),
    ...(opts.deny ? [`Filter "${join(dir, "filter")}"`, "FilterURLs Off", "FilterType fnmatch"] : []),
  ];
  if (opts.deny) writeFileSync(join(dir, "filter"), opts.deny.join("\n") + "\n");
  writeFileSync(join(dir, "tinyproxy.conf"), conf.join("\n") + "\n");
  const script = `mount --bind "$1/hosts" /etc/hosts && exec tinyproxy -d -c "$1/tinyproxy.conf"`;
  const proc = Bun.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", dir], { stdout: "pipe", stderr: "pipe" });
  let log = "";
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) log += new TextDecoder().decode(chunk);
  };
  void drain(proc.stdout);
  void drain(proc.stderr);
  const stop = async () => {
    proc.kill("SIGTERM");
    await proc.exited;
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) break;
    try {
      const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      s.end();
      return { port, url: `http://127.0.0.1:${port}`, log: () => log, stop };
    } catch {
      await Bun.sleep(50);
    }
  }
  await stop();
  throw new Error(`tinyproxy did not start on 127.0.0.1:${port}: ${log}`);
}
