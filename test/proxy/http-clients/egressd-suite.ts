/**
 * The real-client tests of egressd's HTTP proxy, written once and run twice: against the
 * standalone `egressd proxy` on loopback (test/proxy/http-egressd.test.ts) and through the tunnel
 * in the namespace lab (test/e2e/http-proxy.test.ts). Each environment provides the proxy URLs, the
 * names (resolved by the proxy, so Go does not skip the proxy for loopback) and what the target
 * should see as the client's address.
 *
 * How each client shows a refusal (the same as against tinyproxy, http-clients.test.ts): the
 * status where it reports one; for a refused CONNECT wget and Go print only our reason phrase,
 * undici nothing but a failure.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REASON_PHRASES } from "../../../lib/proxy/http/replies.ts";
import { CLIENT_NAMES, aptVia, fetchVia, gitCloneVia, type ClientName, type ClientResult, type ProxySetup } from "./clients.ts";
import type { AptRepo, GitRepo } from "./repos.ts";
import { HELLO_BODY } from "./target-server.ts";

/** What one run of the suite needs; read lazily (after `beforeAll`). */
export interface SuiteEnv {
  /** `http://ip:port` of an egressd listener without auth. */
  readonly openProxy: string;
  /**
   * `http://ip:port` of an egressd listener with `user`/`password` auth. The auth tests run last,
   * after `enableAuth()` when given (the lab turns proxy.auth on by a reload, as auth is global).
   */
  readonly authProxy: string;
  readonly enableAuth?: () => Promise<void>;
  readonly user: string;
  readonly password: string;
  readonly caFile: string;
  readonly prefix?: readonly string[];
  /** A name for the target servers, resolved by the proxy. */
  readonly name: string;
  readonly httpPort: number;
  readonly httpsPort: number;
  /** A name that resolves to a private address (the policy refuses it). */
  readonly privateName: string;
  /** `host:port` of a port where nothing listens (refused). */
  readonly refused: string;
  /** `host:port` that never answers: its SYNs are dropped, so the proxy's connect times out. */
  readonly blackhole: string;
  /** The address the target must see the client come from. */
  readonly clientAddress: string;
  readonly git: GitRepo;
  readonly apt: AptRepo;
  /** Scratch directory. */
  readonly dir: string;
}

/** True when this client, for this scheme, goes through CONNECT (undici tunnels http:// too). */
function tunnels(client: ClientName, scheme: "http" | "https"): boolean {
  return scheme === "https" || client === "node-undici";
}

/** Asserts that `r` shows the proxy's `status` the way `client` can show it. */
export function expectRefusal(client: ClientName, scheme: "http" | "https", r: ClientResult, status: number): void {
  expect(r.body).not.toBe(HELLO_BODY);
  const tunnelled = tunnels(client, scheme);
  if (client === "node-undici" || (tunnelled && client === "node-undici-forward")) {
    // undici loses the status of a refused CONNECT ("Request was cancelled."); it must still fail.
    expect(r.exitCode, r.stderr).not.toBe(0);
  } else if (tunnelled && (client === "wget" || client === "go")) {
    expect(r.stderr).toContain(REASON_PHRASES[status]!);
  } else {
    expect(r.status, r.stderr).toBe(status);
  }
}

