/**
 * wireguard-go supervision: the userspace fallback when the kernel has no WireGuard module.
 *
 * wireguard-go runs in the foreground (`-f`) as the daemon's child, so its pid is known and removing the
 * interface stops it. It is started through `setpriv --pdeathsig TERM`, so it dies with the daemon instead
 * of holding a tunnel nobody manages; systemd's control-group kill covers the rest. It shares the
 * daemon's uid, which is why its socket must carry `wireguardFwmark` and nftables marks only `meta mark 0`
 * packets (trap 4). Its control socket lives in /var/run/wireguard/<if>.sock, which must be writable by
 * the daemon's user.
 *
 * The supervisor is one interface's: an exit with its own interface has its own supervisor. Its part of
 * the host shape: `running` is what the interface part observes (a userspace link whose process is not
 * our live child is recreated), {@link UserspaceSupervisor.start} is applied inside the interface's
 * creation, {@link UserspaceSupervisor.stop} is its removal.
 */
import { MissingToolError } from "../exec/errors.ts";
import type { ChildHandle, Runner } from "../exec/runner.ts";
import type { Logger } from "../log/logger.ts";
import { MissingCapabilityError, WireGuardStartError, WireGuardUnavailableError } from "./errors.ts";
import type { Implementation } from "./spec.ts";
import { readWgDump } from "./wgdump.ts";

/** Options for {@link UserspaceSupervisor}. */
export interface UserspaceOptions {
  /** The interface wireguard-go creates. */
  ifname: string;
  /** The configured implementation: with `auto`, a missing wireguard-go is reported as "no WireGuard at all". */
  implementation: Implementation;
  runner: Runner;
  log: Logger;
  now: () => number;
  /** How long wireguard-go may take to create its interface and socket, ms. Default 5000. */
  startTimeoutMs?: number;
  /** Start it via `setpriv --pdeathsig TERM` so it dies with the daemon. Default true. */
  parentDeathSignal?: boolean;
}

/** See the module comment. */
export class UserspaceSupervisor {
  readonly #o: UserspaceOptions;
  readonly #startTimeoutMs: number;
  readonly #pdeathsig: boolean;
  #checked = false;
  /** Children being stopped on purpose: their exit is not news. */
  #stopping = new WeakSet<ChildHandle>();
  #child: ChildHandle | null = null;

  constructor(opts: UserspaceOptions) {
    this.#o = opts;
    this.#startTimeoutMs = opts.startTimeoutMs ?? 5000;
    this.#pdeathsig = opts.parentDeathSignal ?? true;
  }

  /** True while our wireguard-go child runs. */
  get running(): boolean {
    return this.#child !== null && this.#child.exitStatus === null;
  }

  /** wireguard-go's pid while it runs, else null. */
  get pid(): number | null {
    return this.running ? this.#child!.pid : null;
  }

  /**
   * Starts `wireguard-go -f <if>` through `run` and waits until its interface answers `wg show`.
   * Throws {@link WireGuardStartError} when it exits or does not become ready in time.
   */
  async start(run: Runner): Promise<void> {
    const { ifname, log } = this.#o;
    await this.#checkTools();
    const argv = this.#pdeathsig ? ["setpriv", "--pdeathsig", "TERM", "wireguard-go", "-f", ifname] : ["wireguard-go", "-f", ifname];
    const env = {
      WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1",
      LOG_LEVEL: log.debugEnabled ? "verbose" : "error",
    };
    const child: ChildHandle = run.start(argv, {
      env,
      onLine: (line) => {
        if (line.startsWith("ERROR") && !this.#stopping.has(child)) log.warn("wireguard-go", { ifname, line });
        else if (log.debugEnabled) log.debug("wireguard-go", { ifname, line });
      },
    });
    this.#child = child;
    void child.exited.then((exit) => {
      if (!this.#stopping.has(child)) {
        log.warn("wireguard-go exited", { ifname, pid: child.pid, code: exit.exitCode ?? undefined, signal: exit.signal ?? undefined });
      }
    });
    const deadline = this.#o.now() + this.#startTimeoutMs;
    for (;;) {
      if (child.exitStatus !== null) {
        const e = child.exitStatus;
        throw new WireGuardStartError(ifname, `exited during start (${e.signal ?? `status ${e.exitCode}`})`, child.outputTail());
      }
      const ready = await readWgDump(this.#o.runner, ifname).catch((err: unknown) => {
        if (err instanceof MissingCapabilityError) throw err;
        return null;
      });
      if (ready !== null) return;
      if (this.#o.now() > deadline) {
        child.kill("SIGTERM");
        throw new WireGuardStartError(ifname, `did not become ready within ${this.#startTimeoutMs} ms`, child.outputTail());
      }
      await Bun.sleep(20);
    }
  }

  /**
   * Detaches the child, so its exit (and its complaints about the vanishing device) is expected, and
   * returns a function that waits for it to end (call it after deleting the link).
   */
  detach(): () => Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (!child) return async () => {};
    this.#stopping.add(child);
    return () => this.#stop(child);
  }

  /** Probes wireguard-go (and setpriv) once, so a missing binary is reported as such. */
  async #checkTools(): Promise<void> {
    if (this.#checked) return;
    const tools = this.#pdeathsig ? ["wireguard-go", "setpriv"] : ["wireguard-go"];
    for (const tool of tools) {
      try {
        await this.#o.runner.run([tool, "--version"]);
      } catch (err) {
        if (err instanceof MissingToolError && this.#o.implementation === "auto") {
          throw new WireGuardUnavailableError(
            "userspace",
            `the kernel has no WireGuard module and ${err.tool} is not installed (Debian package ${err.package ?? "unknown"})`,
            { cause: err },
          );
        }
        throw err;
      }
    }
    this.#checked = true;
  }

  async #stop(child: ChildHandle): Promise<void> {
    if (child.exitStatus !== null) return;
    // Deleting the link makes wireguard-go exit on its own; give it a moment, then insist.
    if (await exitsWithin(child, 2000)) return;
    child.kill("SIGTERM");
    if (await exitsWithin(child, 2000)) return;
    this.#o.log.warn("wireguard-go ignored SIGTERM; killing it", { pid: child.pid });
    child.kill("SIGKILL");
    await child.exited;
  }
}

function exitsWithin(child: ChildHandle, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void child.exited.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
