/**
 * The config's pins, checked against its exits: `proxy.pinnedListeners` (a listener's connections
 * leave by one exit) and the `exit` of a `proxy.auth` account (a user's do). A pin names an exit
 * of `exits`; with the one-exit form there is nothing to choose between, so a pin is refused there
 * rather than silently meaning "the only exit".
 *
 * Pure: a function over the parsed config that reports problems through `issue`. Whether a user
 * pin and a listener pin that disagree may meet on one connection is decided at run time
 * (lib/proxy/pin.ts: refused), since any user may connect to any listener.
 */
import { socketAddressKeyOf } from "../net/ip.ts";
import { authAccounts, type AuthConfig } from "./auth.ts";

/** What {@link pinProblems} reads of a parsed config. */
export interface PinnedConfig {
  readonly exits?: readonly { readonly name: string }[] | undefined;
  readonly proxy: {
    readonly listen: readonly (string | { readonly address: string })[];
    readonly pinnedListeners?: Readonly<Record<string, string>> | undefined;
    readonly auth: AuthConfig | null;
  };
}

/** Reports each pin that names no exit of `exits`, pins a listener that is not one, or comes without `exits`. */
export function pinProblems(c: PinnedConfig, issue: (path: (string | number)[], input: unknown, message: string) => void): void {
  const names = c.exits?.map((e) => e.name) ?? null;
  const check = (path: (string | number)[], exit: string): void => {
    if (names === null) issue(path, exit, `needs "exits" (two or more): with one exit every connection leaves by it already`);
    else if (!names.includes(exit)) issue(path, exit, `is not the name of an exit (${names.join(", ")})`);
  };
  const listen = c.proxy.listen.map((l) => (typeof l === "string" ? l : l.address));
  // Compared as socket addresses, as the proxy keys them: `[0:0::1]:1080` pins `[::1]:1080`.
  const keys = new Set(listen.map(socketAddressKeyOf).filter((k) => k !== null));
  for (const [address, exit] of Object.entries(c.proxy.pinnedListeners ?? {})) {
    const key = socketAddressKeyOf(address);
    if (key === null || !keys.has(key)) issue(["proxy", "pinnedListeners", address], exit, `is pinned to an address that is not in proxy.listen (${listen.join(", ")})`);
    check(["proxy", "pinnedListeners", address], exit);
  }
  for (const { at, account } of authAccounts(c.proxy.auth)) {
    if (account.exit === undefined) continue;
    const path = at === "proxy.auth" ? ["proxy", "auth", "exit"] : ["proxy", "auth", "users", Number(/\[(\d+)\]/.exec(at)![1]), "exit"];
    check(path, account.exit);
  }
}

