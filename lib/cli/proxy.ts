/**
 * `egressd proxy`: the proxy (SOCKS5 and HTTP on one port) alone, for local use and benchmarks.
 *
 * No tunnel, no routing, no firewall: connections leave directly by the host's own routes, and
 * `--dns tunnel` only means "query these servers from this process". The daemon (`egressd run`)
 * is what sends the proxy's traffic through WireGuard.
 *
 * Defaults are the config schema's (`PROXY_DEFAULTS`), except `--dns`: standalone there is no
 * tunnel to send queries through, so the OS resolver is the default.
 */
import { parseDuration } from "../config/duration.ts";
import { listenAddress, PROXY_DEFAULTS, PROXY_PROTOCOL_NAMES } from "../config/schema.ts";
import { passwordOf, readSecretFile, SecretFileError } from "../config/secret-file.ts";
import { createLogger, type Level, type LogFormat } from "../log/logger.ts";
import { CidrError, HostPortError, isWildcard, parseCidr, parseHostPort, type Cidr, type HostPort } from "../net/ip.ts";
import { ListenError, ProxyConfigError } from "../proxy/errors.ts";
import { ProxyServer, type ProxyServerOptions } from "../proxy/server.ts";
import { err, Exit, out, parseFlags, UsageError } from "./common.ts";

/** The `--help` text. */
export const PROXY_HELP = `Usage: egressd proxy [--listen ADDR:PORT ...] [flags]

Runs only the proxy (SOCKS5 and HTTP on every port), in the foreground, until SIGINT or SIGTERM.
STANDALONE MODE: no WireGuard tunnel, no policy routing, no kill switch. Connections go out
directly by this host's own routes. Use \`egressd run\` for the tunnelled gateway.

  --listen ADDR:PORT          listen here; repeatable (default 127.0.0.1:1080); port 0 picks
                              a free port
  --protocols LIST            what the listeners speak: socks5, http or socks5,http (default
                              both, told apart by the first byte)
  --allow-wildcard-bind       allow 0.0.0.0 / [::] in --listen
  --allow-client CIDR         clients allowed to connect; repeatable
                              (default 127.0.0.0/8 and ::1/128)
  --allow-destination CIDR    allow a destination the default policy denies (loopback, private,
                              link-local, CGNAT, multicast, ...); repeatable
  --user NAME                 require RFC 1929 username/password authentication
  --password-file FILE        the password for --user (never on the command line); SIGHUP
                              re-reads it
  --dns system|tunnel         system: the OS resolver (default); tunnel: query --dns-server
                              directly from this process
  --dns-server IP[:PORT]      a server for --dns tunnel; repeatable
  --dns-timeout DURATION      give up on a name after this long (default 5s)
  --connect-timeout DURATION  give up on a target after this long (default 10s)
  --handshake-timeout DURATION  close clients that have not sent a request (default 10s)
  --idle-timeout DURATION     close connections idle this long (default 0: never)
  --max-connections N         open connections at most (default 20000)
  --keepalive-idle DURATION   TCP keepalive idle time on both legs, 0 to disable (default 60s)
  --keepalive-interval DURATION  time between unanswered probes (default 15s)
  --keepalive-count N         unanswered probes before a reset (default 8): an idle
                              connection survives path outages up to interval x count
  --no-udp                    refuse SOCKS5 UDP ASSOCIATE (default: relay UDP)
  --udp-idle-timeout DURATION  end a UDP association idle this long (default 0: it ends
                              with its TCP connection only)
  --udp-max-associations N    UDP associations open at most (default 1024)
  --udp-port-range FIRST-LAST  bind UDP relay sockets from these ports (default: ephemeral)
  --log-level LEVEL           debug, info, warn or error (default info)
  --log-format FORMAT         journal, text or json (default: journal under systemd, else text)
  -h, --help                  show this help

Durations: 500ms, 10s, 2m, 1h30m. The listening addresses are logged at start
("proxy listening listen=...").

Example:
  egressd proxy --listen 127.0.0.1:1080 --allow-destination 127.0.0.0/8
  curl --socks5-hostname 127.0.0.1:1080 http://localhost:8080/
  curl -x http://127.0.0.1:1080 http://localhost:8080/
`;

