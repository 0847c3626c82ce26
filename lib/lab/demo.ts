/**
 * The `egressd demo` scenario: the whole path on one machine. It builds a throwaway lab of network namespaces
 * (lib/lab), runs this very binary as the gateway's daemon the way the systemd unit does, shows a
 * client's address through the proxy next to its direct one, and removes everything it made.
 *
 * The order, and what each step proves:
 * 1. prerequisites: root, Linux, the tools; a missing one is named with its Debian package (exit 2);
 * 2. keys: `egressd genkey` for both ends, `egressd pubkey` for their public halves;
 * 3. lab: namespaces client, gw, exit, inet (lib/lab/topology.ts), the home router's NAT on gw, and
 *    a private /run/wireguard for the lab's wireguard-go sockets (the host's is left alone);
 * 4. the gateway's config is written, and the exit's WireGuard config is rendered from it
 *    (lib/exit, as `egressd exit-config --format wg` prints it) and applied with `wg setconf`;
 * 5. the internet host serves "what is my IP" over HTTP and DNS for whoami.example (lib/lab/whoami.ts,
 *    run as `egressd demo --serve-whoami`);
 * 6. `egressd run` starts in gw as a dedicated uid with ambient CAP_NET_ADMIN only, after the unit's
 *    `ExecStartPre` sysctl; the time until the first proxied request succeeds is measured from start;
 * 7. results, the commands to try by hand, `egressd status`; then (`--once`) or on Ctrl-C (`--keep`)
 *    teardown: egressd gets SIGTERM and removes its own host state, then the lab is destroyed.
 *
 * Teardown runs on every path out (try/finally, SIGINT/SIGTERM/SIGHUP handlers), and is checked:
 * egressd must have removed its own host state (leftovers.ts, by lib/host's ownership markers), and
 * none of the lab's namespaces may remain. The command line (flags, help) is lib/cli/demo.ts.
 */
import { chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { loadConfig } from "../config/load.ts";
import { createRunner, type ChildHandle } from "../exec/runner.ts";
import { exitSpecsFromConfig } from "../exit/spec.ts";
import { renderWgSetconf } from "../exit/wireguard.ts";
import { createLab, type Lab } from "./lab.ts";
import { egressdLeftovers, type Ownership } from "./leftovers.ts";
import { DEMO_TOOLS } from "./prerequisites.ts";
import { LAB_ADDRESSES } from "./topology.ts";
import { waitUntil } from "./wait.ts";

/** The DNS name the internet host answers, for `socks5h://` requests. */
export const WHOAMI_NAME = "whoami.example";
const PROXY = `${LAB_ADDRESSES.gwLan}:1080`;
const METRICS = `${LAB_ADDRESSES.gwLan}:9586`;
/** How long to wait for the first proxied request, ms. */
const FIRST_REQUEST_TIMEOUT_MS = 30_000;
/** How long egressd may take to stop on SIGTERM before it is killed, ms. */
const STOP_TIMEOUT_MS = 15_000;

/** The argv that runs this egressd again: the compiled binary itself, or `bun main.ts` from source. */
export function selfArgv(): string[] {
  return Bun.main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, Bun.main];
}

/** Thrown out of the demo's steps when a signal asked it to stop. */
class Interrupted extends Error {
  override name = "Interrupted";
}

/** The daemon's log and the whoami server's, kept for the results and for failures. */
interface Logs {
  daemon: string[];
  whoami: string[];
}

/** Options for {@link runDemo}. */
export interface DemoOptions {
  /** Stay up until a signal (`--keep`) instead of tearing down after the results. */
  keep: boolean;
  /** The daemon's uid; not 0. */
  uid: number;
}

/**
 * Runs the scenario of the module comment, printing as it goes. Resolves true when the client's
 * proxied request left with the exit's address and everything was torn down; false otherwise (the
 * reason is on stderr). Installs SIGINT/SIGTERM/SIGHUP handlers for its duration.
 */
