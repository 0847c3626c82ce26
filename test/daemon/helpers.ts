/**
 * What the daemon tests share: the compiled binary, a fake systemd notify socket, and an egressd
 * daemon run inside a lab's gateway namespace the way systemd runs it (a non-root uid with ambient
 * CAP_NET_ADMIN, NOTIFY_SOCKET set).
 *
 * The binary: dist/egressd when it is newer than every source file (test/run.sh builds it first),
 * otherwise it is compiled here, once per `bun test` process. Either way the tests run a private copy
 * (in $TMPDIR/egressd-daemon-tests), so that a concurrent `bun run build` cannot swap the file under a
 * running daemon. Daemon dirs live there too, per test process; test files remove them in afterAll.
 */
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { controlRequest } from "../../lib/daemon/control.ts";
import { egressdBinary, TEST_CACHE } from "../lab/binary.ts";
import { type Lab } from "../lab/index.ts";

export { egressdBinary };

/** The repository root. */
export const ROOT = resolve(import.meta.dir, "../..");
/** The fixtures next to this file. */
export const FIXTURES = join(import.meta.dir, "fixtures");
/** The python that runs the notify receiver. */
export const PYTHON = "/usr/bin/python3";
/** The bun running these tests, for fixture scripts run inside namespaces. */
export const BUN = process.execPath;

