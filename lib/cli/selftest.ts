/**
 * `egressd test`: does traffic really leave with the exit's address? Asks a what-is-my-IP URL
 * through the daemon's own proxy (as a SOCKS5 client of the configured listener, with its auth, and
 * with the URL's host sent as a name, as socks5h does), then directly from this host, prints both
 * answers and judges them (lib/selftest/judge.ts). Nagios exit codes, as `egressd check`.
 */
import { isIP } from "node:net";
import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { ConfigError } from "../config/errors.ts";
import { loadConfig } from "../config/load.ts";
import { listenAddress, type Config } from "../config/schema.ts";
import { CheckState } from "../daemon/status.ts";
import { isWildcard, parseHostPort, parseIp } from "../net/ip.ts";
import { authAccounts } from "../config/auth.ts";
import { readPasswordFile } from "../proxy/auth.ts";
import { httpGet } from "../selftest/http-get.ts";
import { addressFromBody, type Answer, type Finding, judgeEgress } from "../selftest/judge.ts";
import { socksConnect } from "../selftest/socks-client.ts";
import { type Command, out, parseFlags, UsageError } from "./common.ts";
import { DEFAULT_CONFIG } from "./probe.ts";

/** The default what-is-my-IP URL: it answers a bare address to any client. */
export const DEFAULT_URL = "https://ifconfig.me/ip";

export const HELP = `Usage: egressd test [--config FILE] [--url URL] [--expect ADDRESS] [flags]

Asks URL (a what-is-my-IP service) through the running daemon's SOCKS5 proxy, as a client of the
config's first proxy.listen address (with proxy.auth if configured) and with the URL's host sent as
a name for the proxy to resolve (socks5h), then asks it directly from this host. Prints both
answers. Passes when they differ and the proxied one is the exit's address, and says whether the
name was resolved through the tunnel (proxy.dns.mode "tunnel"). Run it as another user than the
daemon's: the daemon's uid is routed into the tunnel, so its "direct" request would be too.
  -c, --config FILE     the daemon's config (default ${DEFAULT_CONFIG})
  -u, --url URL         http:// or https:// URL answering the client's address as text (default
                        ${DEFAULT_URL}); https is TLS through the proxy's CONNECT tunnel
  -e, --expect ADDRESS  the exit's public address (repeatable; default: exit.endpoint's address)
      --proxy HOST:PORT the proxy listener to use (default: the config's first proxy.listen)
      --ca-file FILE    extra CA certificates (PEM) for an https URL
      --timeout SECONDS per request (default 10)
Exit codes (nagios): 0 OK, 1 WARNING (a check could not be made), 2 CRITICAL (traffic does not
leave with the exit's address, or the proxied request failed), 3 UNKNOWN (bad config).
`;

