/** Config fixtures: a minimal valid config, and a temp dir with it and its key file on disk. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../lib/config/errors.ts";
import { parseConfig } from "../../lib/config/load.ts";
import { generatePrivateKey } from "../../lib/keys/keys.ts";

/** The exit's public key: RFC 7748 §6.1 Bob's, as base64. */
export const EXIT_PUBLIC_KEY = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";

/** The smallest valid config: everything else has a default. A fresh object on every call. */
export function minimalConfig(): Record<string, any> {
  return {
    interface: { addresses: ["10.100.0.2/32"] },
    exit: { publicKey: EXIT_PUBLIC_KEY, endpoint: "vps.example.net:51820" },
  };
}

/** A temp dir holding `config.json` and its `private-key` (mode 0600 unless `keyMode` says). */
export interface ConfigDir {
  readonly dir: string;
  readonly configFile: string;
  readonly keyFile: string;
  /** Rewrites config.json. */
  write(config: unknown): void;
  /** Deletes the dir. */
  remove(): void;
}

/** Makes a {@link ConfigDir} with `config` (default {@link minimalConfig}). */
export function makeConfigDir(config: unknown = minimalConfig(), opts: { keyMode?: number } = {}): ConfigDir {
  const dir = mkdtempSync(join(tmpdir(), "egressd-config-"));
  const configFile = join(dir, "config.json");
  const keyFile = join(dir, "private-key");
  writeFileSync(keyFile, generatePrivateKey() + "\n", { mode: 0o600 });
  chmodSync(keyFile, opts.keyMode ?? 0o600); // the umask may have narrowed the mode
  const write = (c: unknown) => writeFileSync(configFile, JSON.stringify(c, null, 2) + "\n");
  write(config);
  return { dir, configFile, keyFile, write, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The problems `parseConfig` reports for `input` without reading files; throws if it is accepted. */
export function problemsOf(input: unknown): string[] {
  try {
    parseConfig(input, { checkFiles: false, env: {}, baseDir: "/etc/egressd" });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems.map((p) => p.message);
  }
  throw new Error("the config was accepted");
}