/** Registers the suite's tests; `env()` is called inside each test. */
export function egressdClientSuite(env: () => SuiteEnv): void {
  const setup = (e: SuiteEnv, proxyUrl = e.openProxy, auth = false): ProxySetup => ({
    proxyUrl,
    caFile: e.caFile,
    prefix: e.prefix,
    timeoutMs: 20_000,
    ...(auth ? { user: e.user, password: e.password } : {}),
  });

  for (const client of CLIENT_NAMES) {
    for (const scheme of ["http", "https"] as const) {
      test(`${client} fetches an ${scheme} target, which sees the expected client address`, async () => {
        const e = env();
        const port = scheme === "http" ? e.httpPort : e.httpsPort;
        const hello = await fetchVia(client, `${scheme}://${e.name}:${port}/hello`, setup(e));
        expect({ exit: hello.exitCode, status: hello.status, body: hello.body }, hello.stderr).toEqual({ exit: 0, status: 200, body: HELLO_BODY });
        const ip = await fetchVia(client, `${scheme}://${e.name}:${port}/ip`, setup(e));
        expect(ip.body.trim(), ip.stderr).toBe(e.clientAddress);
      });
    }
  }

  for (const client of CLIENT_NAMES) {
    for (const scheme of ["http", "https"] as const) {
      test(`${client} sees 403 for a private destination and 502 for a refused port (${scheme})`, async () => {
        const e = env();
        const port = scheme === "http" ? e.httpPort : e.httpsPort;
        const denied = await fetchVia(client, `${scheme}://${e.privateName}:${port}/hello`, setup(e));
        expectRefusal(client, scheme, denied, 403);
        const refused = await fetchVia(client, `${scheme}://${e.refused}/hello`, setup(e));
        expectRefusal(client, scheme, refused, 502);
      });
    }
  }

  // Forwarded (http) and tunnelled (https, CONNECT): the two paths answer a timeout apart.
  for (const client of ["curl-x", "python-requests", "wget", "go"] as const) {
    test(`${client} sees 504 when the destination does not answer (http and https)`, async () => {
      const e = env();
      for (const scheme of ["http", "https"] as const) {
        const r = await fetchVia(client, `${scheme}://${e.blackhole}/hello`, setup(e));
        expectRefusal(client, scheme, r, 504);
      }
    });
  }

  test("git clones over https with http.proxy", async () => {
    const e = env();
    const dest = join(e.dir, `clone-${Date.now()}`);
    const r = await gitCloneVia(`https://${e.name}:${e.httpsPort}${e.git.urlPath}`, dest, setup(e));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(dest, e.git.file), "utf8")).toBe(e.git.content);
  });

  test("apt-get update and download with Acquire::http::Proxy", async () => {
    const e = env();
    const line = e.apt.sourcesLine(`http://${e.name}:${e.httpPort}`);
    const r = await aptVia(line, e.apt.packageName, join(e.dir, `apt-${Date.now()}`), setup(e));
    expect({ exit: r.exitCode, downloaded: r.downloaded !== null }, r.body + r.stderr).toEqual({ exit: 0, downloaded: true });
  });

  test("with proxy.auth on, a request without credentials gets 407 and one with them passes", async () => {
    const e = env();
    await e.enableAuth?.();
    const none = await fetchVia("curl-x", `http://${e.name}:${e.httpPort}/hello`, setup(e, e.authProxy));
    expect(none.status, none.stderr).toBe(407);
    const good = await fetchVia("curl-x", `http://${e.name}:${e.httpPort}/ip`, setup(e, e.authProxy, true));
    expect(good.body.trim(), good.stderr).toBe(e.clientAddress);
  });

  for (const client of CLIENT_NAMES) {
    test(`${client} authenticates with Basic credentials (http and https), and sees 407 without them`, async () => {
      const e = env();
      for (const [scheme, port] of [["http", e.httpPort], ["https", e.httpsPort]] as const) {
        const good = await fetchVia(client, `${scheme}://${e.name}:${port}/hello`, setup(e, e.authProxy, true));
        expect({ exit: good.exitCode, status: good.status, body: good.body }, good.stderr).toEqual({ exit: 0, status: 200, body: HELLO_BODY });
      }
      const none = await fetchVia(client, `http://${e.name}:${e.httpPort}/hello`, setup(e, e.authProxy));
      expectRefusal(client, "http", none, 407);
    });
  }

  test("curl --proxy-user, and HTTPS_PROXY for curl, reach an https target", async () => {
    const e = env();
    const a = await fetchVia("curl-x", `https://${e.name}:${e.httpsPort}/hello`, setup(e, e.authProxy, true));
    const b = await fetchVia("curl-env", `https://${e.name}:${e.httpsPort}/hello`, setup(e, e.authProxy, true));
    expect([a.body, b.body], a.stderr + b.stderr).toEqual([HELLO_BODY, HELLO_BODY]);
  });

  test("git clones with credentials in http.proxy, and sees 407 without them", async () => {
    const e = env();
    const url = `https://${e.name}:${e.httpsPort}${e.git.urlPath}`;
    const dest = join(e.dir, `clone-auth-${Date.now()}`);
    const authed = await gitCloneVia(url, dest, setup(e, e.authProxy, true));
    expect(authed.exitCode, authed.stderr).toBe(0);
    const none = await gitCloneVia(url, `${dest}-407`, setup(e, e.authProxy));
    expect(none.status, none.stderr).toBe(407);
  });

  test("apt-get with credentials in Acquire::http::Proxy, and the 407 without them", async () => {
    const e = env();
    const line = e.apt.sourcesLine(`http://${e.name}:${e.httpPort}`);
    const good = await aptVia(line, e.apt.packageName, join(e.dir, `apt-auth-${Date.now()}`), setup(e, e.authProxy, true));
    expect({ exit: good.exitCode, downloaded: good.downloaded !== null }, good.body + good.stderr).toEqual({ exit: 0, downloaded: true });
    const none = await aptVia(line, e.apt.packageName, join(e.dir, `apt-407-${Date.now()}`), setup(e, e.authProxy));
    expect(none.downloaded).toBeNull();
    expect(none.status, none.body + none.stderr).toBe(407);
  });
}
