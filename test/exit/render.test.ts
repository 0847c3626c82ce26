/**
 * The exit renderers (lib/exit) and `egressd exit-config`: golden files for every format, tables for
 * the derived fields, and each rendering checked by the tool that consumes it: `nft -c` in a
 * throwaway namespace, `nix-instantiate --parse`, `cloud-init schema`, and wg-quick's own parser
 * (`wg-quick strip`). That the lab's exit runs on these files is test/lab and test/e2e: the lab
 * configures its exit from them (lib/lab/exit-config.ts).
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configSchema, type ConfigInput } from "../../lib/config/schema.ts";
import { renderCloudInit } from "../../lib/exit/cloud-init.ts";
import { renderNixos } from "../../lib/exit/nixos.ts";
import { renderNft, renderSysctl } from "../../lib/exit/nft.ts";
import { ExitSpecError, exitSpecsFromConfig } from "../../lib/exit/spec.ts";
import { PRIVATE_KEY_PLACEHOLDER, renderWgQuick, renderWgSetconf } from "../../lib/exit/wireguard.ts";
import { expectGolden } from "../host/golden.ts";
import { run as runNix } from "../nix/helpers.ts";
import { runCli } from "../cli/spawn.ts";

const GOLDEN = join(import.meta.dir, "golden");
const EXIT_KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const EXIT_PUB = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
const GW_KEY = "0MlUHqAY9MIbRLmuHOEyX60bglyaa0cI4M5gjBGGhFQ=";
const GW_PUB = "VyPEw0XLDV3rGkX5KLA+RY8QE4ZC4QQ/Z1YYv5V3ZiI=";
const PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=";

function config(patch: (c: ConfigInput) => void = () => {}) {
  const c: ConfigInput = {
    interface: { name: "wg-egress", addresses: ["10.100.0.2/32", "fd00::2/128"] },
    exit: { name: "hetzner", publicKey: EXIT_PUB, endpoint: "vps.example.net:51820" },
  };
  patch(c);
  return configSchema.parse(c);
}

function spec(patch?: (c: ConfigInput) => void, opts: { addresses?: string[]; interfaceName?: string } = { addresses: ["10.100.0.1/24", "fd00::1/64"] }) {
  return exitSpecsFromConfig(config(patch), { gatewayPublicKey: GW_PUB, ...opts })[0]!;
}

describe("exit renderings (golden)", () => {
  const cases: [string, () => string][] = [
    ["wg-quick.conf", () => renderWgQuick(spec(), { privateKey: EXIT_KEY })],
    ["wg-quick-placeholder.conf", () => renderWgQuick(spec())],
    ["wg-quick-psk-no-nft.conf", () => renderWgQuick(spec((c) => (c.exit!.presharedKeyFile = "psk"), {}), { privateKey: EXIT_KEY, presharedKey: PSK, nftFile: null })],
    ["wg-setconf.conf", () => renderWgSetconf(spec(), { privateKey: EXIT_KEY })],
    ["exit.nft", () => renderNft(spec())],
    ["exit-v4.nft", () => renderNft(spec((c) => (c.interface.addresses = ["10.7.0.9/32"]), { interfaceName: "wg-exit" }))],
    ["sysctl.conf", () => renderSysctl(spec())],
    ["cloud-init.yaml", () => renderCloudInit(spec(), { privateKey: EXIT_KEY })],
    ["cloud-init-placeholder.yaml", () => renderCloudInit(spec((c) => (c.exit!.presharedKeyFile = "psk")))],
    ["exit.nix", () => renderNixos(spec())],
    ["exit-psk.nix", () => renderNixos(spec((c) => (c.exit!.presharedKeyFile = "psk"), { interfaceName: "wg-exit" }), { privateKeyFile: "/run/agenix/exit-key", presharedKeyFile: "/run/agenix/exit-psk" })],
  ];
  test.each(cases)("%s", (name, render) => expectGolden(name, render(), { dir: GOLDEN }));
});

describe("exit spec", () => {
  const allowed = (s: ReturnType<typeof spec>) => s.gateway.allowedIps.join(", ");
  test.each([
    ["host routes stay", ["10.100.0.2/32"], "10.100.0.2/32"],
    ["a gateway address with a wider prefix becomes a host route", ["10.100.0.2/24", "fd00::2/64"], "10.100.0.2/32, fd00::2/128"],
    ["IPv6 is written canonically", ["FD00:0:0::0002/128"], "fd00::2/128"],
  ])("AllowedIPs: %s", (_, addresses, want) => {
    expect(allowed(spec((c) => (c.interface.addresses = addresses)))).toBe(want);
  });

  test.each([
    ["vps.example.net:51820", 51820],
    ["198.51.100.2:443", 443],
    ["[2001:db8::1]:51821", 51821],
  ])("ListenPort from exit.endpoint %s", (endpoint, want) => {
    expect(spec((c) => (c.exit!.endpoint = endpoint)).listenPort).toBe(want);
  });

  test.each([
    ["interface", { interfaceName: "has space" }, /interface: "has space" is not a wg-quick interface name/],
    ["interface", { interfaceName: "sixteen-chars-xx" }, /not a wg-quick interface name/],
    ["address", { addresses: ["fd00::1/129"] }, /address: "fd00::1\/129" is not an address with a prefix length/],
    ["address", { addresses: ["10.100.0.300/24"] }, /address: "10.100.0.300\/24"/],
  ])("bad %s is refused naming it", (field, opts, re) => {
    let caught: unknown;
    try {
      spec(undefined, opts);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ExitSpecError);
    expect((caught as ExitSpecError).field).toBe(field);
    expect((caught as Error).message).toMatch(re);
  });

  test("a bare exit address is a host address", () => {
    expect(spec(undefined, { addresses: ["10.100.0.1"] }).addresses).toEqual(["10.100.0.1/32"]);
  });

  test("keys are trimmed; no secret means a placeholder wg refuses", () => {
    const s = exitSpecsFromConfig(config(), { gatewayPublicKey: ` ${GW_PUB}\n` })[0]!;
    const text = renderWgQuick(s, { privateKey: EXIT_KEY + "\n" });
    expect(text).toContain(`PrivateKey = ${EXIT_KEY}\n`);
    expect(text).toContain(`PublicKey = ${GW_PUB}\n`);
    expect(renderWgQuick(s)).toContain(`PrivateKey = ${PRIVATE_KEY_PLACEHOLDER}\n`);
  });
});

const tools = (t: string) => Bun.which(t) !== null;

describe("each rendering is accepted by the tool that consumes it", () => {
  test.skipIf(!tools("wg-quick") || !tools("wg"))("wg-quick strip parses the wg-quick file into what wg setconf takes", () => {
    const dir = mkdtempSync(join(tmpdir(), "egressd-exit-"));
    try {
      const file = join(dir, "wg0.conf");
      writeFileSync(file, renderWgQuick(spec(), { privateKey: EXIT_KEY }), { mode: 0o600 });
      const r = Bun.spawnSync(["wg-quick", "strip", file]);
      expect(r.exitCode).toBe(0);
      // What wg-quick strips is exactly the setconf rendering, minus comments.
      const bare = (t: string) => t.split("\n").filter((l) => l !== "" && !l.startsWith("#")).join("\n");
      expect(bare(r.stdout.toString())).toBe(bare(renderWgSetconf(spec(), { privateKey: EXIT_KEY })));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.skipIf(process.getuid?.() !== 0 || !tools("nft"))("nft -c accepts both nft renderings, in a throwaway namespace", () => {
    const ns = `egt-${process.pid}-0-exitnft`;
    expect(Bun.spawnSync(["ip", "netns", "add", ns]).exitCode).toBe(0);
    try {
      for (const text of [renderNft(spec()), renderNft(spec((c) => (c.interface.addresses = ["10.7.0.9/32"])))]) {
        const r = Bun.spawnSync(["ip", "netns", "exec", ns, "nft", "-c", "-f", "-"], { stdin: new TextEncoder().encode(text) });
        expect(r.stderr.toString()).toBe("");
        expect(r.exitCode).toBe(0);
      }
    } finally {
      Bun.spawnSync(["ip", "netns", "del", ns]);
    }
  });

  test.skipIf(!tools("nix-instantiate"))("nix-instantiate --parse accepts the NixOS module, and it is a function", () => {
    for (const text of [renderNixos(spec()), renderNixos(spec((c) => (c.exit!.presharedKeyFile = "psk"), { interfaceName: "wg-exit" }))]) {
      // The nix helpers' runner: it keeps the result independent of the host's nixbld group.
      const r = runNix(["nix-instantiate", "--parse", "-E", text]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^\(\{ \.\.\. }: /);
    }
  });

  test("the NixOS module never carries key material, even when the CLI is given key files", () => {
    expect(renderNixos(spec((c) => (c.exit!.presharedKeyFile = "psk")))).not.toMatch(/PrivateKey|privateKey =|presharedKey =/);
  });

  const cloudInit = Bun.which("cloud-init");
  // Named so a run without it says what to install (scripts/setup.sh lists cloud-init).
  test.skipIf(cloudInit === null)(`cloud-init schema --config-file validates the user-data${cloudInit === null ? " (SKIPPED: apt-get install cloud-init; scripts/setup.sh installs it)" : ""}`, () => {
    const dir = mkdtempSync(join(tmpdir(), "egressd-exit-"));
    try {
      for (const [name, text] of [["with-key", renderCloudInit(spec(), { privateKey: EXIT_KEY })], ["placeholder", renderCloudInit(spec((c) => (c.exit!.presharedKeyFile = "psk")))]] as const) {
        const file = join(dir, `${name}.yaml`);
        writeFileSync(file, text);
        const r = Bun.spawnSync([cloudInit!, "schema", "--config-file", file]);
        const output = r.stdout.toString() + r.stderr.toString();
        expect(output).toMatch(/^Valid cloud-config/);
        expect(r.exitCode).toBe(0);
      }
      // The control: the same validator refuses a user-data with a wrong type, so the check can fail.
      const bad = join(dir, "bad.yaml");
      writeFileSync(bad, renderCloudInit(spec()).replace("package_update: true", 'package_update: "yes"'));
      const r = Bun.spawnSync([cloudInit!, "schema", "--config-file", bad]);
      expect(r.stderr.toString()).toMatch(/package_update: 'yes' is not of type 'boolean'/);
      expect(r.exitCode).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("egressd exit-config", () => {
  function files() {
    const dir = mkdtempSync(join(tmpdir(), "egressd-exit-cli-"));
    writeFileSync(join(dir, "gw.key"), GW_KEY + "\n", { mode: 0o600 });
    writeFileSync(join(dir, "exit.key"), EXIT_KEY + "\n", { mode: 0o600 });
    writeFileSync(join(dir, "other.key"), GW_KEY + "\n", { mode: 0o600 });
    const cfg = { interface: { addresses: ["10.100.0.2/32", "fd00::2/128"], privateKeyFile: "gw.key" }, exit: { name: "hetzner", publicKey: EXIT_PUB, endpoint: "vps.example.net:51820" } };
    writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
    return dir;
  }

  test("renders each format; the gateway's public key is derived from its key file; no key unless asked", async () => {
    const dir = files();
    try {
      const c = join(dir, "config.json");
      const wgq = await runCli(["exit-config", "-c", c, "-f", "wg-quick", "--address", "10.100.0.1/24", "--address", "fd00::1/64"]);
      expect(wgq.code).toBe(0);
      expect(wgq.stdout).toBe(renderWgQuick(spec()));
      for (const [format, want] of [["nft", renderNft(spec())], ["sysctl", renderSysctl(spec())], ["nixos", renderNixos(spec())], ["wg", renderWgSetconf(spec())]] as const) {
        const r = await runCli(["exit-config", "-c", c, "-f", format, "--address", "10.100.0.1/24", "--address", "fd00::1/64"]);
        expect({ format, code: r.code, stdout: r.stdout }).toEqual({ format, code: 0, stdout: want });
      }
      const keyed = await runCli(["exit-config", "-c", c, "-f", "cloud-init", "--exit-private-key-file", join(dir, "exit.key"), "--address", "10.100.0.1/24", "--address", "fd00::1/64"]);
      expect(keyed.code).toBe(0);
      expect(keyed.stdout).toBe(renderCloudInit(spec(), { privateKey: EXIT_KEY }));
      const out = join(dir, "user-data");
      const toFile = await runCli(["exit-config", "-c", c, "-f", "cloud-init", "--exit-private-key-file", join(dir, "exit.key"), "-o", out]);
      expect(toFile.code).toBe(0);
      expect(statSync(out).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.each([
    [["-f", "wg-quick"], /--config FILE is required/],
    [["-c", "CONFIG"], /--format is required: one of wg-quick, wg, nft, sysctl, cloud-init, nixos/],
    [["-c", "CONFIG", "-f", "yaml"], /--format "yaml" is not one of/],
    [["-c", "CONFIG", "-f", "wg-quick", "--exit-private-key-file", "DIR/other.key"], /--exit-private-key-file ".*other.key": its public key VyPEw0.* is not the config's exit.publicKey HIgo9/],
    [["-c", "CONFIG", "-f", "wg-quick", "--exit-private-key-file", "DIR/missing.key"], /--exit-private-key-file ".*missing.key" cannot be read \(ENOENT\)/],
    [["-c", "CONFIG", "-f", "wg-quick", "--preshared-key-file", "DIR/exit.key"], /--preshared-key-file: the config has no exit.presharedKeyFile/],
    [["-c", "CONFIG", "-f", "nft", "--interface", "bad name"], /--interface: "bad name" is not a wg-quick interface name/],
    [["-c", "CONFIG", "-f", "nft", "--address", "nope"], /--address: "nope" is not an address/],
    [["-c", "CONFIG", "-f", "nft", "--exit", "other"], /--exit "other": the config has no such exit \(it has "hetzner"\)/],
    [["-c", "CONFIG", "-f", "nft", "--gateway-public-key", "short"], /--gateway-public-key "short" is not a WireGuard key/],
  ])("usage error %j names the flag (exit 2)", async (args, re) => {
    const dir = files();
    try {
      const argv = args.map((a) => a.replace("CONFIG", join(dir, "config.json")).replace("DIR", dir));
      const r = await runCli(["exit-config", ...argv]);
      expect(r.stderr).toMatch(re);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
