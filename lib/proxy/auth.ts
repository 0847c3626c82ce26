/**
 * RFC 1929 username/password checking, and reading the password from a file.
 *
 * Does not parse the wire format (socks5.ts does) and never logs or returns a password. The
 * password comes from a file (a systemd credential in production), never from argv, where any
 * local user could read it in /proc.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { ProxyConfigError } from "./errors.ts";
import type { AuthRequest } from "./socks5.ts";

/** The one account the proxy accepts. Both fields are 1..255 bytes as UTF-8 (RFC 1929 §2). */
export interface Credentials {
  readonly username: string;
  readonly password: string;
}

function digest(bytes: Uint8Array | string): Buffer {
  return createHash("sha256").update(bytes).digest();
}

/**
 * Checks credentials in constant time: both sides are hashed first, so neither the content nor
 * the length of the expected values shows in the comparison's timing, and the username and
 * password are both always compared.
 */
export class CredentialChecker {
  readonly #user: Buffer;
  readonly #pass: Buffer;
  /** The expected username, for logs. */
  readonly username: string;

  /** Throws {@link ProxyConfigError} if a field is empty or longer than 255 bytes. */
  constructor(credentials: Credentials) {
    validateCredentials(credentials);
    this.username = credentials.username;
    this.#user = digest(credentials.username);
    this.#pass = digest(credentials.password);
  }

  /** True when `req` carries exactly the expected username and password. */
  check(req: AuthRequest): boolean {
    const u = timingSafeEqual(digest(req.username), this.#user);
    const p = timingSafeEqual(digest(req.password), this.#pass);
    return u && p;
  }
}

/** Throws {@link ProxyConfigError} unless both fields are 1..255 bytes as UTF-8. */
export function validateCredentials(c: Credentials): void {
  const u = Buffer.byteLength(c.username, "utf8");
  const p = Buffer.byteLength(c.password, "utf8");
  if (u < 1 || u > 255) throw new ProxyConfigError("auth.username", `must be 1..255 bytes, not ${u}`);
  if (p < 1 || p > 255) throw new ProxyConfigError("auth.password", `must be 1..255 bytes, not ${p}`);
}

/**
 * Reads a password file: its content without one trailing newline (`\n` or `\r\n`, as editors and
 * `echo` leave them). Throws {@link ProxyConfigError} naming the file if it is unreadable, empty
 * or longer than 255 bytes.
 */
export async function readPasswordFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ProxyConfigError("auth.passwordFile", `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  const password = text.replace(/\r?\n$/, "");
  const n = Buffer.byteLength(password, "utf8");
  if (n < 1 || n > 255) throw new ProxyConfigError("auth.passwordFile", `${path}: password must be 1..255 bytes, not ${n}`);
  return password;
}
