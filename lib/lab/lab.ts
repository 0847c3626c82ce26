/**
 * The network-namespace lab: builds the topology of topology.ts, brings the exit up from
 * `egressd exit-config` output (wg-quick with wireguard-go, exit-config.ts), and gives tests (and `egressd demo`) what they need to drive it: runners and commands
 * as a given uid inside a namespace, long-running children, packet captures, and guaranteed cleanup.
 *
 * Root only. Everything it starts is tracked by pid and stopped by pid; `destroy()` also stops any
 * process still inside the lab's namespaces (they can only be ours) before deleting them, because a live
 * process keeps a deleted namespace's interfaces alive. {@link cleanupStaleLabs} removes labs whose
 * creating process is gone.
 *
 * The exit (and wireguard-go run by the host manager as the lab uid) need /run/wireguard to be
 * writable by that uid. By default (`wireguardDir: "private"`) the lab leaves the host's directory
 * alone: a holder process in the inet namespace mounts a tmpfs there in a mount namespace of its own,
 * and every lab command enters that mount namespace first (`nsenter --mount`), so the lab's
 * wireguard-go sockets are shared by the lab's processes and invisible to the host, and vanish with
 * the holder. Processes started outside the lab's helpers must use {@link Lab.prefix}. The old `host`
 * mode makes the host's /run/wireguard mode 1777 instead, which lets any local user plant a socket
 * that root's `wg` would talk to; nothing uses it any more.
 */
import { ROUTING_DEFAULTS } from "../config/schema.ts";
import { mkdir, mkdtemp, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRunner, type ChildHandle, type Runner, type StartOptions } from "../exec/runner.ts";
import { silentLogger, type Logger } from "../log/logger.ts";
import { runnerSysctl, type SysctlAccess } from "../host/sysctl.ts";
import type { HostSpec } from "../host/spec.ts";
import { startLabExit } from "./exit-config.ts";
import { LAB_ADDRESSES, planLab, type LabNamespaces, type LabPlan } from "./topology.ts";
import { startExtraExit, type LabExit } from "./second-exit.ts";
import { cleanupStaleLabs, ensureMountpoint, ensureWireguardRunDir, removeNamespaces, startMountHolder, WIREGUARD_RUN_DIR } from "./namespaces.ts";
import { waitUntil } from "./wait.ts";

export { cleanupStaleLabs } from "./namespaces.ts";

export type { LabExit } from "./second-exit.ts";

/** The uid tests run the "daemon" as: not root, not a real user. */
export const DEFAULT_LAB_UID = 64000;

/** How to run something inside a namespace. */
export interface AsUser {
  /** Run as this uid (and gid), with no supplementary groups. Default: root. */
  uid?: number;
  /** With `uid`: grant CAP_NET_ADMIN as an ambient capability, like systemd would. Default false. */
  netAdmin?: boolean;
}

/** Options for {@link Lab.exec}. */
export interface ExecOptions extends AsUser {
  stdin?: string;
  /** Kill after this many ms. Default 10000. */
  timeoutMs?: number;
}

/** The outcome of {@link Lab.exec}; never thrown, tests assert on it. */
export interface ExecResult {
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  readonly timedOut: boolean;
}

/** A running packet capture. */
export interface Capture {
  /** Stops tcpdump and returns the packets it printed (one line each). */
  stop(): Promise<{ count: number; lines: string[] }>;
}

