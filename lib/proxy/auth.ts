/**
 * RFC 1929 username/password checking against one account or several (each possibly pinned to an
 * exit), and reading the password from a file.
 *
 * Does not parse the wire format (socks5-greeting.ts does) and never logs or returns a password. The
 * password comes from a file (a systemd credential in production), never from argv, where any
 * local user could read it in /proc.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { SourceAddresses } from "./dial.ts";
import { ProxyConfigError } from "./errors.ts";
import type { AuthRequest } from "./socks5-greeting.ts";

/**
 * One account the proxy accepts. Both fields are 1..255 bytes as UTF-8 (RFC 1929 §2). `source`
 * pins the account to one exit: its outbound connections bind those addresses (see
 * {@link SourceAddresses}) and leave by that exit only.
 */
export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** The exit this user is pinned to, as the addresses its connections bind. Default: not pinned. */
  readonly source?: SourceAddresses | null;
}

/** An authenticated user, as {@link CredentialChecker.match} returns it. Never holds the password. */
export interface AuthUser {
  readonly username: string;
  /** The user's pin, or null when the user is not pinned to an exit. */
  readonly source: SourceAddresses | null;
}

/** Most accounts one checker holds: every attempt is compared with each of them. */
export const MAX_USERS = 1024;

function digest(bytes: Uint8Array | string): Buffer {
  return createHash("sha256").update(bytes).digest();
}

interface Account {
  readonly user: Buffer;
  readonly pass: Buffer;
  readonly who: AuthUser;
}

/**
 * Checks credentials in constant time: both sides are hashed first, so neither the content nor
 * the length of the expected values shows in the comparison's timing, and every account's
 * username and password are always compared (the time depends on the number of accounts only).
 */
export class CredentialChecker {
  readonly #accounts: readonly Account[];
  /** The usernames, in order, for logs. */
  readonly usernames: readonly string[];

  /**
   * One account, or several with distinct usernames. Throws {@link ProxyConfigError} if a field is
   * empty or longer than 255 bytes, a username is given twice, or there are none or over {@link MAX_USERS}.
   */
  constructor(credentials: Credentials | readonly Credentials[]) {
    const list: readonly Credentials[] = Array.isArray(credentials) ? credentials : [credentials as Credentials];
    if (list.length === 0) throw new ProxyConfigError("auth", "needs at least one user");
    if (list.length > MAX_USERS) throw new ProxyConfigError("auth", `has ${list.length} users, more than ${MAX_USERS}`);
    const seen = new Map<string, number>();
    list.forEach((c, i) => {
      validateCredentials(c, list.length > 1 ? `auth[${i}]` : "auth");
      const first = seen.get(c.username);
      if (first !== undefined) throw new ProxyConfigError(`auth[${i}].username`, `"${c.username}" is already the username of auth[${first}]`);
      seen.set(c.username, i);
    });
    this.usernames = list.map((c) => c.username);
    this.#accounts = list.map((c) => ({ user: digest(c.username), pass: digest(c.password), who: { username: c.username, source: c.source ?? null } }));
  }

  /** The account `req` carries exactly the username and password of, or null. */
  match(req: AuthRequest): AuthUser | null {
    const u = digest(req.username);
    const p = digest(req.password);
    let found = -1;
    const accounts = this.#accounts;
    for (let i = 0; i < accounts.length; i++) {
      const a = accounts[i]!;
      // Both comparisons always run, and the hit is folded in without a branch on it.
      const hit = Number(timingSafeEqual(u, a.user)) & Number(timingSafeEqual(p, a.pass));
      found = hit * i + (1 - hit) * found;
    }
    return found < 0 ? null : accounts[found]!.who;
  }

  /** True when `req` carries exactly the username and password of one account. */
  check(req: AuthRequest): boolean {
    return this.match(req) !== null;
  }
}

/** Throws {@link ProxyConfigError} (naming `field`, default `auth`) unless both fields are 1..255 bytes as UTF-8. */
function validateCredentials(c: Credentials, field = "auth"): void {
  const u = Buffer.byteLength(c.username, "utf8");
  const p = Buffer.byteLength(c.password, "utf8");
  if (u < 1 || u > 255) throw new ProxyConfigError(`${field}.username`, `must be 1..255 bytes, not ${u}`);
  if (p < 1 || p > 255) throw new ProxyConfigError(`${field}.password`, `must be 1..255 bytes, not ${p}`);
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
