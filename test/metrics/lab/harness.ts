/**
 * What the metrics lab tests share: a freshly compiled egressd, a daemon run as the lab's uid in the
 * gateway namespace, scrapes from the client namespace, an independent exposition parser, and the
 * Python traffic tools (traffic.py).
 *
 * Nothing here imports lib/metrics: the scrape is parsed by the small parser below, so a bug in the
 * exposition cannot hide itself in the test.
 */
import { chmodSync, chownSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildHandle } from "../../../lib/exec/runner.ts";
import { type ExecResult, type Lab, waitUntil } from "../../lab/index.ts";

/** Debian's interpreter: the pyenv shim on PATH is under /root, which the lab uid cannot read. */
export const PYTHON = "/usr/bin/python3";

const TRAFFIC = readFileSync(join(import.meta.dir, "traffic.py"), "utf8");

/** argv that runs a traffic.py command (see its docstring). */
export function traffic(...args: (string | number)[]): string[] {
  return [PYTHON, "-c", TRAFFIC, ...args.map(String)];
}

/** Parses the last JSON line a traffic.py command printed; throws with its stderr if there is none. */
export function lastJson<T>(r: ExecResult): T {
  const line = r.stdout.trim().split("\n").at(-1);
  if (!line) throw new Error(`no output (exit ${r.exitCode}${r.timedOut ? ", timed out" : ""}): ${r.stderr}`);
  return JSON.parse(line) as T;
}

/** One sample of an exposition: labels in the order written. */
export interface ParsedSample {
  readonly name: string;
  readonly labels: readonly (readonly [string, string])[];
  readonly value: number;
}

/**
 * A deliberately small parser for the 0.0.4 text format: `# TYPE` lines and samples with escaped
 * label values (`\\`, `\"`, `\n`). Throws on a line it does not understand.
 */
export function parseExposition(text: string): { samples: ParsedSample[]; types: Map<string, string> } {
  const samples: ParsedSample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      continue;
    }
    const head = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!head) throw new Error(`unparsable line: ${line}`);
    const name = head[1]!;
    let i = name.length;
    const labels: [string, string][] = [];
    if (line[i] === "{") {
      i++;
      while (line[i] !== "}") {
        const key = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(i));
        if (!key) throw new Error(`bad label at ${i}: ${line}`);
        i += key[0].length;
        let value = "";
        for (;;) {
          const c = line[i++];
          if (c === undefined) throw new Error(`unterminated label value: ${line}`);
          if (c === '"') break;
          if (c === "\\") {
            const e = line[i++];
            value += e === "n" ? "\n" : e;
          } else value += c;
        }
        labels.push([key[1]!, value]);
        if (line[i] === ",") i++;
      }
      i++;
    }
    const rest = line.slice(i).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2) throw new Error(`bad value: ${line}`);
    const value = rest[0] === "+Inf" ? Infinity : rest[0] === "-Inf" ? -Infinity : Number(rest[0]);
    if (Number.isNaN(value) && rest[0] !== "NaN") throw new Error(`bad value: ${line}`);
    samples.push({ name, labels, value });
  }
  return { samples, types };
}

/** A parsed scrape with lookups. */
export interface Scrape {
  readonly text: string;
  readonly samples: readonly ParsedSample[];
  readonly types: ReadonlyMap<string, string>;
  /** The samples of a family (exact sample name). */
  all(name: string): ParsedSample[];
  /** The one sample whose labels include `match`; throws if there is not exactly one. */
  one(name: string, match?: Record<string, string>): ParsedSample;
  /** `one(...).value`. */
  value(name: string, match?: Record<string, string>): number;
}

function scrapeOf(text: string): Scrape {
  const { samples, types } = parseExposition(text);
  const all = (name: string) => samples.filter((s) => s.name === name);
  const one = (name: string, match: Record<string, string> = {}) => {
    const found = all(name).filter((s) => Object.entries(match).every(([k, v]) => s.labels.some(([lk, lv]) => lk === k && lv === v)));
    if (found.length !== 1) throw new Error(`expected one ${name}${JSON.stringify(match)}, found ${found.length}`);
    return found[0]!;
  };
  return { text, samples, types, all, one, value: (name, match) => one(name, match).value };
}

/** A running daemon in the lab. */
export interface LabDaemon {
  readonly child: ChildHandle;
  readonly dir: string;
  /** Everything it logged so far. */
  readonly logs: string[];
  /** `http://<gw lan>:<port>` */
  readonly metricsUrl: string;
  /** GET a path of the metrics listener from the client namespace (curl): status and body. */
  get(path: string): Promise<{ code: number; body: string; at: number }>;
  /** GET /metrics from the client namespace and parse it; throws unless 200. */
  scrape(): Promise<Scrape>;
  /**
   * Rewrites the config with `change` applied, sends SIGHUP and waits for the log line that ends the
   * reload; resolves to that line (e.g. `... info  reloaded changed=proxy,host`).
   */
  reload(change: (config: Record<string, any>) => void): Promise<string>;
  /** `wg show <if> dump` run as root inside gw (wireguard-go's socket is reachable there). */
  wgDump(): Promise<string>;
  /** SIGTERM, then wait for it to exit (it tears its host state down). */
  stop(): Promise<void>;
}

