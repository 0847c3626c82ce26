/**
 * The field types the config schema (schema.ts) is built from: durations, fwmarks, CIDRs, addresses,
 * keys, ports, interface names and port ranges, each parsed and normalised, each with the `kind` the
 * man page names it by, and each failing with a message that says what was expected.
 */
import { z } from "zod";
import { isKey } from "../keys/keys.ts";
import { CidrError, formatCidr, formatIp, HostPortError, parseCidr, parseHostPort, parseIp } from "../net/ip.ts";
import { MAX_DURATION_MS, parseDuration } from "./duration.ts";

/** Route tables the kernel reserves: 253 default, 254 main, 255 local (and 0 unspec). */
export const RESERVED_TABLES = [0, 253, 254, 255] as const;

const NOT_A_DURATION = `is not a duration; expected e.g. "10s", "500ms", "2m" or 0`;

/** A duration (`"10s"`, `"500ms"`, `0`, or a number of seconds), parsed to milliseconds. */
export const duration = z.union([z.string(), z.number()], { error: NOT_A_DURATION }).meta({ kind: "duration" }).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === null) {
    ctx.addIssue({ code: "custom", message: NOT_A_DURATION });
    return z.NEVER;
  }
  if (ms > MAX_DURATION_MS) {
    ctx.addIssue({ code: "custom", message: "is too long; a timer can wait at most 596h (2^31-1 ms)" });
    return z.NEVER;
  }
  return ms;
});

/** A duration that must be above zero: a deadline of 0 would fail every connection at once. */
export const positiveDuration = duration.refine((ms) => ms > 0, { message: "must be above 0 (it is a deadline)" });

/** A packet mark: a number or `"0xca6c"`; never 0, which means "unmarked" to the kernel and nft. */
const NOT_A_FWMARK = `is not a 32-bit fwmark; expected e.g. "0xca6c"`;

export const fwmark = z.union([z.string(), z.number()], { error: NOT_A_FWMARK }).meta({ kind: "fwmark" }).transform((v, ctx) => {
  const n = typeof v === "number" ? v : /^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    ctx.addIssue({ code: "custom", message: NOT_A_FWMARK });
    return z.NEVER;
  }
  if (n === 0) {
    ctx.addIssue({ code: "custom", message: "is fwmark 0, which means unmarked; choose a non-zero mark such as \"0xca6c\"" });
    return z.NEVER;
  }
  return n;
});

export function cidr(opts: { allowHostBits?: boolean } = {}) {
  return z.string().meta({ kind: "CIDR" }).transform((v, ctx) => {
    try {
      const c = parseCidr(v, opts);
      return opts.allowHostBits ? `${formatIp(c)}/${c.prefix}` : formatCidr(c);
    } catch (e) {
      if (!(e instanceof CidrError)) throw e;
      ctx.addIssue({ code: "custom", message: `is not a CIDR prefix: ${e.message}` });
      return z.NEVER;
    }
  });
}

export function hostPort(opts: { names: boolean }) {
  return z.string().meta({ kind: opts.names ? "host:port" : "ip:port" }).superRefine((v, ctx) => {
    try {
      parseHostPort(v, opts);
    } catch (e) {
      if (!(e instanceof HostPortError)) throw e;
      ctx.addIssue({ code: "custom", message: `is not ${opts.names ? "host:port" : "ip:port"}: ${e.message}` });
    }
  });
}

export const ipAddress = z.string().meta({ kind: "IP address" }).refine((v) => parseIp(v) !== null, { message: "is not an IP address" });

export const wgKey = z.string().meta({ kind: "WireGuard key" }).refine(isKey, {
  message: "is not a WireGuard key: expected 44 characters of base64 ending in \"=\" (as `wg pubkey` prints)",
});

export const port = z.number().int().min(1).max(65535);

/** Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no `/`, whitespace or `:`. */
export const ifName = z.string().meta({ kind: "interface name" }).regex(/^[A-Za-z0-9_.-]{1,15}$/, {
  message: "is not an interface name: 1-15 characters of letters, digits, _ . -",
});

/** `"40000-40100"`: an inclusive range of UDP ports, parsed to `{ first, last }`. */
const NOT_A_PORT_RANGE = `is not a port range; expected e.g. "40000-40100"`;
export const portRange = z.string({ error: NOT_A_PORT_RANGE }).meta({ kind: "port range" }).transform((v, ctx) => {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(v.trim());
  const first = m ? Number(m[1]) : NaN;
  const last = m ? Number(m[2]) : NaN;
  if (!m || first < 1 || last > 65535 || first > last) {
    ctx.addIssue({ code: "custom", message: m ? `${NOT_A_PORT_RANGE}: ports 1-65535, first not above last` : NOT_A_PORT_RANGE });
    return z.NEVER;
  }
  return { first, last };
});

