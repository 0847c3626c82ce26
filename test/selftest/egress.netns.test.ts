/**
 * `egressd test` against a real daemon in the lab (the compiled binary as the lab uid in gw, its
 * exit brought up from exit-config output), run as root in gw: it passes, printing the exit's
 * address through the proxy and the home address directly, with proxy auth and tunnel DNS on; the
 * internet host's DNS log is the independent witness that the proxy's query for the name came from
 * the exit. With the exit's UDP dropped (the kill switch then holds the proxied traffic), it fails,
 * naming the reason, while the direct request still works. `egressd check --probe` refuses to run
 * while the session is live.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, chownSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildHandle } from "../../lib/exec/runner.ts";
import { BUN, ROOT } from "../cli/spawn.ts";
import { egressdBinary } from "../lab/binary.ts";
import { createLab, labUnsupported, type Lab, waitUntil } from "../lab/index.ts";
import { type LabDaemon, startLabDaemon } from "../metrics/lab/harness.ts";

const skip = labUnsupported();
const NAME = "whoami.example";
let lab: Lab;
let daemon: LabDaemon;
let whoami: ChildHandle;
const whoamiLog: string[] = [];

beforeAll(async () => {
  if (skip !== null) return;
  lab = await createLab({ prefix: "egts" });
  whoami = lab.spawn(lab.ns.inet, [BUN, join(ROOT, "main.ts"), "demo", "--serve-whoami", lab.addr.host4], { onLine: (l) => whoamiLog.push(l) });
  await waitUntil(() => whoamiLog.includes("ready") || whoami.exitStatus !== null, 15_000, "whoami");
  if (whoami.exitStatus !== null) throw new Error(`whoami exited: ${whoami.outputTail()}`);
  // The direct request resolves the name from gw's hosts file (the lab removes it with the lab).
  appendFileSync(`/etc/netns/${lab.ns.gw}/hosts`, `${lab.addr.host4} ${NAME}\n`);
  daemon = await startLabDaemon(lab, { binary: egressdBinary() });
  writeFileSync(join(daemon.dir, "proxy-password"), "s3cret\n", { mode: 0o600 });
  chownSync(join(daemon.dir, "proxy-password"), lab.uid, lab.uid);
  const line = await daemon.reload((c) => {
    c.proxy.dns = { mode: "tunnel", servers: [lab.addr.host4] };
    c.proxy.auth = { username: "tester", passwordFile: "proxy-password" };
  });
  expect(line).toMatch(/ reloaded /);
}, 180_000);

afterAll(async () => {
  await daemon?.stop();
  await lab?.destroy();
}, 60_000);

async function egressTest(...args: string[]) {
  const r = await lab.exec(lab.ns.gw, [BUN, join(ROOT, "main.ts"), "test", "--config", join(daemon.dir, "config.json"), ...args], { timeoutMs: 60_000 });
  console.log(`egressd test ${args.join(" ")}: exit ${r.exitCode}\n${r.stdout}${r.stderr}`);
  return r;
}

describe.skipIf(skip !== null)("egressd test in the lab", () => {
  test("passes: the exit's address through the proxy (socks5h, with auth), the home address directly", async () => {
    const before = whoamiLog.length;
    const r = await egressTest("--url", `http://${NAME}/`);
    expect(r.stdout.split("\n")[0]).toBe(`OK: test: through the proxy ${lab.addr.exitWan4}, directly ${lab.addr.gwWan4}`);
    expect(r.stdout).toContain(`asked: http://${NAME}/ through socks5h://${lab.addr.gwLan}:1080 (with auth), then directly`);
    expect(r.stdout).toContain(`OK: exit: ${lab.addr.exitWan4} is the exit's address (exit.endpoint ${lab.exit.endpoint})`);
    expect(r.stdout).toMatch(/OK: dns: whoami\.example was resolved by egressd \(socks5h\), which queries 203\.0\.113\.10 from its own marked uid/);
    expect(r.exitCode).toBe(0);
    // The witnesses on the internet host: the DNS query came from the exit, the requests from both.
    const seen = whoamiLog.slice(before);
    expect(seen.some((l) => new RegExp(`^dns A ${NAME.replace(".", "\\.")} from ${lab.addr.exitWan4.replace(/\./g, "\\.")}:`).test(l))).toBe(true);
    expect(seen.filter((l) => l.startsWith("http ")).map((l) => l.split(" ").find((w) => /^\d+\.\d+\.\d+\.\d+/.test(w))?.split(":")[0]).sort()).toEqual([lab.addr.gwWan4, lab.addr.exitWan4].sort());
  });

  test("https: TLS through the proxy's CONNECT tunnel, the certificate checked for the name", async () => {
    const dir = daemon.dir;
    const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", `/CN=${NAME}`, "-addext", `subjectAltName=DNS:${NAME}`, "-keyout", join(dir, "tls.key"), "-out", join(dir, "tls.crt")]);
    expect(gen.exitCode).toBe(0);
    const lines: string[] = [];
    const server = lab.spawn(lab.ns.inet, [BUN, join(import.meta.dir, "tls-whoami.ts"), lab.addr.host4, "443", join(dir, "tls.crt"), join(dir, "tls.key")], { onLine: (l) => lines.push(l) });
    await waitUntil(() => lines.includes("ready") || server.exitStatus !== null, 15_000, "the https whoami");
    const r = await egressTest("--url", `https://${NAME}/`, "--ca-file", join(dir, "tls.crt"));
    expect(r.stdout.split("\n")[0]).toBe(`OK: test: through the proxy ${lab.addr.exitWan4}, directly ${lab.addr.gwWan4}`);
    expect(r.exitCode).toBe(0);
    expect(lines.filter((l) => l.startsWith("https ")).map((l) => l.split(" from ")[1]).sort()).toEqual([lab.addr.gwWan4, lab.addr.exitWan4].sort());
    // Without the CA the certificate is not trusted: both requests fail, naming TLS.
    const untrusted = await egressTest("--url", `https://${NAME}/`);
    expect(untrusted.stdout).toMatch(/CRITICAL: proxied: the request through the proxy failed: TLS with whoami\.example failed: /);
    expect(untrusted.exitCode).toBe(2);
    server.kill("SIGKILL");
    await server.exited;
  });

  test("a wrong --expect is critical, naming both addresses", async () => {
    const r = await egressTest("--url", `http://${NAME}/`, "--expect", "198.51.100.99");
    expect(r.stdout).toContain(`CRITICAL: exit: the proxied answer ${lab.addr.exitWan4} is not the exit's address 198.51.100.99 (--expect)`);
    expect(r.exitCode).toBe(2);
  });

  test("check --probe does not run while the session is live", async () => {
    const r = await lab.exec(lab.ns.gw, [BUN, join(ROOT, "main.ts"), "check", "--probe", "--config", join(daemon.dir, "config.json"), "--socket", join(daemon.dir, "control.sock")], { timeoutMs: 30_000 });
    console.log(`check --probe with a live session: exit ${r.exitCode}: ${r.stdout}${r.stderr}`);
    expect(r.stdout).toMatch(/^OK: probe: skipped, a session is live \(latest handshake \d+ s ago\)/);
    expect(r.exitCode).toBe(0);
  });

  test("fails with the reason when the kill switch holds the traffic (the exit's UDP is dropped)", async () => {
    const table = "table inet egt_test_drop {\n\tchain input {\n\t\ttype filter hook input priority -10; policy accept;\n\t\tudp dport 51820 drop\n\t}\n}\n";
    await lab.runner(lab.ns.exit).run(["nft", "-f", "-"], { stdin: table });
    try {
      const r = await egressTest("--url", `http://${NAME}/`, "--timeout", "15");
      expect(r.stdout.split("\n")[0]).toBe(`CRITICAL: test: through the proxy (failed), directly ${lab.addr.gwWan4}`);
      expect(r.stdout).toMatch(/CRITICAL: proxied: the request through the proxy failed: (the proxy could not connect to whoami\.example:80: SOCKS5 reply \d \(\w+\)|request: no answer within)/);
      expect(r.exitCode).toBe(2);
    } finally {
      await lab.runner(lab.ns.exit).run(["nft", "delete", "table", "inet", "egt_test_drop"]);
    }
  });
});
