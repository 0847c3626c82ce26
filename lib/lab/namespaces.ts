/**
 * The lab's namespaces on the host: sweeping the namespaces of labs whose process died, removing a
 * lab's namespaces with everything running in them, and the private mount namespace (a tmpfs on
 * /run/wireguard and a tun node of its own) that keeps the lab's wireguard-go sockets off the host.
 */
import { chmod, mkdir, rm, stat } from "node:fs/promises";
import { createRunner, type ChildHandle, type Runner } from "../exec/runner.ts";
import { waitUntil } from "./wait.ts";

/**
 * Removes labs with this prefix whose creating process no longer exists (names carry the pid).
 * Returns the namespaces removed. Live labs of parallel runs are left alone.
 */
export async function cleanupStaleLabs(prefix = "egt"): Promise<string[]> {
  const root = createRunner();
  const { stdout } = await root.run(["ip", "-j", "netns", "list"]).catch(() => ({ stdout: "[]" }));
  const names = (JSON.parse(stdout || "[]") as { name: string }[]).map((n) => n.name);
  const re = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-(\\d+)-\\d+-`);
  const stale = names.filter((n) => {
    const m = re.exec(n);
    return m !== null && !pidAlive(Number(m[1]));
  });
  await removeNamespaces(stale);
  for (const n of stale) await rm(`/etc/netns/${n}`, { recursive: true, force: true });
  return stale;
}

/** Kills every process inside the namespaces (by pid), then deletes them. Missing ones are fine. */
export async function removeNamespaces(names: readonly string[]): Promise<void> {
  const root = createRunner();
  for (const n of names) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const pids = (await root.run(["ip", "netns", "pids", n]).catch(() => ({ stdout: "" }))).stdout.split(/\s+/).filter(Boolean).map(Number);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await Bun.sleep(25);
    }
    await root.run(["ip", "netns", "del", n]).catch(() => undefined);
  }
}

/** Where wireguard-go and `wg` put and find UAPI sockets (compiled into both). */
export const WIREGUARD_RUN_DIR = "/run/wireguard";

export async function ensureWireguardRunDir(): Promise<void> {
  const dir = WIREGUARD_RUN_DIR;
  await mkdir(dir, { recursive: true });
  const st = await stat(dir);
  if ((st.mode & 0o1777) !== 0o1777) await chmod(dir, 0o1777);
}

/** Creates `dir` (mode 0755) if absent, as a mount point; returns whether it did. */
export async function ensureMountpoint(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { mode: 0o755 });
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "EEXIST") return false;
    throw err;
  }
}

/**
 * Starts the process that holds the lab's private mount namespace: `ip netns exec` gives it a mount
 * namespace of its own (a slave of the host's, so nothing propagates back), it mounts a tmpfs on
 * /run/wireguard writable by `uid`, and then sleeps. Living in a lab namespace, it is stopped with the
 * lab, or by {@link cleanupStaleLabs} after a crash; the tmpfs goes with it.
 */
export async function startMountHolder(root: Runner, ns: string, uid: number): Promise<ChildHandle> {
  let ready = false;
  // A fixed script; the uid is passed as an argument, never interpolated. The holder ignores the
  // terminal's signals (SIG_IGN survives exec): Ctrl-C reaches the whole foreground process group, and
  // the mount namespace must outlive it until the caller's teardown is done; destroy() uses SIGKILL.
  // It also binds a /dev/net/tun of mode 0666 over the host's, as udev makes it on an ordinary system:
  // some hosts have it 0600, and the lab's wireguard-go runs as `uid`, which CAP_NET_ADMIN alone does
  // not let open a root-only device. The host's node is never changed.
  const tun = `${WIREGUARD_RUN_DIR}/.egressd-lab-tun`;
  const script = `trap "" INT TERM HUP QUIT; mount -t tmpfs -o "mode=0755,uid=$1,size=1m" egressd-lab ${WIREGUARD_RUN_DIR} && mknod -m 0666 ${tun} c 10 200 && mount --bind ${tun} /dev/net/tun && echo ready && exec sleep infinity`;
  const holder = root.start(["ip", "netns", "exec", ns, "sh", "-c", script, "sh", String(uid)], {
    onLine: (line) => {
      if (line === "ready") ready = true;
    },
  });
  await waitUntil(async () => ready || holder.exitStatus !== null, 5000, "the lab's mount namespace");
  if (holder.exitStatus !== null) throw new Error(`could not mount a private ${WIREGUARD_RUN_DIR}: ${holder.outputTail()}`);
  return holder;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}
