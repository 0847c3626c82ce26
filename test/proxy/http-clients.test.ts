// Layer 2: the real-client harness (test/proxy/http-clients/) validated against a known-good HTTP
// proxy, Debian's tinyproxy, on loopback, so that when egressd's HTTP proxy is tested with the same
// wrappers a failure is egressd's, not the harness's. Skipped where tinyproxy is not installed
// (scripts/setup.sh installs it).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLIENT_NAMES, aptVia, buildGoFetch, fetchVia, gitCloneVia, type ProxySetup } from "./http-clients/clients.ts";
import { buildAptRepo, buildGitRepo, type AptRepo, type GitRepo } from "./http-clients/repos.ts";
import { HELLO_BODY, serveTargets, type Targets } from "./http-clients/target-server.ts";
import { BUN } from "./helpers.ts";
import { startTinyproxy, tinyproxyAvailable, type Tinyproxy } from "./http-clients/tinyproxy.ts";
import { makeTestPki, type TestPki } from "./http-clients/tls.ts";

const NAME = "www.example.test";
const DENIED = "denied.example.test";
let dir: string;
let pki: TestPki;
let targets: Targets;
let apt: AptRepo;
let git: GitRepo;
let open: Tinyproxy;
let authed: Tinyproxy;
let denying: Tinyproxy;
const seen: string[] = [];

describe.skipIf(!tinyproxyAvailable())("real clients through tinyproxy", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "egressd-http-clients-"));
    pki = makeTestPki(join(dir, "pki"));
    const root = join(dir, "www");
    apt = buildAptRepo(root);
    git = buildGitRepo(root);
    targets = serveTargets({ certFile: pki.certFile, keyFile: pki.keyFile, root, log: (l) => seen.push(l) });
    open = await startTinyproxy();
    authed = await startTinyproxy({ auth: { user: "pod", password: "s3cret" } });
    denying = await startTinyproxy({ hosts: { [NAME]: "127.0.0.1", [DENIED]: "127.0.0.1" }, deny: [DENIED] });
    await buildGoFetch(); // a cold build takes most of a minute; not inside a test's timeout
  }, 300_000);

  afterAll(async () => {
    await open?.stop();
    await authed?.stop();
    await denying?.stop();
    targets?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const setup = (p: Tinyproxy, auth?: { user: string; password: string }): ProxySetup => ({ proxyUrl: p.url, caFile: pki.caFile, ...auth });

  for (const client of CLIENT_NAMES) {
    for (const scheme of ["http", "https"] as const) {
      test(`${client} fetches an ${scheme} target`, async () => {
        const port = scheme === "http" ? targets.httpPort : targets.httpsPort;
        const url = `${scheme}://${NAME}:${port}/hello`;
        const r = await fetchVia(client, url, setup(open));
        expect({ exit: r.exitCode, status: r.status, body: r.body }, r.stderr).toEqual({ exit: 0, status: 200, body: HELLO_BODY });
        // The request reached the target through the proxy, not directly: tinyproxy logged it.
        // undici tunnels http:// too unless told to forward.
        const tunnels = scheme === "https" || client === "node-undici";
        expect(open.log()).toContain(tunnels ? `CONNECT ${NAME}:${port}` : `GET http://${NAME}:${port}/hello`);
      });
    }
  }

  for (const client of CLIENT_NAMES) {
    test(`${client} authenticates with Basic credentials, and sees 407 without them`, async () => {
      const url = `http://${NAME}:${targets.httpPort}/hello`;
      const good = await fetchVia(client, url, setup(authed, { user: "pod", password: "s3cret" }));
      expect({ exit: good.exitCode, status: good.status, body: good.body }, good.stderr).toEqual({ exit: 0, status: 200, body: HELLO_BODY });
      const none = await fetchVia(client, url, setup(authed));
      // undici tunnels http:// too and loses the CONNECT status; it must still fail, not succeed.
      if (client === "node-undici") expect(none.exitCode, none.stderr).not.toBe(0);
      else expect(none.status, none.stderr).toBe(407);
    });
  }

  // How each client shows a proxy's 403: the status where it reports one; for a refused CONNECT,
  // wget and Go print only the reason phrase (tinyproxy's is "Filtered"), undici nothing.
  for (const client of CLIENT_NAMES) {
    for (const scheme of ["http", "https"] as const) {
      test(`${client} sees the proxy's 403 for an ${scheme} target`, async () => {
        const port = scheme === "http" ? targets.httpPort : targets.httpsPort;
        const r = await fetchVia(client, `${scheme}://${DENIED}:${port}/hello`, setup(denying));
        expect(r.body).not.toBe(HELLO_BODY);
        const tunnelled = scheme === "https" || client === "node-undici";
        if (client === "node-undici" || (tunnelled && client === "node-undici-forward")) expect(r.exitCode, r.stderr).not.toBe(0);
        else if (tunnelled && (client === "wget" || client === "go")) expect(r.stderr).toContain("Filtered");
        else expect(r.status, r.stderr).toBe(403);
      });
    }
  }

  test("curl sees the proxy's refusal of a CONNECT as its status", async () => {
    const r = await fetchVia("curl-x", `https://${NAME}:${targets.httpsPort}/hello`, setup(authed));
    expect(r.exitCode).not.toBe(0);
    expect(r.status, r.stderr).toBe(407);
  });

  test("git clones over https through the proxy", async () => {
    const dest = join(dir, "clone");
    const r = await gitCloneVia(`https://${NAME}:${targets.httpsPort}${git.urlPath}`, dest, setup(open));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(dest, git.file), "utf8")).toBe(git.content);
    expect(open.log()).toContain(`CONNECT ${NAME}:${targets.httpsPort}`);
  });

  test("git sees 407 from a proxy that wants credentials it was not given", async () => {
    const r = await gitCloneVia(`https://${NAME}:${targets.httpsPort}${git.urlPath}`, join(dir, "clone-407"), setup(authed));
    expect(r.exitCode).not.toBe(0);
    expect(r.status, r.stderr).toBe(407);
  });

  test("apt-get updates from and downloads out of the lab repository through the proxy", async () => {
    const work = join(dir, "apt-work");
    const r = await aptVia(apt.sourcesLine(`http://${NAME}:${targets.httpPort}`), apt.packageName, work, setup(open));
    expect({ exit: r.exitCode, downloaded: r.downloaded !== null }, r.body + r.stderr).toEqual({ exit: 0, downloaded: true });
    expect(seen.some((l) => l.includes(`/apt/${apt.packageName}_${apt.version}_all.deb`))).toBe(true);
  });

  test("apt-get reports the failure when the proxy refuses", async () => {
    const r = await aptVia(apt.sourcesLine(`http://${NAME}:${targets.httpPort}`), apt.packageName, join(dir, "apt-407"), setup(authed));
    expect(r.exitCode).not.toBe(0);
    expect(r.downloaded).toBeNull();
    expect(r.status, r.body + r.stderr).toBe(407);
  });
});

