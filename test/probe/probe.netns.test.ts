/**
 * `egressd check --probe` against a real WireGuard (the lab's wireguard-go exit, brought up by
 * wg-quick from exit-config output), run as root in the gateway namespace with no daemon: the exit
 * answers the gateway's key; it stays silent when its UDP is dropped, when the gateway's config has
 * another exit key, and when the gateway's key is not its peer; and it answers, but not validly,
 * when the gateway uses a preshared key the exit does not have. The exit's own view (`wg show dump`:
 * the endpoint it learnt) is the witness that it accepted the initiation.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generatePresharedKey, generatePrivateKey, publicKeyOf } from "../../lib/keys/keys.ts";
import { BUN, ROOT } from "../cli/spawn.ts";
import { createLab, labUnsupported, type Lab } from "../lab/index.ts";

const skip = labUnsupported();
let lab: Lab;
let dir: string;

beforeAll(async () => {
  if (skip !== null) return;
  lab = await createLab({ prefix: "egtp" });
  dir = mkdtempSync(join(tmpdir(), "egressd-probe-"));
}, 60_000);

afterAll(async () => {
  await lab?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** Writes a gateway config for the lab (with `patch` applied) and runs `egressd check --probe` in gw. */
async function probe(name: string, patch: (c: Record<string, any>) => void = () => {}) {
  const config: Record<string, any> = {
    interface: { name: lab.gateway.wgName, privateKeyFile: lab.gateway.privateKeyFile, addresses: [lab.addr.tunnelGw4, lab.addr.tunnelGw6] },
    exit: { name: "lab-exit", publicKey: lab.exit.publicKey, endpoint: lab.exit.endpoint },
    control: { socket: join(dir, "none.sock") },
  };
  patch(config);
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  const r = await lab.exec(lab.ns.gw, [BUN, join(ROOT, "main.ts"), "check", "--probe", "--config", file, "--socket", join(dir, "none.sock")], { timeoutMs: 30_000 });
  console.log(`${name}: exit ${r.exitCode}: ${r.stdout.trim()}`);
  return r;
}

async function exitEndpoint(): Promise<string> {
  const dump = await lab.exec(lab.ns.exit, ["wg", "show", lab.plan.ifs.exitWg, "dump"]);
  return dump.stdout.trim().split("\n")[1]!.split("\t")[2]!; // peer line: public key, psk, endpoint
}

function secretFile(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text + "\n", { mode: 0o600 });
  return f;
}

describe.skipIf(skip !== null)("the handshake probe against the lab's wireguard-go exit", () => {
  test("answered: a valid response, and the exit learnt the probe's address as the gateway's endpoint", async () => {
    expect(await exitEndpoint()).toBe("(none)");
    const r = await probe("answered");
    expect(r.stdout).toMatch(/^OK: probe: lab-exit at 198\.51\.100\.2:51820 answered a handshake initiation with a valid response in [\d.]+ ms: reachable, and both keys are right \(the daemon did not answer/);
    expect(r.exitCode).toBe(0);
    expect(await exitEndpoint()).toMatch(new RegExp(`^${lab.addr.gwWan4.replace(/\./g, "\\.")}:\\d+$`));
  });

  test("no answer: the exit's UDP is dropped", async () => {
    const table = "table inet egt_probe_drop {\n\tchain input {\n\t\ttype filter hook input priority -10; policy accept;\n\t\tudp dport 51820 drop\n\t}\n}\n";
    await lab.runner(lab.ns.exit).run(["nft", "-f", "-"], { stdin: table });
    try {
      const r = await probe("dropped");
      expect(r.stdout).toMatch(/^CRITICAL: probe: no answer from lab-exit at 198\.51\.100\.2:51820 to 3 handshake initiations in [\d.]+ s: the exit is down or unreachable, the endpoint is wrong, or a key is wrong on either side/);
      expect(r.exitCode).toBe(2);
    } finally {
      await lab.runner(lab.ns.exit).run(["nft", "delete", "table", "inet", "egt_probe_drop"]);
    }
  });

  test("no answer: the config's exit.publicKey is not the exit's key (mac1 fails, WireGuard stays silent)", async () => {
    const r = await probe("wrong-exit-key", (c) => (c.exit.publicKey = publicKeyOf(generatePrivateKey())));
    expect(r.stdout).toMatch(/^CRITICAL: probe: no answer from lab-exit/);
    expect(r.exitCode).toBe(2);
  });

  test("no answer: the gateway's key is not a peer of the exit", async () => {
    const r = await probe("stranger", (c) => (c.interface.privateKeyFile = secretFile("stranger.key", generatePrivateKey())));
    expect(r.stdout).toMatch(/^CRITICAL: probe: no answer from lab-exit/);
    expect(r.exitCode).toBe(2);
  });

  test("invalid: the gateway uses a preshared key the exit does not have; the exit answers, the response does not verify", async () => {
    const r = await probe("psk", (c) => (c.exit.presharedKeyFile = secretFile("psk", generatePresharedKey())));
    expect(r.stdout).toMatch(/^CRITICAL: probe: lab-exit at 198\.51\.100\.2:51820 answered, but not validly: the response does not decrypt \(another key pair, or another preshared key\)/);
    expect(r.exitCode).toBe(2);
  });

  test("answered again after all that (the exit takes a newer timestamp)", async () => {
    const r = await probe("answered-again");
    expect(r.stdout).toMatch(/^OK: probe: .* answered a handshake initiation with a valid response/);
    expect(r.exitCode).toBe(0);
  });
});
