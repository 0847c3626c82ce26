/**
 * HTTP proxying through the tunnel, end to end: the same real clients as on loopback
 * (test/proxy/http-clients/egressd-suite.ts: curl, wget, Go, Python, undici, git, apt) in the
 * client namespace use the compiled egressd in gw as HTTP_PROXY/HTTPS_PROXY, on the same port as
 * SOCKS5. The targets (HTTP and HTTPS with a throwaway CA, an apt repository, a git repository) run
 * on the internet host; names are resolved through the tunnel by dnsmasq there; the target sees
 * every request come from the exit's address. proxy.auth is turned on by a reload for the auth half.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildHandle } from "../../lib/exec/runner.ts";
import { waitUntil } from "../../lib/lab/wait.ts";
import { labUnsupported } from "../lab/index.ts";
import { buildGoFetch } from "../proxy/http-clients/clients.ts";
import { egressdClientSuite, type SuiteEnv } from "../proxy/http-clients/egressd-suite.ts";
import { buildAptRepo, buildGitRepo } from "../proxy/http-clients/repos.ts";
import { makeTestPki } from "../proxy/http-clients/tls.ts";
import { BUN, ROOT, type Bed, baseConfig, startGateway } from "./helpers.ts";

const skip = labUnsupported() ?? (Bun.which("dnsmasq") ? null : "e2e tests need dnsmasq");
const HTTP_PORT = 8081;
const HTTPS_PORT = 8443;
let bed: Bed;
let env: SuiteEnv;
let dir: string;
const targetLog: string[] = [];

beforeAll(async () => {
  if (skip !== null) return;
  dir = mkdtempSync(join(tmpdir(), "egressd-e2e-http-"));
  chmodSync(dir, 0o755);
  bed = await startGateway({
    dnsNames: { "www.example.test": "203.0.113.10", "private.example.test": "10.0.0.5", "refused.example.test": "203.0.113.10", "silent.example.test": "203.0.113.11" },
  });
  const { lab } = bed;
  const pki = makeTestPki(join(dir, "pki"));
  const root = join(dir, "www");
  const apt = buildAptRepo(root);
  const git = buildGitRepo(root);
  let ready = false;
  const targets: ChildHandle = lab.spawn(lab.ns.inet, [
    BUN, join(ROOT, "test/proxy/http-clients/target-server.ts"), "--address", lab.addr.host4,
    "--http-port", String(HTTP_PORT), "--https-port", String(HTTPS_PORT), "--cert", pki.certFile, "--key", pki.keyFile, "--root", root,
  ], { onLine: (l) => (l.startsWith("ready ") ? (ready = true) : targetLog.push(l)) });
  await waitUntil(() => {
    if (targets.exitStatus !== null) throw new Error(`target server exited: ${targets.outputTail()}`);
    return ready;
  }, 15_000, "the target server");
  await buildGoFetch();
  const password = join(bed.gw.dir, "proxy-password");
  writeFileSync(password, "s3cret\n");
  chownSync(password, lab.uid, lab.uid);
  chmodSync(password, 0o600);
  const proxy = `http://${lab.addr.gwLan}:1080`;
  env = {
    openProxy: proxy,
    authProxy: proxy,
    user: "pod",
    password: "s3cret",
    enableAuth: async () => {
      const c = baseConfig(lab, bed.gw.dir);
      c.proxy.auth = { username: "pod", passwordFile: password };
      bed.gw.writeConfig(c);
      const from = bed.gw.log.length;
      bed.gw.daemon.kill("SIGHUP");
      const line = await bed.gw.waitLog(/reloaded|reload refused|reload failed/, 20_000, from);
      if (!/reloaded/.test(line)) throw new Error(`reload: ${line}`);
    },
    caFile: pki.caFile,
    prefix: lab.prefix(lab.ns.client),
    name: "www.example.test",
    httpPort: HTTP_PORT,
    httpsPort: HTTPS_PORT,
    privateName: "private.example.test",
    refused: "refused.example.test:8099", // nothing listens there (not 9: fetch refuses "bad ports")
    // The lab's silent host (lib/lab/topology.ts): inet drops its packets, so the connect times out
    // after proxy.connectTimeout (3 s in baseConfig); an unused address would be answered at once.
    blackhole: "silent.example.test:8443",
    clientAddress: lab.addr.exitWan4,
    git,
    apt,
    dir,
  };
}, 300_000);

afterAll(async () => {
  await bed?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(skip !== null)("real HTTP clients through the tunnel", () => {
  egressdClientSuite(() => env);

  test("every request reached the target from the exit's address, never the home address", () => {
    expect(targetLog.length).toBeGreaterThan(40);
    const from = new Set(targetLog.map((l) => l.split(" from ")[1]));
    expect([...from]).toEqual([bed.lab.addr.exitWan4]);
  });

  test("the daemon's log line names the protocol of each connection", () => {
    const lines = bed.gw.log.filter((l) => l.includes("proxy connection closed"));
    expect(lines.some((l) => /protocol=http_connect\b/.test(l))).toBe(true);
    expect(lines.some((l) => /protocol=http\b/.test(l))).toBe(true);
  });

  test("every forwarded request has a line naming its destination; the 504s are connect timeouts to the silent host", () => {
    const requests = bed.gw.log.filter((l) => l.includes("proxy http request"));
    // apt, git and the clients' http fetches: far more requests than connections would show.
    expect(requests.length).toBeGreaterThan(20);
    const silent = requests.filter((l) => l.includes(" target=silent.example.test:8443 "));
    expect(silent.length).toBeGreaterThanOrEqual(4); // curl, python, wget, go over http://
    for (const l of silent) expect(l).toMatch(/ status=504 result=timeout reason="ETIMEDOUT: connect to 203\.0\.113\.11:8443 timed out after 3000 ms" /);
    const tunnelled = bed.gw.log.filter((l) => l.includes("proxy connection closed") && l.includes(" protocol=http_connect ") && l.includes(" target=silent.example.test:8443 "));
    expect(tunnelled.length).toBeGreaterThanOrEqual(4); // the same clients over https://
    for (const l of tunnelled) expect(l).toContain(" result=timeout ");
  });
});
