/**
 * lib/probe/noise.ts against an independent implementation (wg_reference.py: Python's hashlib and
 * hmac, and the `cryptography` package), byte for byte: the primitives, a whole initiation with fixed
 * inputs, and a response made by the Python responder from our initiation, which we must accept.
 * WireGuard publishes no handshake test vectors; the one published constant pinned here is the
 * initial chaining key, HASH("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"), which several
 * implementations print as a known value. That a real WireGuard answers our initiation is
 * test/probe/probe.netns.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { buildInitiation, CONSTRUCTION, hash, hmacBlake2s, kdf, LABEL_MAC1, mac, MessageLength, tai64n, verifyReply } from "../../lib/probe/noise.ts";

const PY = "/usr/bin/python3";
const SCRIPT = join(import.meta.dir, "wg_reference.py");
const haveRef = Bun.spawnSync([PY, "-c", "import cryptography.hazmat.primitives.ciphers.aead"]).exitCode === 0;
const skip = haveRef ? null : "needs /usr/bin/python3 with the cryptography package (Debian: python3-cryptography)";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const key = (seed: number) => Uint8Array.from({ length: 32 }, (_, i) => (seed * 31 + i * 7) & 0xff);

function reference<T>(mode: string, input: unknown): T {
  const r = Bun.spawnSync([PY, SCRIPT, mode], { stdin: new TextEncoder().encode(JSON.stringify(input)) });
  if (r.exitCode !== 0) throw new Error(`wg_reference.py ${mode}: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString()) as T;
}

describe("noise primitives", () => {
  test("the initial chaining key is the published value", () => {
    expect(hex(hash(new TextEncoder().encode(CONSTRUCTION)))).toBe("60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
  });

  test("TAI64N: 2^62 + 10 + seconds, big-endian, then nanoseconds", () => {
    expect(hex(tai64n(1_700_000_000_123))).toBe("400000006553f10a" + "0754d4c0");
    expect(hex(tai64n(0))).toBe("400000000000000a00000000");
  });

  test.skipIf(skip !== null).each(["00", "6d616331", hex(key(1)), hex(key(2)) + hex(key(3)) + "ff"])("HASH, HMAC, mac1 key, MAC and KDF of %s match Python's hashlib", (data) => {
    const d = unhex(data);
    const want = reference<{ hash: string; hmac: string; mac1key: string; mac: string; kdf3: string[] }>("primitives", { data });
    expect(hex(hash(d))).toBe(want.hash);
    expect(hex(hmacBlake2s(d, Uint8Array.of(1)))).toBe(want.hmac);
    expect(hex(hash(new TextEncoder().encode(LABEL_MAC1), d))).toBe(want.mac1key);
    expect(hex(mac(d.subarray(0, 32).length ? d.subarray(0, 32) : new TextEncoder().encode("k"), d))).toBe(want.mac);
    expect(kdf(hash(new TextEncoder().encode(CONSTRUCTION)), d, 3).map(hex)).toEqual(want.kdf3);
  });
});

describe.skipIf(skip !== null)("the handshake against the Python reference", () => {
  const gateway = key(10);
  const exit = key(20);
  const input = { staticPrivate: gateway, responderPublic: x25519.getPublicKey(exit), ephemeralPrivate: key(30), senderIndex: 0xdeadbeef, unixMs: 1_700_000_000_123 };

  test("the initiation is byte for byte the reference's", () => {
    const ours = buildInitiation(input);
    expect(ours.message.length).toBe(MessageLength.initiation);
    const want = reference<{ message: string }>("initiation", { ...input, staticPrivate: hex(gateway), responderPublic: hex(input.responderPublic), ephemeralPrivate: hex(input.ephemeralPrivate) });
    expect(hex(ours.message)).toBe(want.message);
  });

  const respond = (init: Uint8Array, psk = new Uint8Array(32)) =>
    reference<{ initiatorPublic: string; timestamp: string; response: string }>("respond", { responderPrivate: hex(exit), responderEphemeral: hex(key(40)), responderIndex: 77, initiation: hex(init), psk: hex(psk) });

  test("the Python responder decrypts our static key and timestamp; we verify its response", () => {
    const init = buildInitiation(input);
    const r = respond(init.message);
    expect(r.initiatorPublic).toBe(hex(x25519.getPublicKey(gateway)));
    expect(r.timestamp).toBe(hex(tai64n(input.unixMs)));
    expect(verifyReply(init, unhex(r.response))).toEqual({ kind: "response", responderIndex: 77 });
  });

  test("a response under another preshared key, or to another initiation, or tampered, is invalid", () => {
    const init = buildInitiation(input);
    const psk = key(50);
    const withPsk = unhex(respond(init.message, psk).response);
    expect(verifyReply(init, withPsk, psk).kind).toBe("response");
    expect(verifyReply(init, withPsk)).toEqual({ kind: "invalid", reason: "the response does not decrypt (another key pair, or another preshared key)" });

    const other = buildInitiation({ ...input, ephemeralPrivate: key(31) }); // same index, another ephemeral
    expect(verifyReply(other, unhex(respond(init.message).response)).kind).toBe("invalid");

    const good = unhex(respond(init.message).response);
    const rows: [string, Uint8Array, RegExp][] = [
      ["truncated", good.subarray(0, 91), /92 bytes, not 91/],
      ["oversized", new Uint8Array([...good, 0]), /92 bytes, not 93/],
      ["too short", good.subarray(0, 3), /too short/],
      ["another index", withByte(good, 8, good[8]! ^ 1), /another session index/],
      ["reserved set", withByte(good, 1, 1), /reserved/],
      ["a flipped ciphertext bit", withByte(good, 50, good[50]! ^ 0x80), /mac1 does not match/],
      ["type 4", withByte(good, 0, 4), /type 4 is not a handshake response/],
    ];
    for (const [name, packet, re] of rows) {
      const v = verifyReply(init, packet);
      expect({ name, kind: v.kind }).toEqual({ name, kind: "invalid" });
      expect((v as { reason: string }).reason).toMatch(re);
    }
  });
});

function withByte(b: Uint8Array, at: number, value: number): Uint8Array {
  const c = new Uint8Array(b);
  c[at] = value;
  return c;
}