export async function runDemo(opts: DemoOptions): Promise<boolean> {
  const started = performance.now();
  const say = (text: string) => process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}\n`);
  const self = selfArgv();
  const shown = self.length === 1 ? displayPath(self[0]!) : `bun ${displayPath(self[1]!)}`;

  let signal: string | null = null;
  let wake: () => void = () => {};
  const interrupted = new Promise<void>((resolve) => (wake = resolve));
  const onSignal = (sig: NodeJS.Signals) => {
    if (signal === null) {
      signal = sig;
      process.stdout.write(`\n${sig}: tearing down\n`);
      wake();
    } else {
      process.stdout.write(`${sig}: still tearing down, one moment\n`);
    }
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, onSignal);
  const check = () => {
    if (signal !== null) throw new Interrupted(`interrupted by ${signal}`);
  };

  let lab: Lab | null = null;
  let runDir: string | null = null;
  let daemon: ChildHandle | null = null;
  const logs: Logs = { daemon: [], whoami: [] };
  let ok = false;
  let own: Ownership | null = null;
  try {
    say(`prerequisites: root, ${Object.keys(DEMO_TOOLS).join(", ")}, /dev/net/tun`);
    // 2. Keys, with egressd's own genkey and pubkey.
    runDir = mkdtempSync(join(tmpdir(), "egressd-demo-"));
    chmodSync(runDir, 0o755);
    const keyFile = join(runDir, "private-key");
    const root = createRunner();
    await root.run([...self, "genkey", "--output", keyFile]);
    const exitKey = (await root.run([...self, "genkey"])).stdout.trim();
    const gatewayKey = (await Bun.file(keyFile).text()).trim();
    const gatewayPub = (await root.run([...self, "pubkey"], { stdin: gatewayKey + "\n" })).stdout.trim();
    say(`keys: egressd genkey for the gateway (${keyFile}) and the exit; gateway public key ${gatewayPub}`);
    check();

    // 3. The lab.
    lab = await createLab({ prefix: "egdemo", uid: opts.uid, keys: { exit: exitKey, gateway: gatewayKey }, configureExit: false, wireguardDir: "private", homeNat: true });
    const ns = lab.ns;
    say(`lab: network namespaces ${ns.client}, ${ns.gw}, ${ns.exit}, ${ns.inet}`);
    check();

    // 4. The gateway's config; the exit's WireGuard config rendered from it.
    const configFile = join(runDir, "config.json");
    const socket = join(runDir, "control.sock");
    writeFileSync(configFile, JSON.stringify(gatewayConfig(lab, socket), null, 2) + "\n");
    chownSync(keyFile, opts.uid, opts.uid);
    chownSync(runDir, opts.uid, opts.uid); // the daemon creates its control socket here
    const config = loadConfig(configFile);
    own = { interfaceName: config.interface.name, rulePriority: config.routing.rulePriority, table: config.routing.table };
    const exitConf = renderWgSetconf(exitSpecsFromConfig(config, { gatewayPublicKey: gatewayPub })[0]!, { privateKey: exitKey });
    await lab.runner(ns.exit).run(["wg", "setconf", lab.plan.ifs.exitWg, "/dev/stdin"], { stdin: exitConf });
    say(`gateway config: ${configFile}`);
    say(`exit: wg setconf ${lab.plan.ifs.exitWg}, with this config rendered from the gateway's:`);
    process.stdout.write(indent(exitConf.replace(/^PrivateKey = .*$/m, "PrivateKey = (hidden)"), "          "));
    check();

    // 5. The internet host.
    const whoami = lab.spawn(ns.inet, [...self, "demo", "--serve-whoami", LAB_ADDRESSES.host4], { onLine: (l) => logs.whoami.push(l) });
    await waitUntil(() => logs.whoami.includes("ready") || whoami.exitStatus !== null, 10_000, "the internet host's servers");
    if (whoami.exitStatus !== null) throw new Error(`the internet host's servers exited: ${whoami.outputTail()}`);
    say(`internet host: "what is my IP" on http://${LAB_ADDRESSES.host4}/, DNS for ${WHOAMI_NAME} on ${LAB_ADDRESSES.host4}:53`);
    check();

    // 6. The daemon, as the unit runs it.
    const daemonArgv = [...(await binaryFor(lab, opts.uid, self, runDir, say)), "run", "--config", configFile, "--log-format", "text"];
    // The unit's ExecStartPre=+: src_valid_mark=1 is set with full privileges before the daemon starts.
    await lab.runner(ns.gw).run(["sysctl", "-q", "-w", "net.ipv4.conf.all.src_valid_mark=1"]);
    daemon = lab.spawn(ns.gw, daemonArgv, { uid: opts.uid, netAdmin: true, onLine: (l) => logs.daemon.push(l) });
    say(`gateway: ${shown} run --config ${configFile}, pid ${daemon.pid}, as uid ${opts.uid} with ambient CAP_NET_ADMIN`);

    const proxied = await firstProxiedRequest(lab, daemon, () => signal !== null);
    check();
    const firstAt = (performance.now() - started) / 1000;
    say(`first proxied request answered, ${firstAt.toFixed(1)} s after start`);

    // 7. Results.
    const direct = await curl(lab, ["--noproxy", "*", `http://${LAB_ADDRESSES.host4}/`]);
    const dnsFrom = logs.whoami.map((l) => new RegExp(`^dns A ${WHOAMI_NAME.replace(/\./g, "\\.")} from (\\S+):`).exec(l)?.[1]).find(Boolean) ?? "(no query seen)";
    const exitOk = proxied === LAB_ADDRESSES.exitWan4;
    const homeOk = direct.ok && direct.body === LAB_ADDRESSES.gwWan4;
    const w = 52;
    const lines = [
      "",
      `The client (${LAB_ADDRESSES.clientLan}) asks the internet host "what is my IP?":`,
      `  ${`through the proxy (socks5h://${PROXY})`.padEnd(w)} ${proxied.padEnd(15)} ${exitOk ? "the exit's address" : `NOT the exit's (${LAB_ADDRESSES.exitWan4})`}`,
      `  ${"directly, through the home router's NAT".padEnd(w)} ${(direct.ok ? direct.body : "failed").padEnd(15)} ${homeOk ? "the home address" : `expected ${LAB_ADDRESSES.gwWan4}: ${direct.ok ? "" : direct.error}`}`,
      `  ${`the proxy's DNS query for ${WHOAMI_NAME} came from`.padEnd(w)} ${dnsFrom.padEnd(15)} ${dnsFrom === LAB_ADDRESSES.exitWan4 ? "through the tunnel" : ""}`,
      "",
      opts.keep ? "Try it by hand (in another terminal):" : `Try it by hand: run \`${shown} demo --keep\`, then:`,
      `  ip netns exec ${ns.client} curl --proxy socks5h://${PROXY} http://${WHOAMI_NAME}/`,
      `  ip netns exec ${ns.client} curl http://${LAB_ADDRESSES.host4}/`,
      `  ip netns exec ${ns.client} curl http://${METRICS}/metrics`,
      `  ${shown} status --socket ${socket}`,
      "",
      `${shown} status --socket ${socket}:`,
    ];
    process.stdout.write(lines.join("\n") + "\n");
    const status = await root.run([...self, "status", "--socket", socket]).catch((e: unknown) => ({ stdout: `(status failed: ${e instanceof Error ? e.message : String(e)})\n` }));
    process.stdout.write(indent(status.stdout, "  ") + "\n");
    ok = exitOk;

    if (opts.keep) {
      say("up; press Ctrl-C to tear it all down");
      const which = await Promise.race([interrupted.then(() => "signal" as const), daemon.exited.then(() => "daemon" as const)]);
      if (which === "daemon") {
        const e = daemon.exitStatus!;
        err(`egressd demo: egressd (pid ${daemon.pid}) exited by itself (${e.signal ?? `status ${e.exitCode}`}); its last lines:\n${indent(tail(logs.daemon), "  ")}`);
        ok = false;
      }
    }
  } catch (e) {
    if (e instanceof Interrupted || signal !== null) {
      err(`egressd demo: interrupted by ${signal} before it finished`);
    } else {
      err(`egressd demo: ${e instanceof Error ? e.message : String(e)}`);
      if (logs.daemon.length > 0) err(`egressd's last log lines:\n${indent(tail(logs.daemon), "  ")}`);
    }
    ok = false;
  } finally {
    ok = (await teardown({ lab, daemon, runDir, own, say })) && ok;
    for (const s of signals) process.off(s, onSignal);
  }
  return ok;
}

