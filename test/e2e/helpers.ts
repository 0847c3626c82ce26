/**
 * The end-to-end bed: the lab of lib/lab (client, gw, exit, inet) with the compiled egressd running in
 * gw as uid 64000 with ambient CAP_NET_ADMIN, the way the systemd unit runs it, plus the servers and
 * clients the e2e tests drive: an address echo (ncat) and a TCP echo on the internet host, dnsmasq for
 * `socks5h` names, and a pool of SOCKS connections held open from the client namespace.
 *
 * The binary is the shared private copy of dist/egressd from test/lab/binary.ts (built there when
 * missing or stale), so that a concurrent `bun run build` cannot swap it under a running
 * daemon.
 * Every lab uses a private /run/wireguard and the home router's NAT (lib/lab's `wireguardDir:
 * "private"`, `homeNat`), as `egressd demo` does.
 */
import { chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { controlRequest } from "../../lib/daemon/control.ts";
import type { DaemonStatus } from "../../lib/daemon/status.ts";
import type { ChildHandle } from "../../lib/exec/runner.ts";
import { egressdBinary } from "../lab/binary.ts";
import { createLab, type ExecResult, type Lab, waitUntil } from "../lab/index.ts";

export { egressdBinary };

/** The repository root. */
export const ROOT = resolve(import.meta.dir, "../..");
/** Debian's python3, which has python3-socks (PySocks); not a pyenv python on PATH. */
export const PYTHON = "/usr/bin/python3";
/** The bun running the tests, for the helper scripts run inside namespaces. */
export const BUN = process.execPath;
/** The name dnsmasq answers on the internet host. */
export const DNS_NAME = "what.example";
/** Ports on the internet host: the address echo (ncat) and the TCP echo. */
export const WHOAMI_PORT = 8080;
export const ECHO_PORT = 7007;
/** The lab prefix of e2e labs: stale ones of crashed runs are removed by the next run. */
export const PREFIX = "ege2e";

/** The gateway config the e2e tests start from; `patch` edits a fresh copy. */
export function baseConfig(lab: Lab, dir: string): Record<string, any> {
  return {
    interface: { name: lab.gateway.wgName, privateKeyFile: "private-key", addresses: [lab.addr.tunnelGw4, lab.addr.tunnelGw6] },
    exit: { name: "lab-exit", publicKey: lab.exit.publicKey, endpoint: lab.exit.endpoint },
    proxy: {
      listen: [`${lab.addr.gwLan}:1080`],
      allowClients: [lab.addr.lanPrefix],
      dns: { mode: "tunnel", servers: [lab.addr.host4], timeout: "2s" },
      connectTimeout: "3s",
    },
    metrics: { listen: `${lab.addr.gwLan}:9586` },
    control: { socket: join(dir, "control.sock") },
    daemon: { drainTimeout: "1s" },
  };
}

/** A running (or stopped) egressd in the lab's gateway namespace. */
export interface Gateway {
  readonly lab: Lab;
  readonly dir: string;
  readonly configFile: string;
  readonly socket: string;
  /** The current daemon process. */
  daemon: ChildHandle;
  /** Every line any daemon of this gateway logged, in order. */
  readonly log: string[];
  /** Rewrites the config file (it is read on start and on SIGHUP). */
  writeConfig(config: Record<string, any>): void;
  /** Starts a new daemon and waits until a proxied request leaves with the exit's address. */
  start(): Promise<void>;
  /** Asks the daemon's control socket for its status. */
  status(): Promise<DaemonStatus>;
  /** Waits for a log line after index `from` that matches `re`. */
  waitLog(re: RegExp, ms: number, from?: number): Promise<string>;
}

/** Options for {@link startGateway}. */
export interface GatewayOptions {
  /** Edits the base config before the first start. */
  patch?: (c: Record<string, any>) => void;
  /** Start dnsmasq on the internet host first. Default true. */
  dns?: boolean;
  /** More names dnsmasq answers, each with its address. Default none. */
  dnsNames?: Record<string, string>;
}

/** What {@link startGateway} returns: the bed, and what it started. */
export interface Bed {
  lab: Lab;
  gw: Gateway;
  /** dnsmasq's log lines (stderr), when started. */
  dnsLog: string[];
  destroy(): Promise<void>;
}

/**
 * Builds a lab, starts the address echo (:8080), the TCP echo (:7007) and dnsmasq on the internet
 * host, and egressd in gw. On failure everything is torn down before rethrowing.
 */
export async function startGateway(opts: GatewayOptions = {}): Promise<Bed> {
  const lab = await createLab({ prefix: PREFIX, wireguardDir: "private", homeNat: true });
  const dir = mkdtempSync(join(tmpdir(), "egressd-e2e-"));
  const destroy = async () => {
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    chmodSync(dir, 0o755);
    const key = join(dir, "private-key");
    copyFileSync(lab.gateway.privateKeyFile, key);
    chownSync(key, lab.uid, lab.uid);
    chmodSync(key, 0o600);
    chownSync(dir, lab.uid, lab.uid);
    await lab.startEchoServer(WHOAMI_PORT);
    await startTcpEcho(lab);
    const dnsLog: string[] = [];
    if (opts.dns ?? true) await startDnsmasq(lab, dnsLog, opts.dnsNames ?? {});
    const config = baseConfig(lab, dir);
    opts.patch?.(config);
    const gw = gateway(lab, dir, config);
    await gw.start();
    return { lab, gw, dnsLog, destroy };
  } catch (e) {
    await destroy();
    throw e;
  }
}

function gateway(lab: Lab, dir: string, config: Record<string, any>): Gateway {
  const configFile = join(dir, "config.json");
  const log: string[] = [];
  const gw: Gateway = {
    lab,
    dir,
    configFile,
    socket: config.control.socket,
    daemon: null as unknown as ChildHandle,
    log,
    writeConfig(c) {
      writeFileSync(configFile, JSON.stringify(c, null, 2));
    },
    async start() {
      await lab.exec(lab.ns.gw, ["sysctl", "-q", "-w", "net.ipv4.conf.all.src_valid_mark=1"]); // the unit's ExecStartPre
      gw.daemon = lab.spawn(lab.ns.gw, [egressdBinary(), "run", "--config", configFile, "--log-format", "text"], {
        uid: lab.uid,
        netAdmin: true,
        onLine: (l) => log.push(l),
      });
      const d = gw.daemon;
      await waitUntil(async () => {
        if (d.exitStatus !== null) throw new Error(`egressd exited during start:\n${log.slice(-20).join("\n")}`);
        return (await proxiedWhoami(lab)).stdout.trim() === lab.addr.exitWan4;
      }, 20_000, "a proxied request through the new egressd");
    },
    async status() {
      return (await controlRequest(gw.socket, "status")) as DaemonStatus;
    },
    async waitLog(re, ms, from = 0) {
      let found: string | undefined;
      await waitUntil(() => (found = log.slice(from).find((l) => re.test(l))) !== undefined, ms, `a log line matching ${re}`);
      return found!;
    },
  };
  gw.writeConfig(config);
  return gw;
}

/** `curl` through the proxy from the client to the address echo; `--http0.9` because it answers bare. */
export function proxiedWhoami(lab: Lab, opts: { target?: string; hostname?: boolean; timeoutS?: number } = {}): Promise<ExecResult> {
  const target = opts.target ?? `http://${lab.addr.host4}:${WHOAMI_PORT}/`;
  return lab.exec(lab.ns.client, ["curl", "-q", "-g", "-sS", "-m", String(opts.timeoutS ?? 3), "--http0.9", opts.hostname ? "--socks5-hostname" : "--socks5", `${lab.addr.gwLan}:1080`, target], { timeoutMs: (opts.timeoutS ?? 3) * 1000 + 2000 });
}

/** A TCP echo server on the internet host (:7007), one bun process for any number of connections. */
async function startTcpEcho(lab: Lab): Promise<ChildHandle> {
  let ready = false;
  const child = lab.spawn(lab.ns.inet, [BUN, join(import.meta.dir, "tcp-echo.ts"), lab.addr.host4, lab.addr.host6, String(ECHO_PORT)], {
    onLine: (l) => {
      if (l === "ready") ready = true;
    },
  });
  await waitUntil(() => {
    if (child.exitStatus !== null) throw new Error(`tcp echo exited: ${child.outputTail()}`);
    return ready;
  }, 10_000, "the TCP echo server");
  return child;
}

/** dnsmasq on the internet host: what.example -> 203.0.113.10, every query logged with its source. */
async function startDnsmasq(lab: Lab, lines: string[], names: Record<string, string>): Promise<ChildHandle> {
  const child = lab.spawn(lab.ns.inet, [
    "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file", "--user=root",
    "--no-resolv", "--no-hosts", `--address=/${DNS_NAME}/${lab.addr.host4}`,
    ...Object.entries(names).map(([name, ip]) => `--address=/${name}/${ip}`),
    `--listen-address=${lab.addr.host4}`, "--bind-interfaces", "--log-queries", "--log-facility=-",
  ], { onLine: (l) => lines.push(l) });
  await waitUntil(async () => {
    if (child.exitStatus !== null) throw new Error(`dnsmasq exited: ${child.outputTail()}`);
    const r = await lab.exec(lab.ns.inet, [PYTHON, "-c", DNS_QUERY_PY, lab.addr.host4, "53", "probe.invalid"], { timeoutMs: 3000 });
    return r.exitCode === 0;
  }, 10_000, "dnsmasq");
  return child;
}

/**
 * Python: send one DNS A query for argv[3] to argv[1]:argv[2] over UDP; with a 4th argument "nowait"
 * do not wait for the answer. Exits 0 when an answer came (or was not awaited), 1 otherwise.
 */
export const DNS_QUERY_PY = `
import socket, struct, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
q = struct.pack(">HHHHHH", 0x4567, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
try:
    s.sendto(q, (host, port))
    if len(sys.argv) > 4: sys.exit(0)
    s.recvfrom(512)
except OSError as e:
    print(e, file=sys.stderr); sys.exit(1)
`;

/** A pool of SOCKS connections held open from the client namespace (test/e2e/socks-pool.ts). */
export interface Pool {
  /** Opens `n` connections through the proxy to the TCP echo. */
  open(n: number): Promise<{ opened: number; failed: number; errors: string[] }>;
  /** Sends a unique line on every open connection and waits for it to come back. */
  echo(timeoutMs?: number): Promise<{ ok: number; failed: number; errors: string[] }>;
  close(): Promise<void>;
}

/** Starts the pool process in the client namespace. */
export function startPool(lab: Lab): Pool {
  const proc = Bun.spawn([...lab.prefix(lab.ns.client), BUN, join(import.meta.dir, "socks-pool.ts"), `${lab.addr.gwLan}:1080`, lab.addr.host4, String(ECHO_PORT)], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
    cwd: ROOT,
  });
  const replies: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  void (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const w = waiters.shift();
        if (w) w(line);
        else replies.push(line);
      }
    }
  })();
  const ask = async (req: Record<string, unknown>): Promise<any> => {
    const reply = new Promise<string>((res) => waiters.push(res));
    proc.stdin.write(JSON.stringify(req) + "\n");
    proc.stdin.flush();
    const line = await Promise.race([reply, proc.exited.then((c) => { throw new Error(`socks pool exited with ${c}`); })]);
    return JSON.parse(line);
  };
  return {
    open: (n) => ask({ op: "open", n }),
    echo: (timeoutMs = 10_000) => ask({ op: "echo", timeoutMs }),
    async close() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

/** Runs `ip -j ...` in a namespace and parses it. */
export async function ipJson(lab: Lab, ns: string, args: string[]): Promise<any[]> {
  const r = await lab.exec(ns, ["ip", "-j", ...args]);
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout || "[]");
}
