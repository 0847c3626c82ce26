/**
 * `egressd exit-config`: renders the exit's side of the tunnel from the gateway's config, as a
 * wg-quick file, nft rules, a sysctl drop-in, cloud-init user-data or a NixOS module (lib/exit).
 *
 * Secrets appear in the output only when their file is named on the command line, and output that
 * holds one is not printed to a terminal without `--force`, as `egressd genkey` behaves.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../config/errors.ts";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { renderCloudInit } from "../exit/cloud-init.ts";
import { renderNixos } from "../exit/nixos.ts";
import { renderNft, renderSysctl } from "../exit/nft.ts";
import { type ExitSpec, ExitSpecError, exitSpecsFromConfig } from "../exit/spec.ts";
import { type ExitSecrets, renderWgQuick, renderWgSetconf } from "../exit/wireguard.ts";
import { decodeKey, isKey, KeyFormatError, publicKeyOf } from "../keys/keys.ts";
import { type Command, err, Exit, out, parseFlags, UsageError } from "./common.ts";
import { writeSecret } from "./keys.ts";

/** The formats, in the order of `--help`. */
export const EXIT_FORMATS = ["wg-quick", "wg", "nft", "sysctl", "cloud-init", "nixos"] as const;

export const HELP = `Usage: egressd exit-config --config FILE --format FORMAT [flags]

Renders the exit's (the VPS's) side of the tunnel from the gateway's config FILE:
  wg-quick    /etc/wireguard/<if>.conf for wg-quick; loads the nft rules on up, removes them on down
  wg          the same without wg-quick's keys, for \`wg setconf\`
  nft         the forward and masquerade rules, limited to the tunnel, in a table of their own
  sysctl      /etc/sysctl.d/99-egressd-exit.conf: IP forwarding
  cloud-init  #cloud-config user-data for a fresh Debian or Ubuntu VPS: all of the above, started
  nixos       a NixOS module for a NixOS exit (keys by path only)

  -c, --config FILE                 the gateway's egressd config (JSON)
  -f, --format FORMAT               one of ${EXIT_FORMATS.join(", ")}
      --exit-private-key-file FILE  put the exit's private key from FILE into the output; it must
                                    match the config's exit.publicKey. Without it the output has
                                    a placeholder that wg refuses. (nixos: the path on the exit)
      --preshared-key-file FILE     the same for the preshared key, when the config names one
      --gateway-public-key KEY      the gateway's public key (default: derived from the config's
                                    interface.privateKeyFile, which must then be readable)
      --interface NAME              the exit's WireGuard interface (default wg0)
      --address CIDR                the exit's own tunnel address (repeatable; default none:
                                    the exit then only routes to the gateway's addresses)
      --nft-file PATH               where wg-quick loads the nft rules from (default
                                    /etc/wireguard/<if>.nft; "none": do not load them)
      --exit NAME                   which exit of the config (default: the only one)
  -o, --output FILE                 write to FILE (created 0600) instead of stdout
      --force                       print output that holds a secret to a terminal
Exit codes: 0 rendered, 2 bad flags or config (the message names the field or flag).
`;