/** The gateway's egressd config for this lab, as a user would write it. */
function gatewayConfig(lab: Lab, socket: string) {
  return {
    interface: { name: lab.gateway.wgName, privateKeyFile: "private-key", addresses: [LAB_ADDRESSES.tunnelGw4, LAB_ADDRESSES.tunnelGw6] },
    exit: { name: "demo-exit", publicKey: lab.exit.publicKey, endpoint: `${lab.plan.exitHostName}:${lab.exit.port}` },
    proxy: {
      listen: [PROXY],
      allowClients: [LAB_ADDRESSES.lanPrefix],
      dns: { mode: "tunnel", servers: [LAB_ADDRESSES.host4] },
    },
    metrics: { listen: METRICS },
    control: { socket },
    daemon: { drainTimeout: "2s" },
  };
}

/**
 * The argv that runs this egressd as `uid`: itself when that uid can execute it, else a copy in the
 * demo's directory (a clone under /root is out of reach of other uids). Run from source, the uid must
 * be able to read the tree.
 */
async function binaryFor(lab: Lab, uid: number, self: string[], runDir: string, say: (t: string) => void): Promise<string[]> {
  const probe = await lab.exec(lab.ns.gw, [...self, "version"], { uid });
  if (probe.exitCode === 0) return self;
  if (self.length > 1) {
    throw new Error(`uid ${uid} cannot run ${self.join(" ")} (${probe.stderr.trim() || `exit ${probe.exitCode}`}); build the binary (bun run build) and run dist/egressd demo`);
  }
  const copy = join(runDir, "egressd");
  copyFileSync(self[0]!, copy);
  chmodSync(copy, 0o755);
  say(`uid ${uid} cannot reach ${self[0]}; running a copy of it, ${copy}`);
  return [copy];
}

