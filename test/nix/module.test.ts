/**
 * nix/module.nix evaluated with nixpkgs' lib (test/nix/eval.nix): the unit, the settings JSON, the
 * firewall, and the assertions. The generated JSON goes through the real `egressd check-config`, and
 * the rendered unit through `systemd-analyze verify`.
 */
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configSchema } from "../../lib/config/schema.ts";
import {
  EXIT_PUBLIC_KEY,
  GATEWAY,
  makeStubRoot,
  needsLib,
  nixEval,
  nixosConfig,
  parseUnit,
  ROOT,
  run,
  SKIP_EVAL,
  systemdAnalyze,
} from "./helpers.ts";

type Cfg = Record<string, unknown>;

/** Computes a value on first use (hooks inside a skipped describe would count as skipped tests). */
function once<T>(f: () => T): () => T {
  let v: { value: T } | undefined;
  return () => (v ??= { value: f() }).value;
}

let stubRoot: ReturnType<typeof makeStubRoot> | undefined;
let workDir: string | undefined;
const setup = once(() => {
  stubRoot = makeStubRoot();
  workDir = mkdtempSync(join(tmpdir(), "egressd-nix-work-"));
  return { stub: stubRoot, work: workDir };
});
afterAll(() => {
  stubRoot?.cleanup();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});
/** The stub package tree (with the compiled binary) and a scratch directory, made on first use. */
const ctx = {
  get stub() {
    return setup().stub;
  },
  get work() {
    return setup().work;
  },
};

/** Evaluates the module for `services.egressd = cfg` (enable implied); throws on an evaluation error. */
function evalModule(cfg: Cfg, opts: { extra?: Cfg; configFile?: string; rawArgs?: Record<string, string> } = {}): any {
  const r = tryEval(cfg, opts);
  if (!r.ok) throw new Error(`evaluation failed:\n${r.error}`);
  return r.value;
}

function tryEval(cfg: Cfg, opts: { extra?: Cfg; configFile?: string; rawArgs?: Record<string, string> } = {}) {
  const raw = { ...opts.rawArgs };
  if (opts.configFile) raw.configFile = opts.configFile;
  return nixEval("test/nix/eval.nix", { stubRoot: ctx.stub.root, configJSON: nixosConfig(cfg, opts.extra) }, raw);
}

/** GATEWAY with `patch` merged into services.egressd (one level deep into settings sections). */
function gateway(patch: Cfg = {}): Cfg {
  const settings: Cfg = structuredClone(GATEWAY.settings);
  for (const [section, value] of Object.entries((patch.settings as Cfg) ?? {})) {
    settings[section] = value === null ? null : { ...(settings[section] as Cfg), ...(value as Cfg) };
  }
  return { ...structuredClone(GATEWAY), ...patch, settings };
}

/** A credentials directory like systemd's: 0600 files named as LoadCredential names them. */
function credentials(names: string[]): string {
  const dir = mkdtempSync(join(ctx.work, "creds-"));
  for (const name of names) {
    const file = join(dir, name);
    if (name.startsWith("proxy-password")) {
      writeFileSync(file, "correct horse battery staple\n", { mode: 0o600 });
    } else {
      const r = run([ctx.stub.egressd, name.startsWith("preshared-key") ? "genpsk" : "genkey", "--output", file]);
      expect(r.code).toBe(0);
    }
    chmodSync(file, 0o600);
  }
  return dir;
}

/** Runs `egressd check-config` on JSON text with a credentials directory. */
function checkConfig(json: string, creds: string): { code: number; stdout: string; stderr: string } {
  const file = join(ctx.work, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, json);
  return run([ctx.stub.egressd, "check-config", "--config", file], { env: { ...process.env, CREDENTIALS_DIRECTORY: creds } });
}

/** Runs the module's build-time check script on its generated file, as the build would; it must pass and install the file. */
function runBuildCheck(out: any): void {
  const settings = out.settingsStorePath as string;
  mkdirSync(join(settings, ".."), { recursive: true });
  writeFileSync(settings, out.settingsJSON);
  const env = { PATH: `${ctx.stub.root}/pkgs/egressd/bin:/usr/bin:/bin`, TMPDIR: ctx.work, settings, out: out.configCheck.out };
  const r = run(["bash", "-euo", "pipefail", "-c", out.configCheck.script], { env });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(readFileSync(out.configCheck.out, "utf8")).toBe(out.settingsJSON);
}