// The lab runs the target server as its own process inside the internet host's namespace.
test("the target server runs as a process, serves /ip over https with the test CA, and logs like whoami", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "egressd-target-cli-"));
  const pkiDir = makeTestPki(join(tmp, "pki"));
  const proc = Bun.spawn([BUN, join(import.meta.dir, "http-clients", "target-server.ts"), "--http-port", "0", "--https-port", "0", "--cert", pkiDir.certFile, "--key", pkiDir.keyFile], { stdout: "pipe", stderr: "pipe" });
  try {
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`target server exited: ${await new Response(proc.stderr).text()}`);
      out += new TextDecoder().decode(value);
    }
    const m = /^ready http=(\d+) https=(\d+)$/m.exec(out);
    expect(m).not.toBeNull();
    const https = Number(m![2]);
    const curl = Bun.spawnSync(["curl", "-sS", "--noproxy", "*", "--cacert", pkiDir.caFile, "--resolve", `${NAME}:${https}:127.0.0.1`, `https://${NAME}:${https}/ip`]);
    expect(curl.stdout.toString(), curl.stderr.toString()).toBe("127.0.0.1\n");
    // Without the CA the certificate must be refused: the CA is what clients are told to trust.
    const untrusted = Bun.spawnSync(["curl", "-sS", "--noproxy", "*", "--resolve", `${NAME}:${https}:127.0.0.1`, `https://${NAME}:${https}/ip`], { env: { PATH: process.env.PATH ?? "/usr/bin" } });
    expect(untrusted.exitCode).toBe(60);
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toBe("https GET /ip from 127.0.0.1\n");
  } finally {
    proc.kill();
    await proc.exited;
    rmSync(tmp, { recursive: true, force: true });
  }
});
