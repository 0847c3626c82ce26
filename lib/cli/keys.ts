/**
 * `egressd genkey`, `egressd pubkey`, `egressd genpsk`: the same text `wg genkey`, `wg pubkey` and
 * `wg genpsk` produce, computed in process.
 *
 * A private or preshared key is not printed to a terminal without `--force` (someone may be looking
 * over your shoulder or recording the session). When stdout is a regular file (`egressd genkey > key`)
 * it is made mode 0600 before the key is written; `--output FILE` creates the file 0600 itself, and
 * refuses to replace an existing one without `--force`.
 */
import { closeSync, fchmodSync, fstatSync, openSync, writeSync } from "node:fs";
import { decodeKey, generatePresharedKey, generatePrivateKey, KeyFormatError, publicKeyOf } from "../keys/keys.ts";
import { type Command, err, Exit, out, parseFlags } from "./common.ts";

export const GENKEY_HELP = `Usage: egressd genkey [--output FILE] [--force]

Prints a new WireGuard private key (base64), as \`wg genkey\` does.
  -o, --output FILE  write the key to FILE, created with mode 0600; an existing FILE is
                     refused (it may be this gateway's identity) unless --force
  -f, --force        allow printing the key to a terminal, or replacing FILE
Example: egressd genkey -o private-key && egressd pubkey < private-key
`;

export const GENPSK_HELP = `Usage: egressd genpsk [--output FILE] [--force]

Prints a new WireGuard preshared key (base64), as \`wg genpsk\` does.
  -o, --output FILE  write the key to FILE, created with mode 0600; an existing FILE is
                     refused unless --force
  -f, --force        allow printing the key to a terminal, or replacing FILE
`;

export const PUBKEY_HELP = `Usage: egressd pubkey < private-key

Reads a private key on stdin and prints its public key, as \`wg pubkey\` does.
`;

/** Opens `--output FILE` for writing; an existing file only with `force`. Null when it exists. */
function openOutput(file: string, force: boolean): number | null {
  try {
    // O_EXCL: no window between "does it exist" and creating it.
    return openSync(file, force ? "w" : "wx", 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return null;
    throw e;
  }
}

/**
 * Writes a secret and a newline: to `file` with mode 0600, or to stdout (refusing a terminal unless
 * forced, and narrowing a regular file on stdout to 0600). Returns the exit code.
 * An existing `file` is replaced only with `force`: it may be a gateway's identity, and a new key
 * is a peer the exit does not know.
 */
export async function writeSecret(text: string, opts: { file?: string; force?: boolean; command: string }): Promise<number> {
  if (opts.file) {
    const fd = openOutput(opts.file, opts.force ?? false);
    if (fd === null) {
      err(`egressd ${opts.command}: --output: "${opts.file}" already exists; pass --force to replace it (a replaced private key is a new identity the exit does not know)`);
      return Exit.usage;
    }
    try {
      fchmodSync(fd, 0o600); // the file may have existed with a wider mode
      writeSync(fd, text + "\n");
    } finally {
      closeSync(fd);
    }
    return Exit.ok;
  }
  if (process.stdout.isTTY && !opts.force) {
    err("egressd: refusing to print a secret key to a terminal; redirect it, use --output FILE, or pass --force");
    return Exit.usage;
  }
  const st = fstatSync(1);
  if (st.isFile() && (st.mode & 0o077) !== 0) fchmodSync(1, 0o600);
  await out(text + "\n");
  return Exit.ok;
}

function secretCommand(command: string, help: string, make: () => string): Command {
  return async (argv) => {
    const { values } = parseFlags(argv, {
      output: { type: "string", short: "o" },
      force: { type: "boolean", short: "f" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) return out(help).then(() => Exit.ok);
    return writeSecret(make(), { file: values.output, force: values.force, command });
  };
}

/** Runs `egressd genkey`. */
export const genkeyCommand: Command = secretCommand("genkey", GENKEY_HELP, generatePrivateKey);

/** Runs `egressd genpsk`. */
export const genpskCommand: Command = secretCommand("genpsk", GENPSK_HELP, generatePresharedKey);

/** Runs `egressd pubkey`. */
export const pubkeyCommand: Command = async (argv) => {
  const { values } = parseFlags(argv, { help: { type: "boolean", short: "h" } });
  if (values.help) return out(PUBKEY_HELP).then(() => Exit.ok);
  const input = await Bun.stdin.text();
  try {
    decodeKey(input);
  } catch (e) {
    if (!(e instanceof KeyFormatError)) throw e;
    err(`egressd pubkey: stdin is not a private key: ${e.message}`);
    return Exit.usage;
  }
  await out(publicKeyOf(input) + "\n");
  return Exit.ok;
};
