/**
 * Kernel parameters egressd needs: today only `net.ipv4.conf.all.src_valid_mark=1`, so reverse-path
 * checks of replies from the tunnel use the packet's (restored) mark (trap 2). wg-quick sets the same.
 *
 * The default access reads and writes /proc/sys directly; writing a `net.*` key needs CAP_NET_ADMIN,
 * not root. Values are read first and only written when different, so a host that already sets the key
 * (NixOS `boot.kernel.sysctl`) works even where /proc/sys is read-only (systemd ProtectKernelTunables=).
 */
import { readFile, writeFile } from "node:fs/promises";
import type { Runner } from "../exec/runner.ts";
import type { Change } from "./change.ts";
import { driftOf, type Drift, type HostPart } from "./part.ts";

/** The key egressd needs set to 1. */
export const SRC_VALID_MARK = "net.ipv4.conf.all.src_valid_mark";

/** Reads and writes sysctl keys (dotted names). */
export interface SysctlAccess {
  read(key: string): Promise<string>;
  write(key: string, value: string): Promise<void>;
}

/** A sysctl write or read failed. */
export class SysctlError extends Error {
  override name = "SysctlError";
  readonly key: string;
  constructor(key: string, what: string, options: { cause?: unknown } = {}) {
    const code = (options.cause as { code?: string } | undefined)?.code;
    const hint =
      code === "EROFS"
        ? "; /proc/sys is read-only here (systemd ProtectKernelTunables=?): set it at boot instead (NixOS boot.kernel.sysctl)"
        : code === "EACCES" || code === "EPERM"
          ? "; writing net.* keys needs CAP_NET_ADMIN"
          : "";
    super(`cannot ${what} ${key}${hint}`, options);
    this.key = key;
  }
}

/** Direct /proc/sys access (the default). `root` is for tests. */
export function procSysctl(root = "/proc/sys"): SysctlAccess {
  const path = (key: string) => `${root}/${key.replaceAll(".", "/")}`;
  return {
    async read(key) {
      try {
        return (await readFile(path(key), "utf8")).trim();
      } catch (err) {
        throw new SysctlError(key, "read", { cause: err });
      }
    },
    async write(key, value) {
      try {
        await writeFile(path(key), `${value}\n`);
      } catch (err) {
        throw new SysctlError(key, `write ${value} to`, { cause: err });
      }
    },
  };
}

/**
 * Access through the runner with `sysctl(8)`. /proc/sys/net belongs to the network namespace of the
 * process that opens it, so the test lab uses this to reach a namespace through the runner's prefix.
 */
export function runnerSysctl(runner: Runner): SysctlAccess {
  return {
    async read(key) {
      return (await runner.run(["sysctl", "-n", key])).stdout.trim();
    },
    async write(key, value) {
      await runner.run(["sysctl", "-q", "-w", `${key}=${value}`]);
    },
  };
}

/**
 * The sysctl host part: `src_valid_mark=1` while egressd runs. Host-wide (one instance however many
 * exits). `remove()` puts back the value found before, but only if it still holds ours: a value someone
 * changed meanwhile is theirs.
 */
export class SysctlPart implements HostPart {
  readonly name = "sysctl";
  readonly steps = { add: "enableSrcValidMark", remove: "restoreSrcValidMark" } as const;
  readonly #sysctl: SysctlAccess;
  /** The value found before egressd first wrote it; null when egressd has not changed it. */
  #before: string | null = null;

  constructor(sysctl: SysctlAccess) {
    this.#sysctl = sysctl;
  }

  /** Reads the key without failing: null when unreadable. For observation. */
  read(): Promise<string | null> {
    return this.#sysctl.read(SRC_VALID_MARK).catch(() => null);
  }

  /** Plans `src_valid_mark=1` when it is not already. */
  async plan(): Promise<Change[]> {
    const before = await this.#sysctl.read(SRC_VALID_MARK);
    if (before === "1") return [];
    return [
      {
        component: "sysctl",
        action: "enable-src-valid-mark",
        reason: `${SRC_VALID_MARK} is ${before}, want 1`,
        apply: async () => {
          await this.#sysctl.write(SRC_VALID_MARK, "1");
          this.#before ??= before;
        },
        undo: () => this.#sysctl.write(SRC_VALID_MARK, before),
      },
    ];
  }

  /** Puts src_valid_mark back if we changed it and it still holds our value. */
  async remove(): Promise<void> {
    const before = this.#before;
    if (before === null) return;
    if ((await this.#sysctl.read(SRC_VALID_MARK)) === "1") await this.#sysctl.write(SRC_VALID_MARK, before);
    this.#before = null;
  }

  /** Drift: the key is not 1. */
  async observe(): Promise<Drift[]> {
    return driftOf(await this.plan());
  }
}