describe.skipIf(SKIP_EVAL !== null)(needsLib("services.egressd"), () => {
  describe("the design gateway (pods -> 10.1.0.1:1080 -> tunnel -> VPS, metrics on 10.0.0.1:9586)", () => {
    const gatewayOut = once(() => evalModule(gateway()));
    let out: any;
    beforeEach(() => {
      out = gatewayOut();
    });

    test("evaluates with no failed assertion and no warning", () => {
      expect(out.failedAssertions).toEqual([]);
      expect(out.warnings).toEqual([]);
    });

    test("the settings JSON", () => {
      expect(JSON.parse(out.settingsJSON)).toEqual({
        interface: { name: "wg-egress", addresses: ["10.100.0.2/32"], implementation: "auto", privateKeyFile: "private-key" },
        exit: { name: "hetzner", publicKey: EXIT_PUBLIC_KEY, endpoint: "vps.example.net:51820", presharedKeyFile: null },
        proxy: { listen: ["10.1.0.1:1080"], allowClients: ["10.1.0.0/24"], auth: null },
        metrics: { listen: "10.0.0.1:9586" },
      });
    });

    test("the settings pass egressd check-config with the credential in $CREDENTIALS_DIRECTORY", () => {
      const creds = credentials(["private-key"]);
      const r = checkConfig(out.settingsJSON, creds);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const effective = JSON.parse(r.stdout);
      expect(effective.interface.privateKeyFile).toBe(join(creds, "private-key"));
      expect(effective.proxy.listen).toEqual(["10.1.0.1:1080"]);
      expect(effective.metrics.listen).toBe("10.0.0.1:9586");
      expect(effective.routing.fwmark).toBe("0xca6c");
    });

    test("the unit: notify with egressd reload, own user, ambient CAP_NET_ADMIN, credential, /etc config", () => {
      const s = out.service.serviceConfig;
      expect(s.ExecStart).toBe(`${ctx.stub.root}/pkgs/egressd/bin/egressd run --config /etc/egressd/config.json`);
      expect(s.Type).toBe("notify");
      expect(s.ExecReload).toBe(`${ctx.stub.root}/pkgs/egressd/bin/egressd reload --socket /run/egressd/control.sock`);
      expect(s.NotifyAccess).toBe("main");
      expect(s.WatchdogSec).toBe("30s");
      expect(s.Restart).toBe("on-failure");
      expect(s.User).toBe("egressd");
      expect(s.Group).toBe("egressd");
      expect(s.AmbientCapabilities).toEqual(["CAP_NET_ADMIN"]);
      expect(s.CapabilityBoundingSet).toEqual(["CAP_NET_ADMIN"]);
      expect(s.LoadCredential).toEqual(["private-key:/run/secrets/egressd/private-key"]);
      expect(s.RuntimeDirectory).toEqual(["egressd", "egressd/wireguard"]);
      expect(s.BindPaths).toEqual(["/run/egressd/wireguard:/run/wireguard"]);
      expect(s.ProtectSystem).toBe("strict");
      expect(s.ProtectKernelTunables).toBe(true);
      expect(s.NoNewPrivileges).toBe(true);
      expect(s.MemoryDenyWriteExecute).toBe(false);
      expect(s.RestrictAddressFamilies).toEqual(["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]);
      expect(s.DeviceAllow).toEqual(["/dev/net/tun rw"]);
      expect(out.service.wantedBy).toEqual(["multi-user.target"]);
      expect(out.service.wants).toEqual(["network-online.target"]);
      expect(out.service.after).toContain("network-online.target");
    });

    test("no secret reaches argv, the environment or the settings", () => {
      expect(out.unitText).not.toContain("/run/secrets/egressd/private-key run");
      expect(out.service.serviceConfig.ExecStart).not.toContain("secrets");
      expect(out.settingsJSON).not.toContain("/run/secrets");
      expect(out.unitText.match(/\/run\/secrets/g)).toHaveLength(1); // LoadCredential= only
    });

    test("the config is /etc/egressd/config.json, and a change to it reloads instead of restarting", () => {
      expect(out.configStorePath).toBe(`${ctx.stub.root}/store/egressd-config.json`);
      expect(out.service.reloadTriggers).toEqual([out.configStorePath]);
      expect(out.service.restartTriggers).toEqual([`${ctx.stub.root}/store/egressd-restart-settings.json`]);
      expect(out.unitText).toContain(`X-Reload-Triggers=${out.configStorePath}`);
    });

    // egressd refuses a reload that changes the tunnel (lib/daemon/specs.ts hostChanges), so such a
    // settings change must restart the unit, or nixos-rebuild would leave the old tunnel running.
    test("a change the daemon refuses on reload restarts instead; the others only reload", () => {
      const restartJSON = (patch: Cfg) => evalModule(gateway(patch)).service.restartTriggersJSON[0];
      const base = restartJSON({});
      expect(JSON.parse(base).exit.endpoint).toBe("vps.example.net:51820");
      for (const patch of [
        { settings: { proxy: { listen: ["10.1.0.1:1081"] } } },
        { settings: { metrics: { listen: "10.0.0.1:9587" } } },
        { settings: { proxy: { idleTimeout: "1h" } } },
      ]) {
        expect(restartJSON(patch)).toBe(base);
      }
      for (const patch of [
        { settings: { exit: { endpoint: "vps2.example.net:51820" } } },
        { settings: { interface: { addresses: ["10.100.0.3/32"] } } },
        { settings: { routing: { table: 51821 } } },
        { settings: { proxy: { allowDestinations: ["192.168.5.0/24"] } } },
        { settings: { control: { socket: "/run/egressd/other.sock" } } },
      ]) {
        expect(restartJSON(patch)).not.toBe(base);
      }
    });

    test("wg, ip, nft and (for auto) wireguard-go are on the path", () => {
      for (const p of ["wireguard-tools", "iproute2", "nftables", "wireguard-go"]) {
        expect(out.service.path).toContain(`${ctx.stub.root}/pkgs/${p}`);
      }
      expect(out.unitText).toContain(`${ctx.stub.root}/pkgs/iproute2/bin`);
    });

    test("a static system user and group, src_valid_mark, the wireguard module, the CLI", () => {
      expect(out.users).toEqual({ egressd: { isSystemUser: true, group: "egressd", description: "egressd WireGuard egress proxy" } });
      expect(out.groups).toEqual(["egressd"]);
      expect(out.sysctl).toEqual({ "net.ipv4.conf.all.src_valid_mark": 1 });
      expect(out.kernelModules).toEqual(["wireguard"]);
      expect(out.systemPackages).toEqual([`${ctx.stub.root}/pkgs/egressd`]);
    });

    test("openFirewall opens the proxy port on the pod interface and the metrics port on the LAN only", () => {
      expect(out.firewall.interfaces).toEqual({
        cni0: { allowedTCPPorts: [1080], allowedUDPPorts: [], allowedUDPPortRanges: [] },
        lan0: { allowedTCPPorts: [9586], allowedUDPPorts: [], allowedUDPPortRanges: [] },
      });
    });

    test("the build-time check runs the real check-config on the generated file, then installs it", () => {
      expect(out.configCheck.nativeBuildInputs).toEqual([`${ctx.stub.root}/pkgs/egressd`]);
      runBuildCheck(out);
    });
  });

  test("the build-time check fails on a typo in free-form settings, naming the field", () => {
    const out = evalModule(gateway({ settings: { proxy: { allowDestination: ["192.0.2.0/24"] } } }));
    expect(out.failedAssertions).toEqual([]); // the module cannot know every field; the schema does
    const settings = out.settingsStorePath as string;
    writeFileSync(settings, out.settingsJSON);
    const r = run(["bash", "-euo", "pipefail", "-c", out.configCheck.script], {
      env: { PATH: `${ctx.stub.root}/pkgs/egressd/bin:/usr/bin:/bin`, TMPDIR: ctx.work, settings, out: join(ctx.work, "never") },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("allowDestination");
  });

  test("checkConfig = false installs the generated file unchecked", () => {
    const out = evalModule(gateway({ checkConfig: false }));
    expect(out.configCheck).toBeNull();
    expect(out.configStorePath).toBe(out.settingsStorePath);
  });

  describe("the rendered unit", () => {
    const sa = systemdAnalyze();
    const skip = "skip" in sa ? sa.skip : null;
    let unitFile: string;
    let out: any;
    const rendered = once(() => {
      const out = evalModule(gateway());
      mkdirSync(join(ctx.work, "units"), { recursive: true });
      const unitFile = join(ctx.work, "units/egressd.service");
      writeFileSync(unitFile, out.unitText);
      return { out, unitFile };
    });
    beforeEach(() => {
      ({ out, unitFile } = rendered());
    });

    test.skipIf(skip !== null)(`passes systemd-analyze verify${skip ? ` [skipped: ${skip}]` : ""}`, () => {
      if ("skip" in sa) return;
      const r = run([...sa.argv, "verify", unitFile], { env: sa.env });
      // Nothing is filtered: ExecStart exists (the stub package links the real binary), and verify
      // checks neither users nor credential paths. Any line at all is a finding.
      expect(r.stderr.trim()).toBe("");
      expect(r.code).toBe(0);
    });

    test.skipIf(skip !== null)(`is no more exposed than systemd/egressd.service (systemd-analyze security)${skip ? ` [skipped: ${skip}]` : ""}`, () => {
      if ("skip" in sa) return;
      const score = (file: string) => {
        const r = run([...sa.argv, "security", "--offline=yes", file], { env: sa.env });
        const m = /Overall exposure level for egressd\.service: ([\d.]+)/.exec(r.stdout);
        if (!m) throw new Error(`no exposure score:\n${r.stdout}\n${r.stderr}`);
        return Number(m[1]);
      };
      const nixos = score(unitFile);
      const generic = score(join(ROOT, "systemd/egressd.service"));
      console.log(`systemd-analyze security --offline=yes: NixOS unit ${nixos}, systemd/egressd.service ${generic}`);
      expect(nixos).toBeLessThanOrEqual(generic);
    });

    test("has the same settings as systemd/egressd.service, except the listed differences", () => {
      const nixos = parseUnit(out.unitText);
      const generic = parseUnit(readFileSync(join(ROOT, "systemd/egressd.service"), "utf8"));
      const norm = (v: string) => (v === "yes" ? "true" : v === "no" ? "false" : v);
      const words = (vs: string[] | undefined) => (vs ?? []).flatMap((v) => v.split(/\s+/).map(norm)).sort();
      // Keys whose values differ on purpose, each with the reason, checked separately below.
      const differ: Record<string, string> = {
        ExecStart: "store path instead of /usr/local/bin",
        ExecReload: "store path, and --socket from settings.control.socket",
        ExecStartPre: "src_valid_mark is set by boot.kernel.sysctl instead",
        LoadCredential: "the host path comes from services.egressd.privateKeyFile",
        Environment: "PATH is built from the service's path",
        Documentation: "NixOS documents the module options instead",
      };
      // Keys that may be written as one line of words or as repeated lines (systemd merges both).
      const wordLists = new Set(["RuntimeDirectory", "RestrictAddressFamilies", "AmbientCapabilities", "CapabilityBoundingSet", "After"]);
      const problems: string[] = [];
      for (const section of ["Unit", "Service"]) {
        const g = generic.get(section)!;
        const n = nixos.get(section)!;
        for (const [key, values] of g) {
          if (key in differ) continue;
          const mine = n.get(key);
          if (!mine) problems.push(`[${section}] ${key} is missing`);
          else if (wordLists.has(key)) {
            const missing = words(values).filter((w) => !words(mine).includes(w));
            if (missing.length) problems.push(`[${section}] ${key} lacks ${missing.join(" ")}`);
          } else if (JSON.stringify(mine.map(norm)) !== JSON.stringify(values.map(norm))) {
            problems.push(`[${section}] ${key}=${mine.join(",")} but systemd/egressd.service has ${values.join(",")}`);
          }
        }
        for (const key of n.keys()) {
          if (!g.has(key) && !["X-Reload-Triggers", "X-Restart-Triggers"].includes(key) && !(key in differ)) problems.push(`[${section}] ${key} is extra`);
        }
      }
      expect(problems).toEqual([]);
      expect(generic.get("Install")!.get("WantedBy")).toEqual(out.service.wantedBy);
      // The listed differences, as intended:
      const ns = nixos.get("Service")!;
      expect(ns.get("ExecStart")![0]!.endsWith(generic.get("Service")!.get("ExecStart")![0]!.replace(/^\S+/, ""))).toBe(true);
      expect(ns.get("ExecReload")![0]!).toStartWith(`${ns.get("ExecStart")![0]!.split(" ")[0]} ${generic.get("Service")!.get("ExecReload")![0]!.replace(/^\S+ /, "")}`);
      expect(ns.get("LoadCredential")![0]!.startsWith("private-key:")).toBe(true);
      expect(generic.get("Service")!.get("LoadCredential")![0]!.startsWith("private-key:")).toBe(true);
      expect(out.sysctl["net.ipv4.conf.all.src_valid_mark"]).toBe(1);
      expect(generic.get("Service")!.get("ExecStartPre")!.join()).toContain("src_valid_mark");
    });
  });

  describe("interface.implementation", () => {
    test("kernel: no wireguard-go, no TUN device, no /run/wireguard", () => {
      const out = evalModule(gateway({ settings: { interface: { implementation: "kernel" } } }));
      expect(out.service.path).not.toContain(`${ctx.stub.root}/pkgs/wireguard-go`);
      expect(out.service.serviceConfig.DeviceAllow).toEqual([]);
      expect(out.unitText).not.toContain("DeviceAllow");
      expect(out.service.serviceConfig.RuntimeDirectory).toEqual(["egressd"]);
      expect(out.service.serviceConfig.BindPaths).toEqual([]);
      expect(out.kernelModules).toEqual(["wireguard"]);
    });

    test("userspace: wireguard-go and /dev/net/tun, no kernel module", () => {
      const out = evalModule(gateway({ settings: { interface: { implementation: "userspace" } } }));
      expect(out.service.path).toContain(`${ctx.stub.root}/pkgs/wireguard-go`);
      expect(out.service.serviceConfig.DeviceAllow).toEqual(["/dev/net/tun rw"]);
      expect(out.service.serviceConfig.RuntimeDirectory).toEqual(["egressd", "egressd/wireguard"]);
      expect(out.service.serviceConfig.BindPaths).toEqual(["/run/egressd/wireguard:/run/wireguard"]);
      expect(out.kernelModules).toEqual([]);
    });
  });

  test("a listen entry naming its protocols reaches the settings, check-config and the firewall", () => {
    const out = evalModule(gateway({ settings: { proxy: { listen: ["10.1.0.1:1080", { address: "10.1.0.1:3128", protocols: ["http"] }] } } }));
    expect(out.failedAssertions).toEqual([]);
    expect(JSON.parse(out.settingsJSON).proxy.listen).toEqual(["10.1.0.1:1080", { address: "10.1.0.1:3128", protocols: ["http"] }]);
    expect(out.firewall.interfaces.cni0.allowedTCPPorts).toEqual([1080, 3128]);
    const r = checkConfig(out.settingsJSON, credentials(["private-key"]));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const wildcard = evalModule(gateway({ settings: { proxy: { listen: [{ address: "0.0.0.0:1080" }] } } }));
    expect(JSON.stringify(wildcard.failedAssertions)).toContain("has the wildcard address 0.0.0.0:1080");
  });

  test("all three secrets: three credentials, names in the settings, and check-config passes", () => {
    const out = evalModule(
      gateway({
        presharedKeyFile: "/run/secrets/egressd/psk",
        proxyPasswordFile: "/run/secrets/egressd/proxy-password",
        settings: { proxy: { auth: { username: "ircbot" } } },
      }),
    );
    expect(out.failedAssertions).toEqual([]);
    expect(out.service.serviceConfig.LoadCredential).toEqual([
      "private-key:/run/secrets/egressd/private-key",
      "preshared-key:/run/secrets/egressd/psk",
      "proxy-password:/run/secrets/egressd/proxy-password",
    ]);
    const settings = JSON.parse(out.settingsJSON);
    expect(settings.exit.presharedKeyFile).toBe("preshared-key");
    expect(settings.proxy.auth).toEqual({ username: "ircbot", passwordFile: "proxy-password" });
    const creds = credentials(["private-key", "preshared-key", "proxy-password"]);
    const r = checkConfig(out.settingsJSON, creds);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).exit.presharedKeyFile).toBe(join(creds, "preshared-key"));
  });

  test("the module's defaults are the schema's: a minimal config means the same to the daemon", () => {
    const minimal = {
      privateKeyFile: "/run/secrets/k",
      settings: { interface: { addresses: ["10.100.0.2/32"] }, exit: { publicKey: EXIT_PUBLIC_KEY, endpoint: "192.0.2.1:51820" } },
    };
    const out = evalModule(minimal);
    expect(out.failedAssertions).toEqual([]);
    expect(configSchema.parse(JSON.parse(out.settingsJSON))).toEqual(configSchema.parse(minimal.settings));
  });

  test("several exits (settings.exits): no one-exit fields in the config, every exit's interface exempted, restart on a change", () => {
    const second = "XQY2+iq1v2dtKDyqMZq5s3Y2dxXCBiMiHKa/9biuUH4=";
    const exits = {
      privateKeyFile: "/run/secrets/k",
      settings: {
        exits: [
          { name: "hetzner", publicKey: EXIT_PUBLIC_KEY, endpoint: "192.0.2.1:51820", addresses: ["10.100.0.2/32"] },
          { name: "ovh", publicKey: second, endpoint: "192.0.2.2:51820", addresses: ["10.100.1.2/32"], interface: "wg-ovh" },
        ],
      },
    };
    const out = evalModule(exits, { extra: { networking: { nftables: { enable: true } } } });
    expect(out.failedAssertions).toEqual([]);
    const json = JSON.parse(out.settingsJSON);
    expect(json.exit).toBeUndefined();
    expect(json.interface.addresses).toBeUndefined();
    const parsed = configSchema.parse(json);
    expect(parsed.exits!.map((e) => e.name)).toEqual(["hetzner", "ovh"]);
    expect(out.firewall.extraReversePathFilterRules).toContain('iifname { "wg-egress-0", "wg-ovh" } accept');
    const iptables = evalModule(exits);
    expect(iptables.firewall.extraCommands).toContain("-I nixos-fw-rpfilter -i wg-egress-0 -j RETURN");
    expect(iptables.firewall.extraCommands).toContain("-I nixos-fw-rpfilter -i wg-ovh -j RETURN");
    expect(JSON.stringify(out.service.restartTriggersJSON)).toContain("wg-ovh");
  });

  describe("several exits with preshared keys, several proxy users", () => {
    const second = "XQY2+iq1v2dtKDyqMZq5s3Y2dxXCBiMiHKa/9biuUH4=";
    const twoExits = (patch: Cfg = {}, auth: unknown = { users: { alice: { exit: "ovh" }, ircbot: {}, "bob@pods": {} } }): Cfg => ({
      privateKeyFile: "/run/secrets/k",
      exitPresharedKeyFiles: { hetzner: "/run/secrets/psk-hetzner", ovh: "/run/secrets/psk-ovh" },
      proxyUserPasswordFiles: { alice: "/run/secrets/alice", ircbot: "/run/secrets/ircbot", "bob@pods": "/run/secrets/bob" },
      ...patch,
      settings: {
        exits: [
          { name: "hetzner", publicKey: EXIT_PUBLIC_KEY, endpoint: "192.0.2.1:51820", addresses: ["10.100.0.2/32"] },
          { name: "ovh", publicKey: second, endpoint: "192.0.2.2:51820", addresses: ["10.100.1.2/32"] },
        ],
        proxy: { listen: ["10.1.0.1:1080"], allowClients: ["10.1.0.0/24"], auth },
      },
    });
    const bobCredential = () => `proxy-password-${new Bun.CryptoHasher("sha256").update("bob@pods").digest("hex").slice(0, 16)}`;

    test("every exit's PSK and every user's password is a credential; the settings name them; check-config passes", () => {
      const out = evalModule(twoExits());
      expect(out.failedAssertions).toEqual([]);
      expect(out.service.serviceConfig.LoadCredential).toEqual([
        "private-key:/run/secrets/k",
        "preshared-key-hetzner:/run/secrets/psk-hetzner",
        "preshared-key-ovh:/run/secrets/psk-ovh",
        "proxy-password-alice:/run/secrets/alice",
        `${bobCredential()}:/run/secrets/bob`,
        "proxy-password-ircbot:/run/secrets/ircbot",
      ]);
      const settings = JSON.parse(out.settingsJSON);
      expect(settings.exits.map((e: any) => e.presharedKeyFile)).toEqual(["preshared-key-hetzner", "preshared-key-ovh"]);
      expect(settings.proxy.auth).toEqual({
        users: [
          { username: "alice", exit: "ovh", passwordFile: "proxy-password-alice" },
          { username: "bob@pods", passwordFile: bobCredential() },
          { username: "ircbot", passwordFile: "proxy-password-ircbot" },
        ],
      });
      expect(out.settingsJSON).not.toContain("/run/secrets");
      const creds = credentials(["private-key", "preshared-key-hetzner", "preshared-key-ovh", "proxy-password-alice", "proxy-password-ircbot", bobCredential()]);
      const r = checkConfig(out.settingsJSON, creds);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const effective = JSON.parse(r.stdout);
      expect(effective.exits.map((e: any) => e.presharedKeyFile)).toEqual([join(creds, "preshared-key-hetzner"), join(creds, "preshared-key-ovh")]);
      expect(effective.proxy.auth.users.map((u: any) => [u.username, u.exit, u.passwordFile])).toEqual([
        ["alice", "ovh", join(creds, "proxy-password-alice")],
        ["bob@pods", undefined, join(creds, bobCredential())],
        ["ircbot", undefined, join(creds, "proxy-password-ircbot")],
      ]);
    });

    test("the build-time check makes a throwaway credential for each, and passes", () => {
      runBuildCheck(evalModule(twoExits()));
    });

    test("without PSKs the exits name none; the one-user form with a pin passes through", () => {
      const out = evalModule(twoExits({ exitPresharedKeyFiles: {}, proxyUserPasswordFiles: {}, proxyPasswordFile: "/run/secrets/p" }, { username: "ircbot", exit: "ovh" }));
      expect(out.failedAssertions).toEqual([]);
      const settings = JSON.parse(out.settingsJSON);
      expect(settings.exits.map((e: any) => e.presharedKeyFile)).toEqual([undefined, undefined]);
      expect(settings.proxy.auth).toEqual({ username: "ircbot", passwordFile: "proxy-password", exit: "ovh" });
      const r = checkConfig(out.settingsJSON, credentials(["private-key", "proxy-password"]));
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    });

    const rows: [string, Cfg, string][] = [
      ["a user without a password file", twoExits({ proxyUserPasswordFiles: { alice: "/run/secrets/alice", ircbot: "/run/secrets/ircbot" } }), 'proxyUserPasswordFiles has no entry for "bob@pods"'],
      ["a password file for no user", twoExits({ proxyUserPasswordFiles: { alice: "/a", ircbot: "/i", "bob@pods": "/b", mallory: "/m" } }), "only users of settings.proxy.auth.users may have one"],
      ["proxyPasswordFile with users", twoExits({ proxyPasswordFile: "/run/secrets/p" }), "with settings.proxy.auth.users, set services.egressd.proxyUserPasswordFiles"],
      ["a PSK for no exit", twoExits({ exitPresharedKeyFiles: { aws: "/run/secrets/psk-aws" } }), "names aws, which is not the name of an exit in settings.exits (hetzner ovh)"],
      ["presharedKeyFile with exits", twoExits({ presharedKeyFile: "/run/secrets/psk" }), "with settings.exits, set services.egressd.exitPresharedKeyFiles"],
      ["a PSK in the Nix store", twoExits({ exitPresharedKeyFiles: { ovh: "/nix/store/00000000000000000000000000000000-psk" } }), "is in the Nix store"],
    ];
    for (const [name, cfg, message] of rows) {
      test(name, () => {
        const r = tryEval(cfg);
        // types.externalPath refuses a store path before the assertion can.
        if (!r.ok) return expect(`${r.error}`).toContain(message === "is in the Nix store" ? "exitPresharedKeyFiles" : message);
        expect(r.value.failedAssertions.join("\n")).toContain(message);
        expect(r.value.failedAssertions).toHaveLength(1);
      });
    }

    test("a preshared key written into settings.exits by hand is refused", () => {
      const cfg = twoExits();
      ((cfg.settings as any).exits[1] as Cfg).presharedKeyFile = "/etc/egressd/psk";
      const out = evalModule(cfg);
      expect(out.failedAssertions.join("\n")).toContain("sets presharedKeyFile by hand");
    });

    test("a store path for a user's password fails the assertion on an older lib", () => {
      const r = tryEval(twoExits({ proxyUserPasswordFiles: { alice: "/nix/store/00000000000000000000000000000000-pw", ircbot: "/i", "bob@pods": "/b" } }), { rawArgs: { withoutExternalPath: "true" } });
      if (!r.ok) throw new Error(r.error);
      expect(r.value.failedAssertions).toEqual([
        'services.egressd.proxyUserPasswordFiles."alice" is in the Nix store (/nix/store/00000000000000000000000000000000-pw), which every local user can read; point it at a file outside the store, such as a sops-nix or agenix secret.',
      ]);
    });
  });

  describe("the reverse-path filter (replies from the tunnel arrive unmarked)", () => {
    const rule = 'iifname "wg-egress" accept';
    test("iptables firewall, strict (NixOS's default): the tunnel is exempted in nixos-fw-rpfilter", () => {
      const out = evalModule(gateway());
      expect(out.firewall.extraCommands).toContain("ip46tables -t mangle -I nixos-fw-rpfilter -i wg-egress -j RETURN");
      expect(out.firewall.extraStopCommands).toContain("-D nixos-fw-rpfilter -i wg-egress -j RETURN");
      expect(out.firewall.extraReversePathFilterRules).toBe("");
    });
    test("nftables firewall, strict: a rule in rpfilter-allow, and no extraCommands (nftables forbids them)", () => {
      const out = evalModule(gateway(), { extra: { networking: { nftables: { enable: true } } } });
      expect(out.firewall.extraReversePathFilterRules).toContain(rule);
      expect(out.firewall.extraCommands).toBe("");
    });
    test("a NixOS without networking.firewall.backend: nftables.enable decides", () => {
      const out = evalModule(gateway(), {
        extra: { networking: { nftables: { enable: true } } },
        rawArgs: { withFirewallBackend: "false" },
      });
      expect(out.firewall.extraReversePathFilterRules).toContain(rule);
      expect(out.firewall.extraCommands).toBe("");
    });
    test("the rule names the configured interface", () => {
      const out = evalModule(gateway({ settings: { interface: { name: "wg-exit" } } }), {
        extra: { networking: { nftables: { enable: true } } },
      });
      expect(out.firewall.extraReversePathFilterRules).toContain('iifname "wg-exit" accept');
    });
    for (const [name, firewall] of [
      ["loose", { checkReversePath: "loose" }],
      ["off", { checkReversePath: false }],
      ["firewall disabled", { enable: false }],
    ] as const) {
      test(`${name}: nothing added`, () => {
        const out = evalModule(gateway(), { extra: { networking: { firewall } } });
        expect(out.firewall.extraCommands).toBe("");
        expect(out.firewall.extraReversePathFilterRules).toBe("");
      });
    }
  });

  test("openFirewall = false opens nothing", () => {
    const out = evalModule(gateway({ openFirewall: false }));
    expect(out.firewall.interfaces).toEqual({});
  });

  test("openFirewall opens settings.proxy.udp.portRange (UDP ASSOCIATE relays) on the proxy interfaces only", () => {
    const out = evalModule(gateway({ settings: { proxy: { listen: ["10.1.0.1:1080"], udp: { portRange: "40000-40100" } } } }));
    expect(out.firewall.interfaces.cni0.allowedUDPPortRanges).toEqual([{ from: 40000, to: 40100 }]);
    expect(out.firewall.interfaces.lan0.allowedUDPPortRanges).toEqual([]);
    const off = evalModule(gateway({ settings: { proxy: { listen: ["10.1.0.1:1080"], udp: { enabled: false, portRange: "40000-40100" } } } }));
    expect(off.firewall.interfaces.cni0.allowedUDPPortRanges).toEqual([]);
  });

  test("several proxy listeners on one port open it once", () => {
    const out = evalModule(gateway({ settings: { proxy: { listen: ["10.1.0.1:1080", "[fd00::1]:1080", "10.1.0.1:1081"] } } }));
    expect(out.firewall.interfaces.cni0.allowedTCPPorts).toEqual([1080, 1081]);
  });

  describe("assertions on contradictory settings", () => {
    const rows: [string, Cfg, string][] = [
      ["no privateKeyFile", gateway({ privateKeyFile: null }), "services.egressd.privateKeyFile must be set"],
      ["no tunnel address", gateway({ settings: { interface: { addresses: [] } } }), "interface.addresses must list at least one"],
      ["no exit public key", gateway({ settings: { exit: { publicKey: null } } }), "exit.publicKey must be set"],
      ["no exit endpoint", gateway({ settings: { exit: { endpoint: null } } }), "exit.endpoint must be set"],
      ["a wildcard proxy listener", gateway({ settings: { proxy: { listen: ["0.0.0.0:1080"] } } }), "wildcard address 0.0.0.0:1080"],
      ["an IPv6 wildcard proxy listener", gateway({ settings: { proxy: { listen: ["[::]:1080"] } } }), "wildcard address [::]:1080"],
      ["a wildcard metrics listener", gateway({ settings: { metrics: { listen: "0.0.0.0:9586" } } }), "metrics.listen is the wildcard address"],
      ["fwmark equal to wireguardFwmark", gateway({ settings: { routing: { fwmark: "0xca6d" } } }), "must differ"],
      ["the same mark written two ways", gateway({ settings: { routing: { fwmark: "0xCA6C", wireguardFwmark: 51820 } } }), "must differ"],
      ["openFirewall without interfaces", gateway({ firewallInterfaces: { proxy: [], metrics: [] } }), "name the interfaces"],
      ["metrics interfaces with metrics off", gateway({ settings: { metrics: { listen: null } } }), "settings.metrics.listen is null"],
      ["a password file without a username", gateway({ proxyPasswordFile: "/run/secrets/p" }), "set settings.proxy.auth.username"],
      ["auth without a password file", gateway({ settings: { proxy: { auth: { username: "bot" } } } }), "proxyPasswordFile is null"],
      ["a control socket outside /run/egressd", gateway({ settings: { control: { socket: "/run/other.sock" } } }), "must be under /run/egressd/"],
    ];
    for (const [name, cfg, message] of rows) {
      test(name, () => {
        const out = evalModule(cfg);
        expect(out.failedAssertions.join("\n")).toContain(message);
        expect(out.failedAssertions).toHaveLength(1);
      });
    }

    test("allowWildcardBind permits the wildcard", () => {
      const out = evalModule(gateway({ settings: { proxy: { listen: ["0.0.0.0:1080"], allowWildcardBind: true } } }));
      expect(out.failedAssertions).toEqual([]);
    });
  });

  describe("type errors that keep secrets out of the store and typos out of the config", () => {
    const nixFile = (text: string) => {
      const f = join(ctx.work, `cfg-${Math.random().toString(36).slice(2)}.nix`);
      writeFileSync(f, text);
      return f;
    };
    const failsWith = (r: ReturnType<typeof tryEval>, ...needles: string[]) => {
      expect(r.ok).toBe(false);
      if (r.ok) return;
      for (const n of needles) expect(r.error).toContain(n);
    };

    test("a Nix path literal for privateKeyFile (it would be copied to the store)", () => {
      const key = join(ctx.work, "key-in-repo");
      writeFileSync(key, "x");
      const r = tryEval(gateway({ privateKeyFile: undefined }), {
        configFile: nixFile(`{ services.egressd.privateKeyFile = ${key}; }`),
      });
      failsWith(r, "services.egressd.privateKeyFile", "is not of type");
    });

    test("a key file inside the Nix store", () => {
      const r = tryEval(gateway({ privateKeyFile: "/nix/store/00000000000000000000000000000000-key" }));
      // types.externalPath rejects it; on an older lib the store-path assertion does.
      if (r.ok) expect(r.value.failedAssertions.join("\n")).toContain("is in the Nix store");
      else expect(r.error).toContain("services.egressd.privateKeyFile");
    });

    test("without types.externalPath (older nixpkgs): a store path fails the assertion instead", () => {
      const r = tryEval(gateway({ privateKeyFile: "/nix/store/00000000000000000000000000000000-key" }), {
        rawArgs: { withoutExternalPath: "true" },
      });
      if (!r.ok) throw new Error(r.error);
      expect(r.value.failedAssertions).toEqual([
        "services.egressd.privateKeyFile is in the Nix store (/nix/store/00000000000000000000000000000000-key), which every local user can read; point it at a file outside the store, such as a sops-nix or agenix secret.",
      ]);
      failsWith(tryEval(gateway({ privateKeyFile: "private-key" }), { rawArgs: { withoutExternalPath: "true" } }), "services.egressd.privateKeyFile");
    });

    test("a relative privateKeyFile", () => {
      failsWith(tryEval(gateway({ privateKeyFile: "private-key" })), "services.egressd.privateKeyFile");
    });

    test("setting the credential name in settings directly", () => {
      failsWith(tryEval(gateway({ settings: { interface: { privateKeyFile: "/etc/key" } } })), "read-only");
    });

    test("an interface name longer than 15 characters", () => {
      failsWith(tryEval(gateway({ settings: { interface: { name: "wg-egress-too-long" } } })), "settings.interface.name");
    });

    test("a malformed exit public key", () => {
      failsWith(tryEval(gateway({ settings: { exit: { publicKey: "not-a-key" } } })), "settings.exit.publicKey");
    });
  });

  test("disabled, the module adds nothing", () => {
    const out = evalModule({ ...gateway(), enable: false });
    expect(out.enabled).toBe(false);
    expect(out.service).toBeNull();
    expect(out.users).toEqual({});
    expect(out.failedAssertions).toEqual([]);
    expect(out.firewall.extraCommands).toBe("");
  });

  test("every option has a type, a description, and (unless read-only) a default and an example", () => {
    const r = nixEval("test/nix/eval.nix", { stubRoot: ctx.stub.root, output: "options" });
    if (!r.ok) throw new Error(r.error);
    const options = r.value as { name: string; readOnly: boolean; hasDefault: boolean; hasExample: boolean; hasDescription: boolean; type: string }[];
    expect(options.length).toBeGreaterThan(15);
    const lacking = options.flatMap((o) => [
      ...(o.hasDescription ? [] : [`${o.name}: description`]),
      ...(o.type ? [] : [`${o.name}: type`]),
      ...(o.readOnly || o.hasDefault ? [] : [`${o.name}: default`]),
      ...(o.readOnly || o.hasExample || o.type === "boolean" && o.name.endsWith(".enable") ? [] : [`${o.name}: example`]),
    ]);
    expect(lacking).toEqual([]);
  });

  test("nix/README.md's gateway configuration evaluates, and its settings pass check-config", () => {
    const readme = readFileSync(join(ROOT, "nix/README.md"), "utf8");
    const block = [...readme.matchAll(/```nix\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes("# routy.nix"));
    expect(block).toBeDefined();
    const example = join(ctx.work, "routy.nix");
    writeFileSync(example, block!);
    // sops-nix is not declared here; give its secret the path sops-nix would.
    const both = join(ctx.work, "routy-with-sops.nix");
    writeFileSync(both, `{ imports = [ ${example} ]; sops.secrets."egressd/private-key".path = "/run/secrets/egressd/private-key"; }\n`);
    const r = nixEval("test/nix/eval.nix", { stubRoot: ctx.stub.root }, { configFile: both, allowUndeclared: "true" });
    if (!r.ok) throw new Error(r.error);
    const out = r.value;
    expect(out.failedAssertions).toEqual([]);
    expect(out.service.serviceConfig.LoadCredential).toEqual(["private-key:/run/secrets/egressd/private-key"]);
    expect(out.firewall.interfaces).toEqual({
      k8s0: { allowedTCPPorts: [1080], allowedUDPPorts: [], allowedUDPPortRanges: [] },
      lan0: { allowedTCPPorts: [9586], allowedUDPPorts: [], allowedUDPPortRanges: [] },
    });
    const check = checkConfig(out.settingsJSON, credentials(["private-key"]));
    expect(check.stderr).toBe("");
    expect(check.code).toBe(0);
    const effective = JSON.parse(check.stdout);
    expect(effective.proxy.listen).toEqual(["10.1.0.1:1080"]);
    expect(effective.metrics.listen).toBe("10.0.0.1:9586");
    expect(effective.proxy.dns.servers).toEqual(["9.9.9.9"]);
  });

  test("the VM test's gateway node evaluates, and its settings pass check-config", () => {
    const node = join(ctx.work, "node.nix");
    writeFileSync(node, `(import ${ROOT}/nix/tests/gateway.nix { egressdModule = ${ROOT}/nix/module.nix; }).nodes.gateway\n`);
    const r = nixEval("test/nix/eval.nix", { stubRoot: ctx.stub.root }, { configFile: node, allowUndeclared: "true" });
    if (!r.ok) throw new Error(r.error);
    const out = r.value;
    expect(out.failedAssertions).toEqual([]);
    expect(out.service.serviceConfig.LoadCredential).toEqual([
      "private-key:/etc/egressd-test/private-key",
      "preshared-key:/etc/egressd-test/preshared-key",
    ]);
    expect(out.firewall.extraReversePathFilterRules).toContain('iifname "wg-egress" accept');
    const creds = credentials(["private-key", "preshared-key"]);
    const check = checkConfig(out.settingsJSON, creds);
    expect(check.stderr).toBe("");
    expect(check.code).toBe(0);
  });
});