/** Runs `egressd test`. */
export const selftestCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    config: { type: "string", short: "c" },
    url: { type: "string", short: "u" },
    expect: { type: "string", short: "e", multiple: true },
    proxy: { type: "string" },
    "ca-file": { type: "string" },
    timeout: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => CheckState.ok);
  let url: URL;
  try {
    url = new URL(values.url ?? DEFAULT_URL);
  } catch (e) {
    throw new UsageError(`--url "${values.url}" is not a URL`, { cause: e });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--url "${values.url}": only http:// and https:// are supported`);
  for (const a of values.expect ?? []) if (parseIp(a) === null) throw new UsageError(`--expect "${a}" is not an IP address`);
  const timeoutS = values.timeout === undefined ? 10 : Number(values.timeout);
  if (!(timeoutS > 0 && timeoutS <= 600)) throw new UsageError(`--timeout "${values.timeout}" is not a number of seconds from 1 to 600`);
  const ca = values["ca-file"] === undefined ? undefined : [readCa(values["ca-file"])];

  let config: Config;
  try {
    config = loadConfig(values.config ?? DEFAULT_CONFIG);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    await out(`UNKNOWN: test: ${e.file ?? "config"}: ${e.problems.map((p) => p.message).join("; ")}\n`);
    return CheckState.unknown;
  }
  const proxy = proxyAddress(values.proxy ?? listenAddress(config.proxy.listen[0]!));
  let auth: { username: string; password: string } | null = null;
  try {
    // An account pinned to an exit would test that exit only: the first unpinned one tests the active exit.
    const accounts = authAccounts(config.proxy.auth).map((a) => a.account);
    const account = accounts.find((a) => a.exit === undefined) ?? accounts[0];
    if (account) auth = { username: account.username, password: await readPasswordFile(account.passwordFile) };
  } catch (e) {
    await out(`UNKNOWN: test: proxy.auth: ${(e as Error).message}\n`);
    return CheckState.unknown;
  }
  const timeoutMs = timeoutS * 1000;
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");

  const [proxied, direct, expected] = await Promise.all([
    ask(url, { ca, timeoutMs, open: (h, p) => socksConnect(proxy, { host: h, port: p }, { auth, timeoutMs }) }),
    ask(url, { ca, timeoutMs }),
    expectedAddresses(config, values.expect),
  ]);
  const dns = isIP(host) ? null : { name: host, mode: config.proxy.dns.mode, servers: config.proxy.dns.servers };
  const findings = judgeEgress({ proxied, direct, expected, dns });
  const worst = findings.reduce<Finding["state"]>((w, f) => (CheckState[f.state] > CheckState[w] ? f.state : w), "ok");
  const summary = `${worst.toUpperCase()}: test: through the proxy ${show(proxied)}, directly ${show(direct)}`;
  const via = `${url.href} through socks5h://${proxy.host.includes(":") ? `[${proxy.host}]` : proxy.host}:${proxy.port}${auth ? " (with auth)" : ""}`;
  let text = `${summary}\n  asked: ${via}, then directly\n`;
  for (const f of findings) text += `${f.state.toUpperCase()}: ${f.name}: ${f.message}\n`;
  await out(text);
  return CheckState[worst];
};

async function ask(url: URL, o: Parameters<typeof httpGet>[1]): Promise<Answer> {
  try {
    const r = await httpGet(url, o);
    if (r.status !== 200) return { ok: false, error: `HTTP ${r.status} from ${url.host}` };
    const address = addressFromBody(r.body);
    if (address === null) return { ok: false, error: `the answer is not an IP address: ${JSON.stringify(r.body.slice(0, 80))}` };
    return { ok: true, address };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

async function expectedAddresses(config: Config, flags: string[] | undefined): Promise<{ addresses: string[]; source: string } | null> {
  if (flags && flags.length > 0) return { addresses: flags, source: "--expect" };
  const { host } = parseHostPort(config.exit.endpoint, { names: true });
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  if (isIP(bare)) return { addresses: [bare], source: `exit.endpoint ${config.exit.endpoint}` };
  try {
    const all = await lookup(bare, { all: true });
    return { addresses: all.map((a) => a.address), source: `exit.endpoint ${config.exit.endpoint} resolves to it` };
  } catch {
    return null;
  }
}

function proxyAddress(listen: string): { host: string; port: number } {
  let hp;
  try {
    hp = parseHostPort(listen, { names: false });
  } catch (e) {
    throw new UsageError(`--proxy "${listen}" is not ip:port`, { cause: e });
  }
  const host = hp.host.replace(/^\[(.*)\]$/, "$1");
  // A wildcard listener is reached on loopback (allowClients must then allow it).
  if (isWildcard(host)) return { host: host.includes(":") ? "::1" : "127.0.0.1", port: hp.port };
  return { host, port: hp.port };
}

function readCa(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`--ca-file "${file}" cannot be read (${(e as NodeJS.ErrnoException).code})`, { cause: e });
  }
}

function show(a: Answer): string {
  return a.ok ? a.address : "(failed)";
}