/** Options for {@link startLabDaemon}. */
export interface LabDaemonOptions {
  /** The compiled binary (see egressdBinary in test/lab/binary.ts). */
  binary: string;
  /** Merged into the config's `daemon` section (e.g. `{ reconcileInterval: "2s" }`). Default none. */
  daemon?: Record<string, unknown>;
  /** Proxy port. Default 1080. */
  proxyPort?: number;
  /** Metrics port. Default 9586. */
  metricsPort?: number;
  /** How long to wait for `/readyz` to answer 200, ms. Default 30000 (a loaded, shared machine). */
  readyTimeoutMs?: number;
}

/**
 * Writes a config for the lab (the brief's shape: tunnel to the lab exit, proxy on the gateway's LAN
 * address for the LAN prefix, metrics next to it) and runs `egressd run` as the lab uid with ambient
 * CAP_NET_ADMIN in gw, the way systemd would. Resolves once `/readyz` answers 200.
 */
export async function startLabDaemon(lab: Lab, opts: LabDaemonOptions): Promise<LabDaemon> {
  const dir = mkdtempSync("/tmp/egtm-cfg-");
  chmodSync(dir, 0o755);
  copyFileSync(lab.gateway.privateKeyFile, join(dir, "private-key"));
  chownSync(join(dir, "private-key"), lab.uid, lab.uid);
  chmodSync(join(dir, "private-key"), 0o600);
  const metricsPort = opts.metricsPort ?? 9586;
  const cfg: Record<string, any> = {
    interface: { name: lab.gateway.wgName, privateKeyFile: "private-key", addresses: [lab.addr.tunnelGw4, lab.addr.tunnelGw6] },
    exit: { name: "lab-exit", publicKey: lab.exit.publicKey, endpoint: lab.exit.endpoint },
    proxy: { listen: [`${lab.addr.gwLan}:${opts.proxyPort ?? 1080}`], allowClients: [lab.addr.lanPrefix], dns: { mode: "system" } },
    metrics: { listen: `${lab.addr.gwLan}:${metricsPort}` },
    control: { socket: join(dir, "control.sock") },
    ...(opts.daemon ? { daemon: opts.daemon } : {}),
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg, null, 2));
  chownSync(dir, lab.uid, lab.uid);

  const logs: string[] = [];
  const child = lab
    .runner(lab.ns.gw, { uid: lab.uid, netAdmin: true })
    .start([opts.binary, "run", "--config", join(dir, "config.json"), "--log-format", "text"], { onLine: (l) => logs.push(l) });
  const metricsUrl = `http://${lab.addr.gwLan}:${metricsPort}`;

  const get = async (path: string) => {
    const at = Date.now();
    const r = await lab.exec(lab.ns.client, ["curl", "-sS", "-m", "5", "-w", "\n%{http_code}", `${metricsUrl}${path}`], { timeoutMs: 15_000 });
    const nl = r.stdout.lastIndexOf("\n");
    return { code: Number(r.stdout.slice(nl + 1)) || 0, body: r.stdout.slice(0, Math.max(0, nl)), at };
  };
  const d: LabDaemon = {
    child,
    dir,
    logs,
    metricsUrl,
    get,
    async scrape() {
      const r = await get("/metrics");
      if (r.code !== 200) throw new Error(`GET /metrics: ${r.code} ${r.body}`);
      return scrapeOf(r.body);
    },
    async reload(change) {
      change(cfg);
      writeFileSync(join(dir, "config.json"), JSON.stringify(cfg, null, 2));
      const from = logs.length;
      child.kill("SIGHUP");
      let line: string | undefined;
      await waitUntil(() => (line = logs.slice(from).find((l) => / (reloaded|reload refused|reload failed)\b/.test(l))) !== undefined, 30_000, "the reload to end");
      return line!;
    },
    async wgDump() {
      const r = await lab.exec(lab.ns.gw, ["wg", "show", lab.gateway.wgName, "dump"]);
      if (r.exitCode !== 0) throw new Error(`wg show dump: ${r.stderr}`);
      return r.stdout;
    },
    async stop() {
      child.kill("SIGTERM");
      const done = await Promise.race([child.exited.then(() => true), Bun.sleep(20_000).then(() => false)]);
      if (!done) child.kill("SIGKILL");
      await child.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitUntil(async () => {
      if (child.exitStatus !== null) throw new Error(`egressd exited: ${logs.slice(-20).join("\n")}`);
      return (await get("/readyz")).code === 200;
    }, opts.readyTimeoutMs ?? 30_000, "egressd /readyz 200");
  } catch (e) {
    await d.stop();
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${logs.slice(-30).join("\n")}`);
  }
  return d;
}

/** One peer line of `wg show <if> dump`, split by hand (columns per wg(8)). */
export interface DumpPeer {
  publicKey: string;
  endpoint: string;
  allowedIps: string;
  latestHandshake: number;
  rx: number;
  tx: number;
}

/** The peer lines of a `wg show <if> dump` (the first line is the interface). */
export function dumpPeers(dump: string): DumpPeer[] {
  return dump
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => {
      const c = l.split("\t");
      return { publicKey: c[0]!, endpoint: c[2]!, allowedIps: c[3]!, latestHandshake: Number(c[4]), rx: Number(c[5]), tx: Number(c[6]) };
    });
}