/** Asks through the proxy until the answer comes; returns the address the internet host saw. */
async function firstProxiedRequest(lab: Lab, daemon: ChildHandle, stop: () => boolean): Promise<string> {
  const deadline = performance.now() + FIRST_REQUEST_TIMEOUT_MS;
  let last = "";
  while (!stop()) {
    if (daemon.exitStatus !== null) {
      const e = daemon.exitStatus;
      throw new Error(`egressd exited during start (${e.signal ?? `status ${e.exitCode}`})`);
    }
    const r = await curl(lab, ["--socks5-hostname", PROXY, `http://${WHOAMI_NAME}/`]);
    if (r.ok && r.body !== "") return r.body;
    last = r.error;
    if (performance.now() > deadline) throw new Error(`no proxied request succeeded within ${FIRST_REQUEST_TIMEOUT_MS / 1000} s; the last said: ${last}`);
    await Bun.sleep(100);
  }
  return "";
}

/** `curl` in the client namespace, ignoring ~/.curlrc (-q) so the user's settings cannot interfere. */
async function curl(lab: Lab, args: string[]): Promise<{ ok: boolean; body: string; error: string }> {
  const r = await lab.exec(lab.ns.client, ["curl", "-q", "-sS", "-m", "3", ...args], { timeoutMs: 5000 });
  return { ok: r.exitCode === 0, body: r.stdout.trim(), error: r.stderr.trim() || `exit ${r.exitCode}` };
}

/**
 * Stops egressd with SIGTERM (it removes its tunnel, rules and nft table itself, as on a real host),
 * destroys the lab, removes the demo's directory, and checks that no namespace of the lab is left.
 * Returns false when something failed or was left behind.
 */
async function teardown(t: { lab: Lab | null; daemon: ChildHandle | null; runDir: string | null; own: Ownership | null; say: (s: string) => void }): Promise<boolean> {
  let ok = true;
  const done: string[] = [];
  try {
    if (t.daemon && t.lab) {
      let stopped = true;
      if (t.daemon.exitStatus === null) {
        t.daemon.kill("SIGTERM");
        stopped = await Promise.race([t.daemon.exited.then(() => true), Bun.sleep(STOP_TIMEOUT_MS).then(() => false)]);
        if (!stopped) t.daemon.kill("SIGKILL");
      }
      const e = await t.daemon.exited;
      const how = !stopped ? "was killed after ignoring SIGTERM" : e.exitCode === 0 ? "stopped (exit 0)" : `exited with ${e.signal ?? `status ${e.exitCode}`}`;
      // Looking is best effort: the lab is destroyed below whatever this finds.
      const left = await leftovers(t.lab, t.own).catch((x: unknown) => [`(could not look: ${x instanceof Error ? x.message : String(x)})`]);
      done.push(`egressd ${how}${left.length === 0 ? " and removed its tunnel, rules and nft table" : `, leaving ${left.join(", ")}`}`);
    }
  } catch (e) {
    err(`egressd demo: stopping egressd failed: ${e instanceof Error ? e.message : String(e)}`);
    ok = false;
  }
  try {
    if (t.lab) {
      await t.lab.destroy();
      const list = await createRunner().run(["ip", "-j", "netns", "list"]);
      const left = (JSON.parse(list.stdout || "[]") as { name: string }[]).map((n) => n.name).filter((n) => n.startsWith(`${t.lab!.plan.id}-`));
      if (left.length > 0) {
        err(`egressd demo: namespaces left behind: ${left.join(", ")}`);
        ok = false;
      } else {
        done.push("the lab's namespaces, interfaces and processes are gone");
      }
    }
  } catch (e) {
    err(`egressd demo: teardown failed: ${e instanceof Error ? e.message : String(e)}`);
    ok = false;
  } finally {
    if (t.runDir) rmSync(t.runDir, { recursive: true, force: true });
  }
  if (done.length > 0) t.say(`teardown: ${done.join("; ")}`);
  return ok;
}

/** What egressd left in the gateway namespace after it stopped, by its ownership markers. */
async function leftovers(lab: Lab, own: Ownership | null): Promise<string[]> {
  if (own === null) return []; // stopped before the config existed: egressd never ran
  return egressdLeftovers(lab.runner(lab.ns.gw), own);
}

/** One line to stderr. */
function err(text: string): void {
  process.stderr.write(text.endsWith("\n") ? text : text + "\n");
}

function indent(text: string, prefix: string): string {
  return text.replace(/\n$/, "").split("\n").map((l) => (l === "" ? "" : prefix + l)).join("\n") + "\n";
}

function tail(lines: readonly string[], n = 20): string {
  return lines.slice(-n).join("\n");
}

/** `dist/egressd` rather than an absolute path, when the binary is under the working directory. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") || rel.startsWith("/") ? path : rel.includes("/") ? rel : `./${rel}`;
}