const FLAGS = {
  listen: { type: "string", multiple: true },
  protocols: { type: "string" },
  "allow-wildcard-bind": { type: "boolean" },
  "allow-client": { type: "string", multiple: true },
  "allow-destination": { type: "string", multiple: true },
  user: { type: "string" },
  "password-file": { type: "string" },
  dns: { type: "string" },
  "dns-server": { type: "string", multiple: true },
  "dns-timeout": { type: "string" },
  "connect-timeout": { type: "string" },
  "handshake-timeout": { type: "string" },
  "idle-timeout": { type: "string" },
  "max-connections": { type: "string" },
  "keepalive-idle": { type: "string" },
  "keepalive-interval": { type: "string" },
  "keepalive-count": { type: "string" },
  "no-udp": { type: "boolean" },
  "udp-idle-timeout": { type: "string" },
  "udp-max-associations": { type: "string" },
  "udp-port-range": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The flag that sets each {@link ProxyServerOptions} field, for error messages. */
const FIELD_FLAGS: Record<string, string> = {
  "keepalive.idleMs": "--keepalive-idle",
  "keepalive.intervalMs": "--keepalive-interval",
  "keepalive.count": "--keepalive-count",
  connectTimeoutMs: "--connect-timeout",
  handshakeTimeoutMs: "--handshake-timeout",
  idleTimeoutMs: "--idle-timeout",
  maxConnections: "--max-connections",
  "dns.timeoutMs": "--dns-timeout",
  "dns.servers": "--dns-server",
  "auth.username": "--user",
  "auth.password": "--password-file",
  "udp.idleTimeoutMs": "--udp-idle-timeout",
  "udp.maxAssociations": "--udp-max-associations",
  "udp.portRange": "--udp-port-range",
  "udp.portRange.first": "--udp-port-range",
  "udp.portRange.last": "--udp-port-range",
};

/** A {@link ProxyConfigError} reworded to name the flag rather than the option field. */
function flagMessage(e: ProxyConfigError): string {
  const flag = FIELD_FLAGS[e.field.replace(/\[\d+\]$/, "")] ?? (e.field.startsWith("listeners") ? "--listen" : undefined);
  return flag ? `${flag}: ${e.message.slice(e.field.length + 2)}` : e.message;
}

function duration(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === null) throw new UsageError(`--${flag}: "${text}" is not a duration (e.g. 500ms, 10s, 2m)`);
  return ms;
}

function cidrs(flag: string, texts: readonly string[] | undefined): Cidr[] | undefined {
  if (texts === undefined) return undefined;
  return texts.map((t) => {
    try {
      return parseCidr(t);
    } catch (e) {
      if (e instanceof CidrError) throw new UsageError(`--${flag} ${t}: ${e.message}`, { cause: e });
      throw e;
    }
  });
}

function listeners(texts: readonly string[] | undefined, allowWildcard: boolean): HostPort[] {
  return (texts ?? PROXY_DEFAULTS.listen.map(listenAddress)).map((t) => {
    // Port 0 lets the kernel pick (tests and benchmarks read the port from the log line).
    const anyPort = t.endsWith(":0");
    let hp: HostPort;
    try {
      hp = parseHostPort(anyPort ? t.slice(0, -1) + "1" : t, { names: false });
    } catch (e) {
      if (e instanceof HostPortError) throw new UsageError(`--listen ${t}: ${e.message}`, { cause: e });
      throw e;
    }
    if (isWildcard(hp.host) && !allowWildcard) throw new UsageError(`--listen ${t} listens on every interface; add --allow-wildcard-bind if you mean it`);
    return anyPort ? { host: hp.host, port: 0 } : hp;
  });
}

function protocols(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(",").map((s) => s.trim());
  for (const n of names) {
    if (!(PROXY_PROTOCOL_NAMES as readonly string[]).includes(n)) throw new UsageError(`--protocols: "${n}" is not a protocol; use ${PROXY_PROTOCOL_NAMES.join(", ")} or socks5,http`);
  }
  return names;
}

function oneOf<T extends string>(flag: string, text: string | undefined, allowed: readonly T[]): T | undefined {
  if (text === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(text)) throw new UsageError(`--${flag} must be one of ${allowed.join(", ")}, not "${text}"`);
  return text as T;
}

/**
 * Reads `--password-file` by the rule a config's `proxy.auth.passwordFile` follows: a regular file
 * others cannot read. Throws {@link UsageError} naming the flag.
 */
function readPassword(file: string): string {
  try {
    return passwordOf(readSecretFile(file, { field: "--password-file", kind: "password", warn: (m) => err(`egressd proxy: warning: ${m}`) }));
  } catch (e) {
    if (e instanceof SecretFileError) throw new UsageError(e.message, { cause: e });
    throw e;
  }
}

type Flags = ReturnType<typeof parseFlags<typeof FLAGS>>["values"];