/** Options for {@link createLab}. */
export interface LabOptions {
  /** Namespace prefix. Default `egt`. */
  prefix?: string;
  /** Uid of the "daemon" (the marked uid). Default {@link DEFAULT_LAB_UID}. */
  uid?: number;
  /** Remove stale labs with the same prefix first. Default true. */
  cleanupStale?: boolean;
  /** Default {@link silentLogger}. */
  log?: Logger;
  /**
   * The WireGuard private keys to use instead of generating them with `wg genkey` (`egressd demo`
   * generates its own with `egressd genkey`). Default: fresh keys.
   */
  keys?: { exit: string; gateway: string };
  /**
   * Configure the exit from `egressd exit-config` output: the wg-quick file and nft rules rendered
   * from the gateway's config, brought up with `wg-quick up` (exit-config.ts). Default true. With
   * false the exit's interface (wireguard-go) is up with its addresses but no key and no peer, the
   * plan's blanket masquerade stands in for the rendered rules, and the caller applies its own
   * config, e.g. `wg setconf` through `lab.runner(lab.ns.exit)`.
   */
  configureExit?: boolean;
  /**
   * Where wireguard-go's control sockets live: `private` mounts a tmpfs over /run/wireguard for the
   * lab's processes only; `host` makes the host's directory mode 1777 (see the module comment).
   * Default `private`.
   */
  wireguardDir?: "host" | "private";
  /** Masquerade the client's LAN out of gw's WAN, as a home router does ({@link planLab}). Default false. */
  homeNat?: boolean;
  /** 2 builds a second VPS namespace with its own WireGuard exit (topology.ts); see {@link Lab.exitsSpec}. Default 1. */
  exits?: 1 | 2 | 3;
}

/** A built lab. See the module comment. */
export interface Lab {
  readonly plan: LabPlan;
  readonly ns: LabNamespaces;
  readonly addr: typeof LAB_ADDRESSES;
  /** The marked uid. */
  readonly uid: number;
  /** The exit side, as the gateway's HostSpec needs it. */
  readonly exit: { readonly publicKey: string; readonly endpoint: string; readonly port: number; readonly pid: number };
  /** The gateway's key pair; the private key file is 0600 root (the host manager reads it in-process). */
  readonly gateway: { readonly privateKeyFile: string; readonly publicKey: string; readonly wgName: string };
  /** Every VPS: one, two with `exits: 2`, three with `exits: 3`. */
  readonly exits: readonly LabExit[];
  /**
   * With `exits: 2`: a HostSpec with both exits (`exits`), each with its own gateway interface and
   * tunnel addresses; overrides as for {@link hostSpec}.
   */
  exitsSpec(overrides?: { interface?: Partial<HostSpec["interface"]>; routing?: Partial<HostSpec["routing"]>; uid?: number }): HostSpec;
  /** A HostSpec for the gateway namespace, with overrides applied per section. */
  hostSpec(overrides?: { interface?: Partial<HostSpec["interface"]>; exit?: Partial<HostSpec["exit"]>; routing?: Partial<HostSpec["routing"]>; uid?: number }): HostSpec;
  /** A runner whose commands run in `ns` (as `uid`, with CAP_NET_ADMIN if asked). `path` overrides PATH. */
  runner(ns: string, opts?: AsUser & { path?: string; log?: Logger }): Runner;
  /**
   * The argv prefix that runs a command in `ns` (as `opts`' uid) the way the lab's own helpers do,
   * inside the lab's mount namespace, for processes the caller spawns itself.
   */
  prefix(ns: string, opts?: AsUser): string[];
  /** sysctl access inside `ns` (through `runner(ns, opts)`). */
  sysctl(ns: string, opts?: AsUser): SysctlAccess;
  /** Runs a command in `ns` and returns its outcome (non-zero exits are not errors). */
  exec(ns: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Starts a long-running command in `ns`; it is stopped by `destroy()` if still running. `env` adds
   * to its environment; `onLine` receives each line it prints.
   */
  spawn(ns: string, argv: readonly string[], opts?: AsUser & StartOptions): ChildHandle;
  /** Starts `tcpdump -i iface filter` in `ns`, resolved once tcpdump is listening. */
  capture(ns: string, iface: string, filter: string): Promise<Capture>;
  /**
   * Starts a TCP server on the internet host that answers each connection with the client's
   * address and a newline, then its FIN, and closes once the client has closed (at most 5 s).
   */
  startEchoServer(port: number): Promise<ChildHandle>;
  /** Stops everything, deletes the namespaces and temp files. Idempotent. */
  destroy(): Promise<void>;
}

let labSeq = 0;

/**
 * The argv prefix that runs a command inside `ns`, optionally as `uid` (gid = uid, no supplementary
 * groups) with CAP_NET_ADMIN as an ambient capability — what systemd's `AmbientCapabilities=` gives the
 * daemon. Every word execs, so the pid of the spawned process is the command's own. Pure.
 */
export function nsPrefix(ns: string, as: AsUser = {}): string[] {
  const p = ["ip", "netns", "exec", ns];
  if (as.uid !== undefined) {
    p.push("setpriv", `--reuid=${as.uid}`, `--regid=${as.uid}`, "--clear-groups");
    if (as.netAdmin) p.push("--inh-caps=+net_admin", "--ambient-caps=+net_admin");
  }
  return p;
}

/** Builds a lab; on failure, removes whatever it had built and rethrows. */
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const prefix = opts.prefix ?? "egt";
  const log = opts.log ?? silentLogger;
  const uid = opts.uid ?? DEFAULT_LAB_UID;
  if (process.getuid?.() !== 0) throw new Error("the lab needs root (network namespaces)");
  if (opts.cleanupStale ?? true) await cleanupStaleLabs(prefix);
  const configureExit = opts.configureExit ?? true;
  // A configured exit masquerades with the rules exit-config renders; a bare one keeps the plan's.
  const plan = planLab({ prefix, seq: labSeq++, homeNat: opts.homeNat, exitMasquerade: !configureExit, exits: opts.exits });
  const root = createRunner({ log });
  const children: ChildHandle[] = [];
  const tmp = await mkdtemp(join(tmpdir(), `${plan.id}-`));
  const hostsDir = `/etc/netns/${plan.ns.gw}`;
  const privateDir = (opts.wireguardDir ?? "private") === "private";
  let createdRunDir = false;
  let destroyed = false;

