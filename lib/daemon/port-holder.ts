/**
 * Which process holds a TCP port: the LISTEN sockets of /proc/net/tcp and /proc/net/tcp6, matched
 * to a process through the `socket:[inode]` links in /proc/<pid>/fd. Used only to explain a failed
 * bind, so every read that fails (another user's process under ProtectProc=invisible, a process
 * that exited meanwhile) just leaves that candidate out.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { type IpAddr, parseIp, unmapIp } from "../net/ip.ts";

/** One LISTEN socket from /proc/net/tcp{,6}. */
export interface TcpListener {
  address: IpAddr;
  port: number;
  inode: number;
}

/** A process holding a socket. */
export interface PortHolder {
  pid: number;
  /** /proc/<pid>/comm. */
  command: string;
}

const TCP_LISTEN = "0A";

/**
 * Decodes a /proc/net/tcp address: IPv4 is one 32-bit word, IPv6 four, each printed in host byte
 * order (little-endian on every platform egressd runs on), so each word's bytes come reversed.
 */
function procAddress(hex: string): IpAddr | null {
  if (hex.length !== 8 && hex.length !== 32) return null;
  if (!/^[0-9A-Fa-f]+$/.test(hex)) return null;
  const bytes = new Uint8Array(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    for (let b = 0; b < 4; b++) bytes[w * 4 + b] = parseInt(hex.slice(w * 8 + (3 - b) * 2, w * 8 + (3 - b) * 2 + 2), 16);
  }
  return { family: bytes.length === 4 ? 4 : 6, bytes };
}

/** The LISTEN rows of a /proc/net/tcp or tcp6 text; malformed rows are skipped. */
export function parseProcNetTcp(text: string): TcpListener[] {
  const out: TcpListener[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
    const [addrHex, portHex] = f[1]!.split(":");
    const address = procAddress(addrHex ?? "");
    const port = parseInt(portHex ?? "", 16);
    const inode = Number(f[9]);
    if (!address || !Number.isInteger(port) || !(port > 0 && port < 65536) || !Number.isInteger(inode) || inode <= 0) continue;
    out.push({ address, port, inode });
  }
  return out;
}

function sameOrWildcard(listener: IpAddr, wanted: IpAddr): boolean {
  const l = unmapIp(listener);
  const w = unmapIp(wanted);
  // Any bind to the port collides with a wildcard, and a wildcard collides with any bind; an
  // IPv6 wildcard socket without IPV6_V6ONLY holds the IPv4 port too.
  if (l.bytes.every((b) => b === 0) || w.bytes.every((b) => b === 0)) return l.family === w.family || listener.family === 6;
  return l.family === w.family && l.bytes.every((b, i) => b === w.bytes[i]);
}

/** Options for {@link findPortHolder}. */
export interface FindPortHolderOptions {
  /** Where procfs is mounted. Default `/proc`. */
  proc?: string;
}

/** The process listening on `host:port` (or on the port's wildcard), or null when none can be seen. */
export function findPortHolder(host: string, port: number, opts: FindPortHolderOptions = {}): PortHolder | null {
  const proc = opts.proc ?? "/proc";
  const wanted = parseIp(host);
  if (!wanted) return null;
  const inodes = new Set<number>();
  for (const file of ["net/tcp", "net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(join(proc, file), "utf8");
    } catch {
      continue; // no IPv6, or no procfs: nothing to say
    }
    for (const l of parseProcNetTcp(text)) if (l.port === port && sameOrWildcard(l.address, wanted)) inodes.add(l.inode);
  }
  if (inodes.size === 0) return null;
  for (const name of readdirSync(proc)) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = readdirSync(join(proc, name, "fd"));
    } catch {
      continue; // another user's process, or gone
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(join(proc, name, "fd", fd));
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (!m || !inodes.has(Number(m[1]))) continue;
      let command = "?";
      try {
        command = readFileSync(join(proc, name, "comm"), "utf8").trim();
      } catch {
        // exited between the two reads: the pid is still the answer
      }
      return { pid: Number(name), command };
    }
  }
  return null;
}