/** This process's dir for daemon dirs; {@link removeDaemonDirs} deletes it. */
function runDir(): string {
  const dir = join(TEST_CACHE, `run-${process.pid}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  return dir;
}

/** Deletes every daemon dir this process made. Call it in afterAll, once the daemons are gone. */
export function removeDaemonDirs(): void {
  rmSync(join(TEST_CACHE, `run-${process.pid}`), { recursive: true, force: true });
}

/** Runs the binary to completion (as root, outside any namespace unless `prefix` says). */
export async function runBinary(args: string[], opts: { prefix?: string[]; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([...(opts.prefix ?? []), egressdBinary(), ...args], { stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH, LC_ALL: "C" } });
  const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

// ---- lines from child processes ----

/** Calls `onLine` for each line of `stream`; resolves at its end. */
export async function eachLine(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      onLine(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
  }
  if (rest) onLine(rest);
}

/** Polls `check` every 20 ms until it returns a value other than undefined/false; throws after `ms`. */
export async function poll<T>(check: () => T | undefined | false | Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}

// ---- the fake notify socket ----

/** One datagram the notify socket received. */
export interface NotifyMessage {
  /** CLOCK_MONOTONIC at receipt, seconds. */
  t: number;
  /** The raw datagram. */
  msg: string;
  /** Its `KEY=value` lines. */
  fields: Record<string, string>;
}

/** What kind of notification a datagram is, by the most significant field in it. */
export type NotifyKind = "READY" | "RELOADING" | "STOPPING" | "WATCHDOG" | "STATUS" | "OTHER";

/** See {@link NotifyKind}. READY=1 with STATUS= is a READY. */
export function kindOf(m: NotifyMessage): NotifyKind {
  const f = m.fields;
  if (f.RELOADING === "1") return "RELOADING";
  if (f.READY === "1") return "READY";
  if (f.STOPPING === "1") return "STOPPING";
  if (f.WATCHDOG === "1") return "WATCHDOG";
  if ("STATUS" in f) return "STATUS";
  return "OTHER";
}

/** A bound fake notify socket. */
export interface NotifyReceiver {
  readonly address: string;
  /** Everything received so far, in order. */
  readonly messages: NotifyMessage[];
  /** Waits for a message after index `from` (default 0) that satisfies `pred`; returns it. */
  waitFor(pred: (m: NotifyMessage) => boolean, ms: number, what: string, from?: number): Promise<NotifyMessage>;
  close(): Promise<void>;
}

/** Parses `KEY=value\nKEY=value`. */
export function notifyFields(msg: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of msg.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** Binds a Unix datagram socket at `address` (a path, or `@name` for an abstract one) with python3. */
export async function startNotifyReceiver(address: string): Promise<NotifyReceiver> {
  const proc = Bun.spawn([PYTHON, join(FIXTURES, "notify-receiver.py"), address], { stdout: "pipe", stderr: "pipe" });
  const messages: NotifyMessage[] = [];
  let bound = false;
  const done = eachLine(proc.stdout, (line) => {
    const o = JSON.parse(line) as { bound?: string; t?: number; msg?: string };
    if (o.bound) bound = true;
    else messages.push({ t: o.t!, msg: o.msg!, fields: notifyFields(o.msg!) });
  });
  await poll(() => bound || proc.exitCode !== null, 5000, "the notify receiver to bind");
  if (!bound) throw new Error(`notify receiver failed: ${await new Response(proc.stderr).text()}`);
  return {
    address,
    messages,
    async waitFor(pred, ms, what, from = 0) {
      return poll(() => messages.slice(from).find(pred), ms, what);
    },
    async close() {
      proc.kill("SIGTERM");
      await proc.exited;
      await done.catch(() => undefined);
      if (!address.startsWith("@")) rmSync(address, { force: true });
    },
  };
}

// ---- a daemon in the lab ----

/** The lab config of the lead's smoke run; `dir` holds the key, the config and the control socket. */
export function labConfig(lab: Lab, dir: string): Record<string, any> {
  return {
    interface: { name: lab.gateway.wgName, privateKeyFile: "private-key", addresses: [lab.addr.tunnelGw4, lab.addr.tunnelGw6] },
    exit: { name: "lab-exit", publicKey: lab.exit.publicKey, endpoint: lab.exit.endpoint },
    proxy: { listen: [`${lab.addr.gwLan}:1080`], allowClients: [lab.addr.lanPrefix], dns: { mode: "system" } },
    metrics: { listen: `${lab.addr.gwLan}:9586` },
    control: { socket: `${dir}/control.sock` },
  };
}

/** A parsed log line (`--log-format json`); a line that is not JSON becomes `{ msg: line }`. */
export type LogLine = { level?: string; msg: string; [k: string]: unknown };

/** An egressd daemon running in the lab's gateway namespace. */
export interface LabDaemon {
  readonly dir: string;
  readonly configPath: string;
  readonly controlPath: string;
  readonly pid: number;
  readonly notify: NotifyReceiver;
  readonly logs: LogLine[];
  /** Resolves to the exit code (128 + signal number when killed by a signal). */
  readonly exited: Promise<number>;
  /** Rewrites the config file: an object as JSON, a string as is. */
  writeConfig(config: Record<string, any> | string): void;
  /** Waits for a log line after index `from` satisfying `pred`. */
  waitLog(pred: (l: LogLine) => boolean, ms: number, what: string, from?: number): Promise<LogLine>;
  /** One control request, as root from outside the namespace. */
  control(cmd: string, args?: Record<string, unknown>): Promise<any>;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then waits for the exit (SIGKILL after `ms`); returns the exit code. */
  stop(ms?: number): Promise<number>;
  /** The log as text, for failure messages. */
  logText(): string;
}

/** Options for {@link startLabDaemon}. */
export interface LabDaemonOptions {
  /** Directory to run in (reuse one to keep a stale control socket); default a new temp dir. */
  dir?: string;
  /** Edits the config before it is written. */
  config?: (c: Record<string, any>) => void;
  /** Extra environment (WATCHDOG_USEC, ...). */
  env?: Record<string, string>;
  /** Wait for READY=1 (default true; throws with the log if it never comes). */
  waitReady?: boolean;
}

let daemonSeq = 0;

/** Starts `egressd run` in the gateway namespace as the lab uid with ambient CAP_NET_ADMIN. */
export async function startLabDaemon(lab: Lab, opts: LabDaemonOptions = {}): Promise<LabDaemon> {
  const bin = egressdBinary();
  const dir = opts.dir ?? mkdtempSync(join(runDir(), "d-"));
  chmodSync(dir, 0o755);
  const keyFile = join(dir, "private-key");
  if (!existsSync(keyFile)) {
    copyFileSync(lab.gateway.privateKeyFile, keyFile);
    chownSync(keyFile, lab.uid, lab.uid);
    chmodSync(keyFile, 0o600);
  }
  chownSync(dir, lab.uid, lab.uid);
  const configPath = join(dir, "config.json");
  const config = labConfig(lab, dir);
  opts.config?.(config);
  const writeConfig = (c: Record<string, any> | string) => writeFileSync(configPath, typeof c === "string" ? c : JSON.stringify(c, null, 2));
  writeConfig(config);
  // One per daemon: two daemons may share a dir (a restart, a second instance).
  const notifyPath = join(dir, `notify-${++daemonSeq}.sock`);
  const notify = await startNotifyReceiver(notifyPath);

  const proc = Bun.spawn([...lab.prefix(lab.ns.gw, { uid: lab.uid, netAdmin: true }), bin, "run", "--config", configPath, "--log-format", "json"], {
    env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C", NOTIFY_SOCKET: notifyPath, ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const logs: LogLine[] = [];
  const onLine = (line: string) => {
    if (line.trim() === "") return;
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push({ msg: line });
    }
  };
  const streams = Promise.all([eachLine(proc.stdout, onLine), eachLine(proc.stderr, onLine)]);
  const exited = proc.exited.then(async (code) => {
    await streams.catch(() => undefined);
    return code;
  });
  const logText = () => logs.map((l) => JSON.stringify(l)).join("\n");
  const d: LabDaemon = {
    dir,
    configPath,
    controlPath: join(dir, "control.sock"),
    pid: proc.pid,
    notify,
    logs,
    exited,
    writeConfig,
    async waitLog(pred, ms, what, from = 0) {
      return poll(() => logs.slice(from).find(pred), ms, `${what}; log so far:\n${logText()}`);
    },
    control: (cmd, args) => controlRequest(join(dir, "control.sock"), cmd, { args, timeoutMs: 20_000 }),
    signal(sig) {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, sig);
    },
    async stop(ms = 30_000) {
      d.signal("SIGTERM");
      const timer = setTimeout(() => d.signal("SIGKILL"), ms);
      const code = await exited;
      clearTimeout(timer);
      await notify.close();
      return code;
    },
    logText,
  };
  if (opts.waitReady ?? true) {
    try {
      await poll(() => notify.messages.some((m) => m.fields.READY === "1") || proc.exitCode !== null, 30_000, "READY=1");
    } catch (e) {
      d.signal("SIGKILL");
      await exited;
      await notify.close();
      throw new Error(`${(e as Error).message}\n${logText()}`);
    }
    if (proc.exitCode !== null) {
      await notify.close();
      throw new Error(`egressd exited ${proc.exitCode} before READY=1:\n${logText()}`);
    }
  }
  return d;
}

/** The gateway namespace's host state, as the daemon's teardown must leave it. */
export const DUMP_COMMANDS: readonly (readonly string[])[] = [
  ["ip", "rule"],
  ["ip", "-6", "rule"],
  ["ip", "route", "show", "table", "all"],
  ["ip", "-6", "route", "show", "table", "all"],
  ["nft", "list", "ruleset"],
  ["ip", "-br", "link"],
  ["ip", "-br", "address"],
];

/** Runs {@link DUMP_COMMANDS} in the gateway namespace; keys are the joined argv. */
export async function hostDump(lab: Lab): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const argv of DUMP_COMMANDS) {
    const r = await lab.exec(lab.ns.gw, argv);
    if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed: ${r.stderr}`);
    out[argv.join(" ")] = r.stdout;
  }
  return out;
}