  // In private mode, the holder's mount namespace (with its tmpfs on /run/wireguard) is entered first.
  let mountPrefix: string[] = [];
  const prefixFor = (ns: string, as: AsUser = {}): string[] => [...mountPrefix, ...nsPrefix(ns, as)];
  const runnerFor = (ns: string, as: AsUser & { path?: string; log?: Logger } = {}): Runner =>
    createRunner({ prefix: prefixFor(ns, as), path: as.path, log: as.log ?? log });

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    for (const c of children) c.kill("SIGKILL");
    await Promise.all(children.map((c) => c.exited));
    await removeNamespaces(Object.values(plan.ns));
    await rm(tmp, { recursive: true, force: true });
    await rm(hostsDir, { recursive: true, force: true });
    if (createdRunDir) await rmdir(WIREGUARD_RUN_DIR).catch(() => undefined); // still empty: nothing else used it
  };

  try {
    if (privateDir) createdRunDir = await ensureMountpoint(WIREGUARD_RUN_DIR);
    else await ensureWireguardRunDir();
    for (const s of plan.steps) await root.run(s.argv, s.stdin === undefined ? {} : { stdin: s.stdin });
    // The kernel adds IPv6 link-local addresses (and their routes) once both ends of a veth are up,
    // asynchronously. Wait, so that the state tests snapshot is settled when createLab returns.
    for (const [ns, dev] of plan.veths) {
      await waitUntil(async () => (await root.run(["ip", "-n", ns, "-6", "addr", "show", "dev", dev, "scope", "link"])).stdout.includes("fe80::"), 5000, `link-local address on ${ns}/${dev}`);
    }

    if (privateDir) {
      const holder = await startMountHolder(root, plan.ns.inet, uid);
      children.push(holder);
      mountPrefix = ["nsenter", `--target=${holder.pid}`, "--mount"];
    }

    const exitKey = opts.keys?.exit.trim() ?? (await root.run(["wg", "genkey"])).stdout.trim();
    const exitPub = (await root.run(["wg", "pubkey"], { stdin: exitKey })).stdout.trim();
    const gwKey = opts.keys?.gateway.trim() ?? (await root.run(["wg", "genkey"])).stdout.trim();
    const gwPub = (await root.run(["wg", "pubkey"], { stdin: gwKey })).stdout.trim();
    const privateKeyFile = join(tmp, "gateway.key");
    await writeFile(privateKeyFile, gwKey + "\n", { mode: 0o600 });

    // The exit. Configured: from `egressd exit-config` output, brought up by wg-quick (exit-config.ts).
    // Not configured: a bare wireguard-go interface with its addresses, for the caller to set up.
    const exitRun = runnerFor(plan.ns.exit);
    const exitWg = plan.ifs.exitWg;
    const exitEndpoint = `${LAB_ADDRESSES.exitWan4}:${plan.exitPort}`;
    let exitPid: number;
    if (configureExit) {
      const input = { interfaceName: exitWg, gatewayInterface: plan.ifs.gatewayWg, gatewayPrivateKeyFile: privateKeyFile, gatewayPublicKey: gwPub, exitPublicKey: exitPub, endpoint: exitEndpoint };
      exitPid = (await startLabExit(exitRun, { input, privateKey: exitKey, dir: tmp, ns: plan.ns.exit })).pid;
    } else {
      const wgo = exitRun.start(["wireguard-go", "-f", exitWg], { env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1", LOG_LEVEL: "error" } });
      children.push(wgo);
      await waitUntil(async () => (await exitRun.run(["wg", "show", exitWg, "dump"]).then(() => true, () => false)) || wgo.exitStatus !== null, 5000, "exit wireguard-go");
      if (wgo.exitStatus !== null) throw new Error(`exit wireguard-go exited: ${wgo.outputTail()}`);
      await exitRun.run(["ip", "address", "add", LAB_ADDRESSES.tunnelExit4, "dev", exitWg]);
      await exitRun.run(["ip", "-6", "address", "add", LAB_ADDRESSES.tunnelExit6, "dev", exitWg, "nodad"]);
      await exitRun.run(["ip", "link", "set", "dev", exitWg, "mtu", "1420", "up"]);
      exitPid = wgo.pid;
    }

    const exits: LabExit[] = [
      {
        name: "lab-exit",
        ns: plan.ns.exit,
        wg: exitWg,
        publicKey: exitPub,
        endpoint: exitEndpoint,
        wan4: LAB_ADDRESSES.exitWan4,
        pid: exitPid,
        gatewayWg: plan.ifs.gatewayWg,
        gatewayAddresses: [LAB_ADDRESSES.tunnelGw4, LAB_ADDRESSES.tunnelGw6],
      },
    ];
    if (plan.ns.exit2) exits.push(await startExtraExit(runnerFor(plan.ns.exit2), plan, { gwPub, children, root, nth: 2 }));
    if (plan.ns.exit3) exits.push(await startExtraExit(runnerFor(plan.ns.exit3), plan, { gwPub, children, root, nth: 3 }));

    // gw resolves the exit's name through its own hosts file (ip netns exec bind-mounts it).
    await mkdir(hostsDir, { recursive: true });
    await writeFile(join(hostsDir, "hosts"), `127.0.0.1 localhost\n${LAB_ADDRESSES.exitWan4} ${plan.exitHostName}\n`);

    const lab: Lab = {
      plan,
      ns: plan.ns,
      addr: LAB_ADDRESSES,
      uid,
      exit: { publicKey: exitPub, endpoint: exitEndpoint, port: plan.exitPort, pid: exitPid },
      exits,
      exitsSpec(o = {}) {
        if (exits.length < 2) throw new Error("exitsSpec needs a lab created with exits: 2 or 3");
        const base = lab.hostSpec({ interface: o.interface, routing: o.routing, uid: o.uid });
        const list = exits.map((e) => ({
          exit: { ...base.exit, name: e.name, publicKey: e.publicKey, endpoint: e.endpoint },
          interfaceName: e.gatewayWg,
          addresses: e.gatewayAddresses,
        }));
        return { ...base, interface: { ...base.interface, name: list[0]!.interfaceName, addresses: list[0]!.addresses }, exit: list[0]!.exit, exits: list };
      },
      gateway: { privateKeyFile, publicKey: gwPub, wgName: plan.ifs.gatewayWg },
      hostSpec(o = {}) {
        return {
          interface: {
            name: plan.ifs.gatewayWg,
            privateKeyFile,
            addresses: [LAB_ADDRESSES.tunnelGw4, LAB_ADDRESSES.tunnelGw6],
            mtu: 1420,
            implementation: "auto",
            listenPort: null,
            ...o.interface,
          },
          exit: {
            name: "lab-exit",
            publicKey: exitPub,
            endpoint: exitEndpoint,
            presharedKeyFile: null,
            persistentKeepalive: 25,
            allowedIps: ["0.0.0.0/0", "::/0"],
            ...o.exit,
          },
          routing: {
            ...ROUTING_DEFAULTS,
            allowDestinations: [],
            ...o.routing,
          },
          uid: o.uid ?? uid,
        };
      },
      runner: runnerFor,
      prefix: (ns: string, as: AsUser = {}) => prefixFor(ns, as),
      sysctl: (ns, as = {}) => runnerSysctl(runnerFor(ns, as)),
      async exec(ns, argv, o = {}) {
        return execIn(prefixFor(ns, o), argv, o);
      },
      spawn(ns, argv, o = {}) {
        const child = runnerFor(ns, o).start(argv, { env: o.env, onLine: o.onLine });
        children.push(child);
        return child;
      },
      async capture(ns, iface, filter) {
        let listening = false;
        const lines: string[] = [];
        const child = runnerFor(ns).start(["tcpdump", "-i", iface, "-n", "-l", "-q", "--immediate-mode", filter], {
          onLine: (line, stream) => {
            if (stream === "stderr" && /listening on/.test(line)) listening = true;
            else if (stream === "stdout" && line.trim() !== "") lines.push(line);
          },
        });
        children.push(child);
        await waitUntil(async () => listening || child.exitStatus !== null, 5000, "tcpdump");
        if (child.exitStatus !== null) throw new Error(`tcpdump exited: ${child.outputTail()}`);
        return {
          async stop() {
            await Bun.sleep(100); // let the last packets reach tcpdump's output
            child.kill("SIGINT");
            await child.exited;
            return { count: lines.length, lines: [...lines] };
          },
        };
      },
      async startEchoServer(port) {
        const child = lab.spawn(plan.ns.inet, ["python3", "-c", ECHO_SERVER, String(port)]);
        await waitUntil(async () => (await execIn(prefixFor(plan.ns.inet), ["ncat", "--recv-only", "-w", "1", LAB_ADDRESSES.host4, String(port)], {})).exitCode === 0 || child.exitStatus !== null, 5000, "echo server");
        if (child.exitStatus !== null) throw new Error(`echo server exited: ${child.outputTail()}`);
        return child;
      },
      destroy,
    };
    return lab;
  } catch (err) {
    await destroy().catch((cleanupErr: unknown) => log.error("lab cleanup failed", { error: String(cleanupErr) }));
    throw err;
  }
}

/**
 * The echo server's program. It reads what the client sends until the client's FIN instead of
 * closing at once, as `ncat --sh-exec 'echo ...'` did: a request that arrived after that close (a
 * slow path through the tunnel) made the server's kernel reset the connection, and the client lost
 * the answer it had not read yet. That is TCP, not the proxy; a test must not depend on the race.
 */
const ECHO_SERVER = `
import socket, sys, threading
port = int(sys.argv[1])
try:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
except OSError:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
s.listen(512)
def serve(c, peer):
    try:
        c.settimeout(5)
        host = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
        c.sendall((host + "\\n").encode())
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
`;

async function execIn(prefix: readonly string[], argv: readonly string[], o: ExecOptions): Promise<ExecResult> {
  const started = performance.now();
  const proc = Bun.spawn([...prefix, ...argv], {
    stdin: o.stdin === undefined ? "ignore" : new TextEncoder().encode(o.stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, LC_ALL: "C" },
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, o.timeoutMs ?? 10_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { exitCode: proc.signalCode ? null : code, stdout, stderr, durationMs: performance.now() - started, timedOut };
}

