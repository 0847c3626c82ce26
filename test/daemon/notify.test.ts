/**
 * sd_notify without libsystemd: the sockaddr_un encoding as a table, then real datagrams from
 * createNotifier() to a Unix datagram socket bound by python3 (a path and an abstract name), the way
 * systemd's own socket receives them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNotifier, encodeSockaddrUn, monotonicUsec, NotifyError, sendNotify } from "../../lib/daemon/notify.ts";
import { type NotifyReceiver, poll, startNotifyReceiver } from "./helpers.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("encodeSockaddrUn", () => {
  test.each([
    // address, length, the bytes that matter (family little-endian, then sun_path)
    ["/run/systemd/notify", 2 + 19 + 1, "0100" + Buffer.from("/run/systemd/notify").toString("hex") + "00"],
    ["@egressd", 2 + 1 + 7, "0100" + "00" + Buffer.from("egressd").toString("hex")],
    ["/", 2 + 1 + 1, "0100" + "2f" + "00"],
    ["@", 2 + 1, "0100" + "00"],
  ])("%s", (address, length, prefix) => {
    const { bytes, length: len } = encodeSockaddrUn(address);
    expect(len).toBe(length);
    expect(bytes.length).toBe(110); // sizeof(struct sockaddr_un)
    expect(hex(bytes.subarray(0, len))).toBe(prefix);
    // Everything after the address is zero: the kernel reads only `len` bytes, but no junk either way.
    expect(bytes.subarray(len).every((b) => b === 0)).toBe(true);
  });

  test("takes UTF-8 bytes, not UTF-16 units", () => {
    expect(encodeSockaddrUn("/tmp/ü").length).toBe(2 + 7 + 1);
  });

  test("accepts 107 bytes and refuses 108 (sun_path is 108 with its NUL)", () => {
    expect(encodeSockaddrUn("/" + "a".repeat(106)).length).toBe(110);
    expect(() => encodeSockaddrUn("/" + "a".repeat(107))).toThrow(NotifyError);
    expect(encodeSockaddrUn("@" + "a".repeat(107)).length).toBe(110);
    expect(() => encodeSockaddrUn("@" + "a".repeat(108))).toThrow(NotifyError);
  });
});

describe("monotonicUsec", () => {
  test("is CLOCK_MONOTONIC since boot, not time since the process started", () => {
    const uptime = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
    const mono = Number(monotonicUsec()) / 1e6;
    // /proc/uptime is CLOCK_BOOTTIME, which equals CLOCK_MONOTONIC unless the machine has slept.
    expect(Math.abs(mono - uptime)).toBeLessThan(2);
    expect(mono).toBeGreaterThan(performance.now() / 1000);
  });

  test("never goes backwards", () => {
    let last = monotonicUsec();
    for (let i = 0; i < 1000; i++) {
      const now = monotonicUsec();
      expect(now >= last).toBe(true);
      last = now;
    }
  });
});

describe("createNotifier to a real datagram socket", () => {
  let dir: string;
  const receivers: NotifyReceiver[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "egressd-notify-"));
  });
  afterAll(async () => {
    for (const r of receivers) await r.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const addresses = () => [
    ["a path", join(dir, "notify.sock")],
    ["an abstract name", `@egressd-test-${process.pid}-${Math.random().toString(36).slice(2)}`],
  ];

  for (const kind of ["a path", "an abstract name"]) {
    test(`delivers every message kind to ${kind}`, async () => {
      const address = addresses().find(([k]) => k === kind)![1]!;
      const r = await startNotifyReceiver(address);
      receivers.push(r);
      const errors: unknown[] = [];
      const n = createNotifier({ env: { NOTIFY_SOCKET: address }, onError: (e) => errors.push(e) });
      expect(n.enabled).toBe(true);
      n.ready("handshake 3 seconds ago; 2 active connections");
      n.status("line one\nline two");
      n.reloading();
      n.ready();
      n.watchdog();
      n.stopping();
      await poll(() => r.messages.length >= 6, 5000, "six datagrams");
      expect(errors).toEqual([]);
      const m = r.messages.map((x) => x.msg);
      expect(m[0]).toBe("READY=1\nSTATUS=handshake 3 seconds ago; 2 active connections");
      expect(m[1]).toBe("STATUS=line one line two"); // one field per line: a newline would start a new one
      expect(m[2]).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+$/);
      expect(m.slice(3)).toEqual(["READY=1", "WATCHDOG=1", "STOPPING=1"]);
      // MONOTONIC_USEC is the same clock python's time.monotonic() reads, taken just before sending.
      const usec = Number(r.messages[2]!.fields.MONOTONIC_USEC) / 1e6;
      expect(r.messages[2]!.t - usec).toBeGreaterThanOrEqual(-0.001);
      expect(r.messages[2]!.t - usec).toBeLessThan(1);
      const uptime = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
      expect(Math.abs(usec - uptime)).toBeLessThan(2);
    });
  }

  test("without NOTIFY_SOCKET it is disabled and sends nothing", () => {
    const sent: string[] = [];
    const n = createNotifier({ env: {}, send: (_a, m) => sent.push(m) });
    expect(n.enabled).toBe(false);
    n.ready("x");
    n.status("x");
    n.reloading();
    n.watchdog();
    n.stopping();
    expect(sent).toEqual([]);
  });

  test("a socket nobody listens on is reported to onError with errno, never thrown", () => {
    const errors: unknown[] = [];
    const missing = createNotifier({ env: { NOTIFY_SOCKET: join(dir, "nobody.sock") }, onError: (e) => errors.push(e) });
    missing.ready();
    const notSocket = join(dir, "plain-file");
    writeFileSync(notSocket, "");
    createNotifier({ env: { NOTIFY_SOCKET: notSocket }, onError: (e) => errors.push(e) }).watchdog();
    expect(errors.length).toBe(2);
    expect(errors[0]).toBeInstanceOf(NotifyError);
    expect((errors[0] as NotifyError).errno).toBe(2); // ENOENT
    expect((errors[0] as NotifyError).socket).toBe(join(dir, "nobody.sock"));
    expect((errors[1] as NotifyError).errno).toBe(111); // ECONNREFUSED: not a socket that listens
  });

  test("sendNotify throws NotifyError for an address that cannot be encoded", () => {
    expect(() => sendNotify("/" + "x".repeat(200), "READY=1")).toThrow(NotifyError);
  });
});
