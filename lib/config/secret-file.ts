/**
 * Reading a secret file (a WireGuard private or preshared key, a proxy password) by one rule,
 * wherever it is named: in a config (`interface.privateKeyFile`, ...) or on the command line
 * (`egressd proxy --password-file`).
 *
 * The rule, as ssh has it for keys: a regular file of at most {@link MAX_SECRET_BYTES}; refused
 * when others can read or write it, accepted with a warning when the group can. The mode is taken
 * from the descriptor the secret is read from, so a file swapped in between is not missed.
 */
import { resolve, sep } from "node:path";
import { decodeKey, KeyFormatError } from "../keys/keys.ts";
import { describeFileError, FileReadError, readRegularFile } from "./read-file.ts";

/** Largest secret file read: a key is 45 bytes, a password at most 257. */
export const MAX_SECRET_BYTES = 64 * 1024;

/** What a secret file holds. */
export type SecretKind = "key" | "password";

/** A secret file that cannot be used. `message` is one line, starting with the field. */
export class SecretFileError extends Error {
  override name = "SecretFileError";
  /** What named the file: a config path (`exit.presharedKeyFile`) or a flag (`--password-file`). */
  readonly field: string;
  /** The file. */
  readonly file: string;

  constructor(field: string, file: string, problem: string, opts: { cause?: unknown } = {}) {
    super(`${field}: "${file}" ${problem}`, opts);
    this.field = field;
    this.file = file;
  }
}

/** Options for {@link readSecretFile}. */
export interface SecretFileOptions {
  /** What named the file, for messages: `interface.privateKeyFile`, `--password-file`. */
  field: string;
  /** What it must hold. */
  kind: SecretKind;
  /** Receives the warning for a group-readable file. Default: ignored. */
  warn?: (message: string) => void;
  /**
   * systemd's `$CREDENTIALS_DIRECTORY`, if any. Files there are not warned about for group read:
   * systemd 257 makes them 0440 itself, in a directory only the unit can enter, and the user
   * cannot change that mode.
   */
  credentialsDirectory?: string;
}

function insideDir(file: string, dir: string | undefined): boolean {
  if (!dir) return false;
  return resolve(file).startsWith(resolve(dir) + sep);
}

/** The password a password file holds: its text without one trailing newline (`echo pw > file`). */
export function passwordOf(text: string): string {
  return text.replace(/\r?\n$/, "");
}

/**
 * Reads and checks a secret file, and returns its text as written: a WireGuard key, or a password
 * of 1-255 bytes (RFC 1929 §2) once {@link passwordOf} drops its newline. Throws
 * {@link SecretFileError} naming `opts.field`.
 */
export function readSecretFile(file: string, opts: SecretFileOptions): string {
  const fail = (problem: string, cause?: unknown): never => {
    throw new SecretFileError(opts.field, file, problem, { cause });
  };
  let read;
  try {
    read = readRegularFile(file, { maxBytes: MAX_SECRET_BYTES, purpose: "a secret file" });
  } catch (e) {
    if (e instanceof FileReadError) return fail(describeFileError(e), e);
    throw e;
  }
  const mode = read.stat.mode & 0o777;
  const octal = mode.toString(8).padStart(4, "0");
  if (mode & 0o007) fail(`has permissions ${octal}, which others can access; run chmod 600 "${file}"`);
  if (mode & 0o070 && !insideDir(file, opts.credentialsDirectory)) opts.warn?.(`${opts.field}: "${file}" has permissions ${octal}; the group can read it (chmod 600 is safer)`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(read.bytes);
  } catch (e) {
    return fail("is not valid UTF-8", e);
  }
  if (opts.kind === "key") {
    try {
      decodeKey(text);
    } catch (e) {
      if (e instanceof KeyFormatError) fail(`does not hold a WireGuard key: ${e.message}`, e);
      throw e;
    }
    return text;
  }
  const bytes = Buffer.byteLength(passwordOf(text));
  if (bytes < 1 || bytes > 255) fail(`must hold a password of 1-255 bytes (RFC 1929), has ${bytes}`);
  return text;
}
