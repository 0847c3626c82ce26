import { describe, expect, test } from "bun:test";
import { WgDumpParseError, parseWgDump, readWgDump } from "../../lib/host/wgdump.ts";
import { MissingCapabilityError } from "../../lib/host/errors.ts";
import { FakeRunner } from "../exec/fake.ts";
import { KEYS } from "./fixtures.ts";

// Real `wg show <if> dump` output shape (wireguard-tools 1.0.20210914), tabs between fields.
const REAL = [
  `${KEYS.gatewayPrivate}\t${KEYS.gatewayPublic}\t43123\t0xca6d`,
  `${KEYS.exitPublic}\t(none)\t198.51.100.2:51820\t0.0.0.0/0,::/0\t1700000000\t92\t180\t25`,
  `${KEYS.strangerPublic}\t${KEYS.psk}\t[2001:db8::1]:51820\t10.9.0.0/24\t0\t0\t0\toff`,
].join("\n") + "\n";

describe("parseWgDump", () => {
  test("parses the interface line and every peer", () => {
    const d = parseWgDump(REAL);
    expect(d.interface).toEqual({ publicKey: KEYS.gatewayPublic, listenPort: 43123, fwmark: 0xca6d });
    expect(d.peers).toEqual([
      { publicKey: KEYS.exitPublic, hasPresharedKey: false, endpoint: "198.51.100.2:51820", allowedIps: ["0.0.0.0/0", "::/0"], latestHandshake: 1700000000, rxBytes: 92, txBytes: 180, persistentKeepalive: 25 },
      { publicKey: KEYS.strangerPublic, hasPresharedKey: true, endpoint: "[2001:db8::1]:51820", allowedIps: ["10.9.0.0/24"], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: null },
    ]);
  });

  test("never keeps the private key or the preshared key", () => {
    const text = JSON.stringify(parseWgDump(REAL));
    expect(text).not.toContain(KEYS.gatewayPrivate);
    expect(text).not.toContain(KEYS.psk);
  });

  test.each([
    ["fwmark off, no peers", `${KEYS.gatewayPrivate}\t${KEYS.gatewayPublic}\t0\toff\n`, { fwmark: null, peers: 0 }],
    ["endpoint and allowed ips (none)", `${KEYS.gatewayPrivate}\t${KEYS.gatewayPublic}\t1\toff\n${KEYS.exitPublic}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`, { fwmark: null, peers: 1 }],
    ["no trailing newline", `${KEYS.gatewayPrivate}\t${KEYS.gatewayPublic}\t1\t0x1`, { fwmark: 1, peers: 0 }],
  ])("%s", (_name, text, want) => {
    const d = parseWgDump(text);
    expect(d.interface.fwmark).toBe(want.fwmark);
    expect(d.peers.length).toBe(want.peers);
  });

  test.each([
    ["empty", "", 1],
    ["short interface line", "a\tb\tc\n", 1],
    ["`wg show all dump` (interface column) is rejected", `wg0\t${KEYS.gatewayPrivate}\t${KEYS.gatewayPublic}\t1\toff\n`, 1],
    ["short peer line", `p\tq\t1\toff\nx\ty\tz\n`, 2],
    ["non-numeric handshake", `p\tq\t1\toff\nk\t(none)\t(none)\t(none)\tsoon\t0\t0\toff\n`, 2],
    ["non-numeric port", `p\tq\tport\toff\n`, 1],
  ])("rejects %s", (_name, text, line) => {
    let err: unknown;
    try {
      parseWgDump(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WgDumpParseError);
    expect((err as WgDumpParseError).line).toBe(line);
  });
});

describe("readWgDump", () => {
  test("runs `wg show <if> dump`", async () => {
    const r = new FakeRunner().on("wg show wg0 dump", { stdout: REAL });
    expect((await readWgDump(r, "wg0"))?.peers.length).toBe(2);
    expect(r.lines()).toEqual(["wg show wg0 dump"]);
  });
  test.each(["Unable to access interface: No such device", "Unable to access interface: Protocol not supported"])("returns null for a missing interface (%s)", async (stderr) => {
    const r = new FakeRunner().on("wg show wg0 dump", { exitCode: 1, stderr });
    expect(await readWgDump(r, "wg0")).toBeNull();
  });
  test("without CAP_NET_ADMIN it says so", async () => {
    const r = new FakeRunner().on("wg show wg0 dump", { exitCode: 1, stderr: "Unable to access interface: Operation not permitted" });
    await expect(readWgDump(r, "wg0")).rejects.toBeInstanceOf(MissingCapabilityError);
  });
});