/** The socks-holder fixture (fixtures/socks-holder.ts), running in the lab's client namespace. */
export interface SocksHolder {
  /** Sends one command (`ping <tag>`), returns its one-line JSON answer (`{ alive, dead }`). */
  ask(cmd: string): Promise<any>;
  /** The first answer: `{ opened, failed }`. */
  readonly first: Promise<any>;
  kill(): void;
  exited: Promise<number>;
}

/**
 * Opens `connections` SOCKS5 connections from the client namespace through the proxy's `port` (default
 * 1080) to `target` (`host:port`, an echo server) and holds them, answering `ping` with which are alive.
 */
export function startSocksHolder(lab: Lab, opts: { target: string; connections: number; port?: number }): SocksHolder {
  const [host, port] = [opts.target.slice(0, opts.target.lastIndexOf(":")), opts.target.slice(opts.target.lastIndexOf(":") + 1)];
  const proc = Bun.spawn(
    [...lab.prefix(lab.ns.client), BUN, join(FIXTURES, "socks-holder.ts"), lab.addr.gwLan, String(opts.port ?? 1080), host, port, String(opts.connections)],
    { stdin: "pipe", stdout: "pipe", stderr: "inherit" },
  );
  const answers: any[] = [];
  void eachLine(proc.stdout, (l) => answers.push(JSON.parse(l)));
  let taken = 0;
  const next = (what: string) => poll(() => (answers.length > taken ? answers[taken++] : undefined), 60_000, what);
  const first = next("the holder to open its connections");
  return {
    first,
    async ask(cmd) {
      await first;
      proc.stdin.write(cmd + "\n");
      proc.stdin.flush();
      return next(`an answer to ${cmd}`);
    },
    kill: () => proc.kill("SIGKILL"),
    exited: proc.exited,
  };
}

