/**
 * Real HTTP clients, each run as its own process with a given proxy, so integration tests can ask
 * "does curl / wget / Go / Python / Node / git / apt get through this proxy, and what status does
 * it see?" without knowing each client's flags.
 *
 * Every client runs with a clean environment (PATH and a throwaway HOME; no inherited *_PROXY or
 * NO_PROXY), trusts only the test CA it is given, and is killed after `timeoutMs`.
 *
 * Go's ProxyFromEnvironment never proxies localhost or loopback IPs: name targets (the test CA's
 * `www.example.test`) and let the proxy resolve the name.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const HERE = import.meta.dir;
/** Debian's python3, which has python3-requests (the pyenv one on PATH does not). */
export const DEBIAN_PYTHON = "/usr/bin/python3";

/** The proxy a client is pointed at, and the trust it needs. */
export interface ProxySetup {
  /** `http://127.0.0.1:PORT`, without credentials. */
  readonly proxyUrl: string;
  /** Proxy credentials, sent as Proxy-Authorization: Basic. */
  readonly user?: string;
  readonly password?: string;
  /** The test CA (tls.ts) for https targets. */
  readonly caFile: string;
  /** Per-run kill timer. Default 30 s. */
  readonly timeoutMs?: number;
  /**
   * An argv prefix that runs the client somewhere else, e.g. `lab.prefix(lab.plan.ns.pod)` to run
   * it in a lab namespace (`ip netns exec` keeps the environment). Default: run it here.
   */
  readonly prefix?: readonly string[];
}

/** What a client run produced. */
export interface ClientResult {
  readonly client: ClientName | "git" | "apt";
  readonly exitCode: number;
  /**
   * The HTTP status the client reported: the origin's, or the proxy's when it refused. null when
   * the client reports none: a transport error, or a refused CONNECT in a client that hides the
   * code: wget and Go print only the reason phrase (`Proxy tunneling failed: Forbidden`,
   * `Get "https://...": Forbidden`), undici drops it (`Request was cancelled.`). See `stderr`.
   */
  readonly status: number | null;
  readonly body: string;
  readonly stderr: string;
}

/** The clients {@link fetchVia} runs. */
export const CLIENT_NAMES = ["curl-x", "curl-env", "wget", "go", "python-requests", "python-urllib", "node-undici", "node-undici-forward"] as const;
/** One of {@link CLIENT_NAMES}. */
export type ClientName = (typeof CLIENT_NAMES)[number];

/** The proxy URL with credentials in it, as the environment-driven clients take them. */
export function proxyUrlWithCredentials(p: ProxySetup): string {
  if (p.user === undefined) return p.proxyUrl;
  const u = new URL(p.proxyUrl);
  u.username = encodeURIComponent(p.user);
  u.password = encodeURIComponent(p.password ?? "");
  return u.toString().replace(/\/$/, "");
}

function baseEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, LC_ALL: "C", ...extra };
}

function proxyEnv(p: ProxySetup): Record<string, string> {
  const url = proxyUrlWithCredentials(p);
  return { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url, NO_PROXY: "", no_proxy: "" };
}

async function run(argv: string[], env: Record<string, string>, timeoutMs: number, cwd?: string, prefix: readonly string[] = []) {
  const proc = Bun.spawn([...prefix, ...argv], { env, cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const exitCode = await proc.exited;
  clearTimeout(timer);
  return { exitCode, stdout, stderr };
}

function statusLine(stderr: string): number | null {
  const m = /^status (\d{3})$/m.exec(stderr);
  return m ? Number(m[1]) : null;
}

let goBinary: Promise<string> | null = null;

/** Compiles go-fetch once per test process into a temp dir (needs golang-go); returns its path. */
export function buildGoFetch(): Promise<string> {
  goBinary ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "egressd-go-fetch-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, "go-fetch");
    // The build cache outlives the run (a cold build of net/http takes most of a minute); it is
    // only a cache, so nothing depends on what it holds.
    const cache = join(tmpdir(), "egressd-go-build-cache");
    const env = baseEnv(dir, { GOCACHE: cache, GOPATH: join(dir, "gopath"), GO111MODULE: "off", CGO_ENABLED: "0" });
    const r = await run(["go", "build", "-o", out, join(HERE, "go-fetch", "main.go")], env, 300_000);
    if (r.exitCode !== 0) throw new Error(`go build failed (exit ${r.exitCode}): ${r.stderr}`);
    return out;
  })();
  return goBinary;
}

