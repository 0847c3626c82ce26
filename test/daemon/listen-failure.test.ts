/**
 * lib/daemon/port-holder.ts and listen-failure.ts: /proc/net/tcp rows as tables, then a real busy
 * port on loopback held by a listener this test starts, explained with its field and holder.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ListenError as MetricsListenError } from "../../lib/metrics/errors.ts";
import { explainListenFailure, ListenAddressError } from "../../lib/daemon/listen-failure.ts";
import { findPortHolder, parseProcNetTcp } from "../../lib/daemon/port-holder.ts";
import { formatIp } from "../../lib/net/ip.ts";
import { PYTHON } from "./helpers.ts";

const HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const row = (local: string, st: string, inode: string) => `   0: ${local} 00000000:0000 ${st} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0`;

describe("parseProcNetTcp", () => {
  test.each([
    ["IPv4 loopback", row("0100007F:0438", "0A", "4242"), [["127.0.0.1", 1080, 4242]]],
    ["IPv4 wildcard", row("00000000:1F90", "0A", "7"), [["0.0.0.0", 8080, 7]]],
    ["IPv4 LAN address", row("0100010A:0438", "0A", "9"), [["10.1.0.1", 1080, 9]]],
    ["IPv6 loopback", row("00000000000000000000000001000000:0438", "0A", "11"), [["::1", 1080, 11]]],
    ["IPv6 2001:db8::1", row("B80D0120000000000000000001000000:0050", "0A", "12"), [["2001:db8::1", 80, 12]]],
    ["an established socket is not a listener", row("0100007F:0438", "01", "13"), []],
    ["inode 0 (a socket being torn down)", row("0100007F:0438", "0A", "0"), []],
    ["port 0", row("0100007F:0000", "0A", "14"), []],
    ["bad hex in the address", row("0100007G:0438", "0A", "15"), []],
    ["an address of the wrong length", row("0100007F00:0438", "0A", "16"), []],
    ["a truncated row", "   0: 0100007F:0438 00000000:0000 0A", []],
    ["an empty file", "", []],
  ])("%s", (_name, body, want) => {
    const got: unknown[] = parseProcNetTcp(HEAD + body + "\n").map((l) => [formatIp(l.address), l.port, l.inode]);
    expect(got).toEqual(want as unknown[]);
  });
});

describe("a real busy port on 127.0.0.1", () => {
  let holder: ReturnType<typeof Bun.spawn> | undefined;
  let port = 0;

  beforeAll(async () => {
    holder = Bun.spawn([PYTHON, "-c", "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)"], { stdout: "pipe" });
    const reader = (holder.stdout as ReadableStream<Uint8Array>).getReader();
    const { value } = await reader.read();
    port = Number(new TextDecoder().decode(value).trim());
    reader.releaseLock();
  });
  afterAll(() => holder?.kill("SIGKILL"));

  /** A real bind of the busy port, and the error lib/metrics makes of it. */
  function bindError(address: string): Error {
    try {
      Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    } catch (e) {
      return new MetricsListenError(address, { cause: e });
    }
    throw new Error(`port ${port} was not busy`);
  }

  test("findPortHolder names the listener's pid and command", () => {
    expect(port).toBeGreaterThan(0);
    expect(findPortHolder("127.0.0.1", port)).toEqual({ pid: holder!.pid, command: "python3" });
    expect(findPortHolder("0.0.0.0", port)).toEqual({ pid: holder!.pid, command: "python3" }); // a wildcard collides too
    expect(findPortHolder("127.0.0.2", port)).toBeNull(); // another address, not held
  });

  test("the failure names the field, the address, the cause and the holder", () => {
    const address = `127.0.0.1:${port}`;
    const config = { proxy: { listen: ["127.0.0.1:1", address] }, metrics: { listen: null } } as any;
    const e = explainListenFailure(bindError(address), config);
    expect(e).toBeInstanceOf(ListenAddressError);
    expect((e as Error).message).toBe(`proxy.listen[1] ${address}: address already in use (held by pid ${holder!.pid} python3)`);
    expect((e as ListenAddressError).code).toBe("EADDRINUSE");
    expect((e as Error).cause).toBeInstanceOf(MetricsListenError);
  });

  test("metrics.listen, written differently in the config, is still found", () => {
    const config = { proxy: { listen: ["127.0.0.1:1"] }, metrics: { listen: `127.0.0.1:${port}` } } as any;
    expect((explainListenFailure(bindError(`127.0.0.1:${port}`), config) as Error).message).toStartWith(`metrics.listen 127.0.0.1:${port}: address already in use`);
  });

  test("without a visible holder (another user's process under ProtectProc=invisible), no holder is named", () => {
    const config = { proxy: { listen: [`127.0.0.1:${port}`] }, metrics: { listen: null } } as any;
    // A procfs it cannot read stands in for the processes an unprivileged daemon cannot see.
    const e = explainListenFailure(bindError(`127.0.0.1:${port}`), config, { proc: "/nonexistent" });
    expect((e as Error).message).toBe(`proxy.listen[0] 127.0.0.1:${port}: address already in use`);
  });

  test.each([
    ["EADDRNOTAVAIL", "192.0.2.1:1080", "proxy.listen[0] 192.0.2.1:1080: address not available (no interface on this host has it)"],
    ["EACCES", "192.0.2.1:80", "192.0.2.1:80: permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)"],
  ])("%s is said in words", (code, address, message) => {
    const cause = Object.assign(new Error(code), { code });
    const config = { proxy: { listen: ["192.0.2.1:1080"] }, metrics: { listen: null } } as any;
    expect((explainListenFailure(new MetricsListenError(address, { cause }), config) as Error).message).toBe(message);
  });

  test("any other error comes back as it is", () => {
    const other = new Error("nft: syntax error");
    expect(explainListenFailure(other, { proxy: { listen: [] }, metrics: { listen: null } } as any)).toBe(other);
  });
});