/**
 * One request from the client namespace through the proxy's `port` to the lab's who-am-I server on
 * `echo`: the address it saw the request come from, or "" when the request failed within `seconds`.
 */
export async function whoamiThrough(lab: Lab, port: number, opts: { echo: number; seconds?: number }): Promise<string> {
  const seconds = opts.seconds ?? 3;
  const r = await lab.exec(lab.ns.client, ["curl", "-sS", "-m", String(seconds), "--http0.9", "--socks5", `${lab.addr.gwLan}:${port}`, `http://${lab.addr.host4}:${opts.echo}/`], { timeoutMs: 8_000 });
  return r.exitCode === 0 ? r.stdout.trim() : "";
}

/** The unmarked positive control of a WAN capture: straight out of the gateway's WAN to `port`, as another uid. */
export async function unmarkedControl(lab: Lab, port: number): Promise<string> {
  const r = await lab.exec(lab.ns.gw, ["ncat", "--recv-only", "-w", "2", lab.addr.host4, String(port)], { uid: lab.uid + 1 });
  return r.stdout.trim();
}

/** `lab.exits[i]` as an entry of the config's `exits`, with its own interface and tunnel addresses. */
export function labExitEntry(lab: Lab, i: number): Record<string, unknown> {
  const e = lab.exits[i]!;
  return { name: e.name, publicKey: e.publicKey, endpoint: e.endpoint, addresses: [...e.gatewayAddresses], interface: e.gatewayWg };
}

/**
 * Turns a lab config (labConfig) into the several-exit form: the first `count` lab exits, probed by a
 * TCP connect to the internet host's `probePort`.
 */
export function useLabExits(c: Record<string, any>, lab: Lab, opts: { count: number; probePort: number }): void {
  delete c.exit;
  c.interface = { privateKeyFile: "private-key" };
  c.exits = lab.exits.slice(0, opts.count).map((_, i) => labExitEntry(lab, i));
  c.failover = { probe: { target: { kind: "tcp", host: lab.addr.host4, port: opts.probePort } } };
}