/** Runs `egressd exit-config`. */
export const exitConfigCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    config: { type: "string", short: "c" },
    format: { type: "string", short: "f" },
    "exit-private-key-file": { type: "string" },
    "preshared-key-file": { type: "string" },
    "gateway-public-key": { type: "string" },
    interface: { type: "string" },
    address: { type: "string", multiple: true },
    "nft-file": { type: "string" },
    exit: { type: "string" },
    output: { type: "string", short: "o" },
    force: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) return out(HELP).then(() => Exit.ok);
  if (!values.config) throw new UsageError("--config FILE is required");
  const format = values.format as (typeof EXIT_FORMATS)[number] | undefined;
  if (!format) throw new UsageError(`--format is required: one of ${EXIT_FORMATS.join(", ")}`);
  if (!EXIT_FORMATS.includes(format)) throw new UsageError(`--format "${format}" is not one of ${EXIT_FORMATS.join(", ")}`);

  let config: Config;
  try {
    // The key files are the gateway's: rendering on another machine must not need them.
    config = loadConfig(values.config, { checkFiles: false });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) err(`${e.file ?? "config"}: ${p.message}`);
    return Exit.usage;
  }
  const gatewayPublicKey = values["gateway-public-key"] ?? gatewayKeyFromConfig(config);
  if (!isKey(gatewayPublicKey)) throw new UsageError(`--gateway-public-key "${gatewayPublicKey}" is not a WireGuard key`);
  let specs: ExitSpec[];
  try {
    specs = exitSpecsFromConfig(config, { gatewayPublicKey, interfaceName: values.interface, addresses: values.address });
  } catch (e) {
    if (e instanceof ExitSpecError) throw new UsageError(`--${e.field}: ${e.message.slice(e.field.length + 2)}`, { cause: e });
    throw e;
  }
  const spec = values.exit === undefined ? specs[0]! : specs.find((s) => s.name === values.exit);
  if (!spec) throw new UsageError(`--exit "${values.exit}": the config has no such exit (it has ${specs.map((s) => `"${s.name}"`).join(", ")})`);

  const keyFile = values["exit-private-key-file"];
  const pskFile = values["preshared-key-file"];
  const secrets: ExitSecrets = {};
  if (format !== "nixos") {
    if (keyFile !== undefined) secrets.privateKey = readKey(keyFile, "--exit-private-key-file");
    const wanted = config.exits?.find((e) => e.name === spec.name)?.publicKey ?? config.exit.publicKey;
    if (secrets.privateKey && publicKeyOf(secrets.privateKey) !== wanted) {
      const field = config.exits ? `exits[${config.exits.findIndex((e) => e.name === spec.name)}].publicKey` : "exit.publicKey";
      throw new UsageError(`--exit-private-key-file "${keyFile}": its public key ${publicKeyOf(secrets.privateKey)} is not the config's ${field} ${wanted}`);
    }
    if (pskFile !== undefined) {
      if (!spec.presharedKey) throw new UsageError("--preshared-key-file: the config has no exit.presharedKeyFile, so the gateway uses none");
      secrets.presharedKey = readKey(pskFile, "--preshared-key-file");
    }
  }
  const nftFile = values["nft-file"] === "none" ? null : values["nft-file"];
  const text = render(format, spec, secrets, { nftFile, keyFile, pskFile });
  const hasSecret = Boolean(secrets.privateKey || (secrets.presharedKey && format !== "nft" && format !== "sysctl"));
  return write(text, { file: values.output, secret: hasSecret, force: values.force });
};

function render(format: (typeof EXIT_FORMATS)[number], spec: ExitSpec, secrets: ExitSecrets, o: { nftFile?: string | null; keyFile?: string; pskFile?: string }): string {
  switch (format) {
    case "wg-quick":
      return renderWgQuick(spec, { ...secrets, nftFile: o.nftFile });
    case "wg":
      return renderWgSetconf(spec, secrets);
    case "nft":
      return renderNft(spec);
    case "sysctl":
      return renderSysctl(spec);
    case "cloud-init":
      return renderCloudInit(spec, secrets);
    case "nixos":
      return renderNixos(spec, { privateKeyFile: o.keyFile, presharedKeyFile: o.pskFile });
  }
}

function gatewayKeyFromConfig(config: Config): string {
  const file = config.interface.privateKeyFile;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read the gateway's key ${file} (interface.privateKeyFile: ${(e as NodeJS.ErrnoException).code}); pass --gateway-public-key`, { cause: e });
  }
  try {
    return publicKeyOf(text.trim());
  } catch (e) {
    if (e instanceof KeyFormatError) throw new UsageError(`interface.privateKeyFile "${file}" does not hold a WireGuard key: ${e.message}`, { cause: e });
    throw e;
  }
}

function readKey(file: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch (e) {
    throw new UsageError(`${flag} "${file}" cannot be read (${(e as NodeJS.ErrnoException).code})`, { cause: e });
  }
  try {
    decodeKey(text);
  } catch (e) {
    if (e instanceof KeyFormatError) throw new UsageError(`${flag} "${file}" does not hold a WireGuard key: ${e.message}`, { cause: e });
    throw e;
  }
  return text;
}

async function write(text: string, o: { file?: string; secret: boolean; force?: boolean }): Promise<number> {
  if (o.secret || o.file) return writeSecret(text.trimEnd(), { file: o.file, force: o.force, command: "exit-config" });
  await out(text);
  return Exit.ok;
}
