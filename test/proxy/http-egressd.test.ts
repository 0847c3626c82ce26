// Layer 3: real HTTP clients (curl, wget, Go, Python, undici, git, apt) through the standalone
// `egressd proxy` on loopback, every one over plain http and https, with and without credentials,
// and every refusal as the client shows it. The names are resolved by the proxy (`--dns tunnel`
// against a test DNS server), so that Go, which never proxies loopback, uses the proxy. The same
// suite runs through the tunnel in the lab (test/e2e/http-proxy.test.ts).
import { afterAll, beforeAll, describe } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildGoFetch } from "./http-clients/clients.ts";
import { egressdClientSuite, type SuiteEnv } from "./http-clients/egressd-suite.ts";
import { buildAptRepo, buildGitRepo } from "./http-clients/repos.ts";
import { serveTargets, type Targets } from "./http-clients/target-server.ts";
import { makeTestPki } from "./http-clients/tls.ts";
import { blackhole, cleanup, closedPort, dnsServer, spawnProxy, type DnsServer, type ProxyProcess } from "./helpers.ts";

let env: SuiteEnv;
let dir: string;
let targets: Targets;
let dns: DnsServer;
let open: ProxyProcess;
let authed: ProxyProcess;

describe("real clients through egressd proxy on loopback", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "egressd-http-egressd-"));
    const pki = makeTestPki(join(dir, "pki"));
    const root = join(dir, "www");
    const apt = buildAptRepo(root);
    const git = buildGitRepo(root);
    targets = serveTargets({ certFile: pki.certFile, keyFile: pki.keyFile, root });
    dns = await dnsServer({
      "www.example.test": ["127.0.0.1"],
      "private.example.test": ["10.0.0.5"],
      "refused.example.test": ["127.0.0.1"],
      "hole.example.test": ["127.0.0.1"],
    });
    const hole = await blackhole();
    const password = join(dir, "password");
    writeFileSync(password, "s3cret\n");
    chmodSync(password, 0o600);
    const common = ["--dns", "tunnel", "--dns-server", `${dns.address}:${dns.port}`, "--allow-destination", "127.0.0.0/8", "--connect-timeout", "2s"];
    open = await spawnProxy(common);
    authed = await spawnProxy([...common, "--user", "pod", "--password-file", password]);
    await buildGoFetch();
    env = {
      openProxy: `http://127.0.0.1:${open.port}`,
      authProxy: `http://127.0.0.1:${authed.port}`,
      user: "pod",
      password: "s3cret",
      caFile: pki.caFile,
      name: "www.example.test",
      httpPort: targets.httpPort,
      httpsPort: targets.httpsPort,
      privateName: "private.example.test",
      refused: `refused.example.test:${closedPort()}`,
      blackhole: `hole.example.test:${hole}`,
      clientAddress: "127.0.0.1",
      git,
      apt,
      dir,
    };
  }, 300_000);

  afterAll(async () => {
    await cleanup();
    dns?.stop();
    targets?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  egressdClientSuite(() => env);
});