/** Turns flags into server options; throws {@link UsageError}. Reads the password file. */
async function optionsFromFlags(v: Flags): Promise<Omit<ProxyServerOptions, "log">> {
  if ((v.user === undefined) !== (v["password-file"] === undefined)) {
    throw new UsageError("--user and --password-file go together");
  }
  const auth = v.user !== undefined ? { username: v.user, password: readPassword(v["password-file"]!) } : null;
  const mode = oneOf("dns", v.dns, ["system", "tunnel"] as const) ?? "system";
  if (mode === "tunnel" && !v["dns-server"]?.length) throw new UsageError("--dns tunnel needs at least one --dns-server");
  const maxText = v["max-connections"];
  const maxConnections = maxText === undefined ? undefined : Number(maxText);
  if (maxConnections !== undefined && !(Number.isSafeInteger(maxConnections) && maxConnections >= 1)) {
    throw new UsageError(`--max-connections must be a positive integer, not "${maxText}"`);
  }
  const keepaliveIdleMs = duration("keepalive-idle", v["keepalive-idle"]);
  const countText = v["keepalive-count"];
  const keepaliveCount = countText === undefined ? undefined : Number(countText);
  if (keepaliveCount !== undefined && !(Number.isSafeInteger(keepaliveCount) && keepaliveCount >= 1 && keepaliveCount <= 127)) {
    throw new UsageError(`--keepalive-count must be an integer in 1..127, not "${countText}"`);
  }
  const assocText = v["udp-max-associations"];
  const maxAssociations = assocText === undefined ? undefined : Number(assocText);
  if (maxAssociations !== undefined && !(Number.isSafeInteger(maxAssociations) && maxAssociations >= 1)) {
    throw new UsageError(`--udp-max-associations must be a positive integer, not "${assocText}"`);
  }
  const keepalive = { idleMs: keepaliveIdleMs, intervalMs: duration("keepalive-interval", v["keepalive-interval"]), count: keepaliveCount };
  const spoken = protocols(v.protocols);
  return {
    listeners: listeners(v.listen, v["allow-wildcard-bind"] ?? false).map((l) => (spoken ? { ...l, protocols: spoken } : l)),
    allowWildcardBind: v["allow-wildcard-bind"] ?? false,
    allowClients: cidrs("allow-client", v["allow-client"] ?? PROXY_DEFAULTS.allowClients) ?? [],
    allowDestinations: cidrs("allow-destination", v["allow-destination"]) ?? [],
    auth,
    dns: { mode, servers: v["dns-server"] ?? [], timeoutMs: duration("dns-timeout", v["dns-timeout"]) },
    connectTimeoutMs: duration("connect-timeout", v["connect-timeout"]),
    handshakeTimeoutMs: duration("handshake-timeout", v["handshake-timeout"]),
    idleTimeoutMs: duration("idle-timeout", v["idle-timeout"]),
    maxConnections,
    keepalive: keepaliveIdleMs === 0 ? { enabled: false } : { enabled: true, ...keepalive },
    udp: {
      enabled: !(v["no-udp"] ?? false),
      idleTimeoutMs: duration("udp-idle-timeout", v["udp-idle-timeout"]),
      maxAssociations,
      portRange: portRange(v["udp-port-range"]),
    },
  };
}

function portRange(text: string | undefined): { first: number; last: number } | null {
  if (text === undefined) return null;
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1 || last > 65535 || first > last) throw new UsageError(`--udp-port-range: "${text}" is not a port range of 1-65535, first not above last (e.g. 40000-40100)`);
  return { first, last };
}

/**
 * Runs `egressd proxy`. Returns 0 after a clean SIGINT/SIGTERM shutdown, 1 when a listener
 * cannot be bound (or another runtime failure), 2 for a bad command line.
 */
export async function proxyCommand(argv: string[]): Promise<number> {
  let options: Omit<ProxyServerOptions, "log">;
  let level: Level;
  let format: LogFormat | undefined;
  try {
    const { values } = parseFlags(argv, FLAGS);
    if (values.help) {
      await out(PROXY_HELP);
      return Exit.ok;
    }
    level = oneOf("log-level", values["log-level"], ["debug", "info", "warn", "error"] as const) ?? "info";
    format = oneOf("log-format", values["log-format"], ["journal", "text", "json"] as const);
    options = await optionsFromFlags(values);
    const log = createLogger({ level, format });
    const server = new ProxyServer({ ...options, log });
    try {
      server.start();
    } catch (e) {
      if (!(e instanceof ListenError)) throw e;
      err(`egressd proxy: ${e.message}`);
      return Exit.failure;
    }
    await runUntilSignal(server, values, options, log);
    return Exit.ok;
  } catch (e) {
    if (e instanceof UsageError || e instanceof ProxyConfigError) {
      err(`egressd proxy: ${e instanceof ProxyConfigError ? flagMessage(e) : e.message}; run \`egressd proxy --help\``);
      return Exit.usage;
    }
    throw e;
  }
}

async function runUntilSignal(server: ProxyServer, flags: Flags, options: Omit<ProxyServerOptions, "log">, log: ReturnType<typeof createLogger>): Promise<void> {
  const onHup = () => {
    // Re-read the password file so that rotating it needs no restart; live connections stay.
    if (!flags.user || !flags["password-file"]) return;
    let password: string;
    try {
      password = readPassword(flags["password-file"]);
    } catch (e) {
      log.error("proxy: reload failed, keeping the old password", { err: e });
      return;
    }
    // Through a promise, so that a throw (or a rejection) is logged either way.
    Promise.resolve()
      .then(() => server.update({ ...options, auth: { username: flags.user!, password } }))
      .catch((e: unknown) => log.error("proxy: reload failed, keeping the old password", { err: e }));
  };
  process.on("SIGHUP", onHup);
  let onStop: (signal: NodeJS.Signals) => void = () => {};
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    onStop = resolve;
    process.on("SIGINT", onStop);
    process.on("SIGTERM", onStop);
  });
  process.off("SIGINT", onStop);
  process.off("SIGTERM", onStop);
  process.off("SIGHUP", onHup);
  log.info("proxy shutting down", { signal });
  await server.stop({ drainMs: 0 });
}

if (import.meta.main) {
  process.exit(await proxyCommand(process.argv.slice(2)));
}
