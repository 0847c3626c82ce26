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