/** GETs `url` through the proxy with one client. See {@link ClientResult}. */
export async function fetchVia(client: ClientName, url: string, p: ProxySetup): Promise<ClientResult> {
  const home = mkdtempSync(join(tmpdir(), "egressd-client-"));
  const timeout = p.timeoutMs ?? 30_000;
  try {
    const r = await runClient(client, url, p, home, timeout);
    return { client, ...r };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

async function runClient(client: ClientName, url: string, p: ProxySetup, home: string, timeout: number): Promise<Omit<ClientResult, "client">> {
  const env = baseEnv(home);
  switch (client) {
    case "curl-x":
    case "curl-env": {
      // The CONNECT status is in %{http_connect}, the origin's (or the proxy's for plain http) in %{http_code}.
      const argv = ["curl", "-sS", "--max-time", String(timeout / 1000), "--cacert", p.caFile, "-w", "%{stderr}status %{http_code} connect %{http_connect}\\n"];
      if (client === "curl-x") {
        argv.push("-x", p.proxyUrl);
        if (p.user !== undefined) argv.push("--proxy-user", `${p.user}:${p.password ?? ""}`);
        argv.push("--noproxy", "");
      }
      const r = await run([...argv, url], client === "curl-env" ? { ...env, ...proxyEnv(p) } : env, timeout + 5000, undefined, p.prefix);
      const m = /^status (\d{3}) connect (\d{3})$/m.exec(r.stderr);
      const code = m ? Number(m[1]) : 0;
      const connect = m ? Number(m[2]) : 0;
      const status = code !== 0 ? code : connect !== 0 ? connect : null;
      return { exitCode: r.exitCode, status, body: r.stdout, stderr: r.stderr };
    }
    case "wget": {
      const argv = ["wget", "--no-config", "-S", "-O", "-", "--tries=1", `--timeout=${timeout / 1000}`, `--ca-certificate=${p.caFile}`, "-e", "use_proxy=yes"];
      if (p.user !== undefined) argv.push(`--proxy-user=${p.user}`, `--proxy-password=${p.password ?? ""}`);
      const e = { ...env, ...proxyEnv({ ...p, user: undefined }) };
      const r = await run([...argv, url], e, timeout + 5000, undefined, p.prefix);
      const codes = [...r.stderr.matchAll(/^\s*HTTP\/\d(?:\.\d)? (\d{3})/gm)].map((x) => Number(x[1]));
      return { exitCode: r.exitCode, status: codes.length > 0 ? codes[codes.length - 1]! : null, body: r.stdout, stderr: r.stderr };
    }
    case "go": {
      const bin = await buildGoFetch();
      const r = await run([bin, url], { ...env, ...proxyEnv(p), SSL_CERT_FILE: p.caFile }, timeout + 5000, undefined, p.prefix);
      return { exitCode: r.exitCode, status: statusLine(r.stderr), body: r.stdout, stderr: r.stderr };
    }
    case "python-requests":
    case "python-urllib": {
      const lib = client === "python-requests" ? "requests" : "urllib";
      const e = { ...env, ...proxyEnv(p), REQUESTS_CA_BUNDLE: p.caFile, SSL_CERT_FILE: p.caFile };
      const r = await run([DEBIAN_PYTHON, join(HERE, "python-fetch.py"), lib, url], e, timeout + 5000, undefined, p.prefix);
      // A refused CONNECT: "... Tunnel connection failed: 403 Forbidden" (http.client, both libraries).
      const tunnel = /Tunnel connection failed: (\d{3})/.exec(r.stderr);
      return { exitCode: r.exitCode, status: statusLine(r.stderr) ?? (tunnel ? Number(tunnel[1]) : null), body: r.stdout, stderr: r.stderr };
    }
    case "node-undici":
    case "node-undici-forward": {
      const mode = client === "node-undici" ? "tunnel" : "forward";
      const r = await run(["node", join(HERE, "undici-fetch.mjs"), url, proxyUrlWithCredentials(p), p.caFile, mode], env, timeout + 5000, undefined, p.prefix);
      // undici throws on a 407 from the proxy ("... (cause: Proxy Authentication Required (407))"); a
      // refused CONNECT loses its status inside undici ("fetch failed (cause: Request was cancelled.)").
      const thrown = /^error: .*\((\d{3})\)\)?$/m.exec(r.stderr);
      return { exitCode: r.exitCode, status: statusLine(r.stderr) ?? (thrown ? Number(thrown[1]) : null), body: r.stdout, stderr: r.stderr };
    }
  }
}

/**
 * `git clone <url> <dest>` with `-c http.proxy=...` (credentials in the URL, as git takes them)
 * and the test CA as `http.sslCAInfo`. No system or global git config is read.
 */
export async function gitCloneVia(url: string, dest: string, p: ProxySetup): Promise<ClientResult> {
  const home = mkdtempSync(join(tmpdir(), "egressd-git-"));
  try {
    const env = baseEnv(home, { GIT_CONFIG_NOSYSTEM: "1", GIT_TERMINAL_PROMPT: "0", GIT_CURL_VERBOSE: "0" });
    const argv = ["git", "-c", `http.proxy=${proxyUrlWithCredentials(p)}`, "-c", `http.sslCAInfo=${p.caFile}`, "clone", "-q", url, dest];
    const r = await run(argv, env, (p.timeoutMs ?? 30_000) + 5000, undefined, p.prefix);
    const m = /The requested URL returned error: (\d{3})|CONNECT tunnel failed, response (\d{3})|Received HTTP code (\d{3}) from proxy/.exec(r.stderr);
    const status = m ? Number(m[1] ?? m[2] ?? m[3]) : r.exitCode === 0 ? 200 : null;
    return { client: "git", exitCode: r.exitCode, status, body: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** What {@link aptVia} did. `downloaded` is the .deb's path when the download succeeded. */
export interface AptResult extends ClientResult {
  readonly downloaded: string | null;
}

/**
 * `apt-get update` against one sources.list line and then `apt-get download <pkg>`, with
 * `Acquire::http::Proxy` set, entirely inside `workDir` (its own lists, cache, status and sources:
 * the system's apt state is neither read nor touched). Runs as root with the download sandbox
 * disabled, since apt's `_apt` user cannot write into a root-owned temp dir.
 */
export async function aptVia(sourcesLine: string, packageName: string, workDir: string, p: ProxySetup): Promise<AptResult> {
  const lists = join(workDir, "lists");
  const cache = join(workDir, "cache");
  const sources = join(workDir, "sources.list");
  await Bun.write(join(lists, "partial", ".keep"), "");
  await Bun.write(join(cache, "archives", "partial", ".keep"), "");
  await Bun.write(join(workDir, "status"), "");
  await Bun.write(sources, sourcesLine + "\n");
  const opts = [
    "-o", `Dir::Etc::sourcelist=${sources}`,
    "-o", "Dir::Etc::sourceparts=-",
    "-o", `Dir::State::Lists=${lists}`,
    "-o", `Dir::State::status=${join(workDir, "status")}`,
    "-o", `Dir::Cache=${cache}`,
    "-o", "Debug::NoLocking=1",
    "-o", "APT::Sandbox::User=root",
    "-o", `Acquire::http::Proxy=${proxyUrlWithCredentials(p)}`,
    "-o", "Acquire::Retries=0",
    "-o", "Acquire::http::Timeout=20",
  ];
  const env = baseEnv(workDir, { DEBIAN_FRONTEND: "noninteractive" });
  const timeout = (p.timeoutMs ?? 30_000) + 5000;
  const update = await run(["apt-get", ...opts, "update"], env, timeout, undefined, p.prefix);
  const statusOf = (s: string) => {
    const m = /(\d{3})\s+[A-Za-z][A-Za-z ]*\s*\[IP:|Err:\d+ \S+ .*\n\s+(\d{3}) /.exec(s);
    return m ? Number(m[1] ?? m[2]) : null;
  };
  // apt-get update exits 0 even when a source failed; "Err:" or "W: Failed" mark it.
  const failed = /^(Err:|W: Failed|E: )/m.test(update.stdout + update.stderr);
  if (update.exitCode !== 0 || failed) {
    return { client: "apt", exitCode: update.exitCode === 0 ? 100 : update.exitCode, status: statusOf(update.stdout + update.stderr), body: update.stdout, stderr: update.stderr, downloaded: null };
  }
  const dl = await run(["apt-get", ...opts, "download", packageName], env, timeout, workDir, p.prefix);
  const deb = dl.exitCode === 0 ? (new Bun.Glob(`${packageName}_*.deb`).scanSync({ cwd: workDir }).next().value ?? null) : null;
  return {
    client: "apt",
    exitCode: dl.exitCode,
    status: dl.exitCode === 0 ? 200 : statusOf(dl.stdout + dl.stderr),
    body: update.stdout + dl.stdout,
    stderr: update.stderr + dl.stderr,
    downloaded: deb ? join(workDir, deb) : null,
  };
}
