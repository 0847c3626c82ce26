/**
 * The `proxy.auth` section: one account (`{ username, passwordFile }`, the form egressd has always
 * read) or several (`{ users: [...] }`), each of which may be pinned to one of `exits` by name.
 *
 * Pure schema. The parsed config keeps the form as written (check-config prints it back);
 * {@link authAccounts} lists the accounts of either form, so that nothing downstream handles two
 * shapes. Which exit names exist is checked with the rest of the pins (pins.ts); the password files
 * are read elsewhere (load.ts, lib/daemon/specs.ts).
 */
import { z } from "zod";

/** Most users `proxy.auth.users` may list (each attempt is compared with every one, in constant time). */
const MAX_AUTH_USERS = 1024;

const username = z.string().min(1).max(255);
const passwordFile = z.string().min(1);
const exitName = z.string().min(1).max(64);

const userSchema = z.strictObject({
  username: username.describe("The username (RFC 1929; HTTP Basic's user id) of this user; unique in the list."),
  passwordFile: passwordFile.describe("File holding this user's password (1-255 bytes); a relative path is a credential name."),
  exit: exitName.optional().describe("With `exits`: the exit this user's connections leave by, and no other. While it is down they fail; they never fall over to another exit."),
});

/** `proxy.auth` as written: the one-account fields, or `users`, never both. */
export const authSchema = z
  .strictObject({
    username: username.optional().describe("The RFC 1929 username clients must send (the one-account form; several: `users`)."),
    passwordFile: passwordFile.optional().describe("File holding the password (1-255 bytes); a relative path is a credential name."),
    exit: exitName.optional().describe("With `exits`: the exit the one account's connections leave by, and no other."),
    users: z
      .array(userSchema)
      .min(1)
      .max(MAX_AUTH_USERS)
      .optional()
      .describe("Several accounts, each `{ \"username\": ..., \"passwordFile\": ..., \"exit\"?: ... }`, instead of the one-account fields."),
  })
  .superRefine((a, ctx) => {
    const issue = (path: (string | number)[], input: unknown, message: string) => ctx.addIssue({ code: "custom", path, input, message });
    if (a.users !== undefined) {
      for (const key of ["username", "passwordFile", "exit"] as const) {
        if (a[key] !== undefined) issue([key], a[key], `is not allowed together with "users"; move the account into the list`);
      }
      const seen = new Map<string, number>();
      a.users.forEach((u, i) => {
        const first = seen.get(u.username);
        if (first !== undefined) issue(["users", i, "username"], u.username, `is already the username of proxy.auth.users[${first}]`);
        else seen.set(u.username, i);
      });
      return;
    }
    if (a.username === undefined) issue(["username"], undefined, "is required (string), or list accounts in \"users\"");
    if (a.passwordFile === undefined) issue(["passwordFile"], undefined, "is required (string), or list accounts in \"users\"");
  });

/** `proxy.auth` as parsed: the form it was written in. */
export type AuthConfig = z.output<typeof authSchema>;

/** One account of `proxy.auth`, and the config path that names it in a problem. */
export interface AuthAccount {
  /** `proxy.auth` (the one-account form) or `proxy.auth.users[i]`. */
  readonly at: string;
  /** The object in the config itself, so that a resolved password file path can be written back. */
  readonly account: { username: string; passwordFile: string; exit?: string | undefined };
}

/** Every account of a checked `proxy.auth`, in order, whichever form it was written in (none for null). */
export function authAccounts(a: AuthConfig | null): AuthAccount[] {
  if (a === null) return [];
  if (a.users !== undefined) return a.users.map((account, i) => ({ at: `proxy.auth.users[${i}]`, account }));
  return [{ at: "proxy.auth", account: a as AuthAccount["account"] }];
}
