/**
 * WireGuard keys: the X25519 function against RFC 7748's vectors, and key text against the real
 * `wg` tool (wireguard-tools) with random keys in both directions.
 */
import { describe, expect, test } from "bun:test";
import {
  clamp,
  decodeKey,
  encodeKey,
  generatePresharedKey,
  generatePrivateKey,
  isKey,
  KeyFormatError,
  publicKeyOf,
  x25519Scalar,
} from "../../lib/keys/keys.ts";
import { have, wgAcceptsKey, wgGen, wgPubkey } from "../cli/spawn.ts";

const hex = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const b64 = (h: string) => Buffer.from(h, "hex").toString("base64");

describe("RFC 7748 §5.2 X25519 test vectors", () => {
  test.each([
    {
      scalar: "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
      u: "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
      out: "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    },
    {
      // u has its top bit set: an implementation must mask it (RFC 7748 §5).
      scalar: "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
      u: "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
      out: "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    },
  ])("X25519($scalar, $u)", ({ scalar, u, out }) => {
    expect(toHex(x25519Scalar(hex(scalar), hex(u)))).toBe(out);
  });

  // k = u = 9; then repeatedly k, u = X25519(k, u), k.
  function iterate(n: number): string {
    let k: Uint8Array = hex("09" + "00".repeat(31));
    let u = k;
    for (let i = 0; i < n; i++) [k, u] = [x25519Scalar(k, u), k];
    return toHex(k);
  }

  test("after 1 iteration", () => {
    expect(iterate(1)).toBe("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
  });

  test("after 1,000 iterations", () => {
    expect(iterate(1000)).toBe("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
  });
});

describe("RFC 7748 §6.1 Diffie-Hellman", () => {
  const alice = {
    private: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    public: "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
  };
  const bob = {
    private: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    public: "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
  };
  const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

  test.each([
    ["Alice", alice],
    ["Bob", bob],
  ])("%s: private -> public, as base64 key text", (_name, party) => {
    expect(publicKeyOf(b64(party.private))).toBe(b64(party.public));
  });

  test("both sides derive the shared secret K", () => {
    expect(toHex(x25519Scalar(hex(alice.private), hex(bob.public)))).toBe(shared);
    expect(toHex(x25519Scalar(hex(bob.private), hex(alice.public)))).toBe(shared);
  });
});

describe("clamp", () => {
  test("clears the low 3 bits and the top bit, sets bit 254 (RFC 7748 §5)", () => {
    expect(toHex(clamp(new Uint8Array(32).fill(0xff)))).toBe("f8" + "ff".repeat(30) + "7f");
    expect(toHex(clamp(new Uint8Array(32)))).toBe("00".repeat(31) + "40");
  });

  test("generatePrivateKey is clamped, in every one of 200 keys", () => {
    for (let i = 0; i < 200; i++) {
      const b = decodeKey(generatePrivateKey());
      expect([b[0]! & 7, b[31]! & 0x80, b[31]! & 0x40]).toEqual([0, 0, 0x40]);
    }
  });

  test("generatePresharedKey is not clamped (wg genpsk is 32 plain random bytes)", () => {
    // A clamped-looking byte 0 has probability 1/8; 64 of them in a row is 2^-192.
    const low = Array.from({ length: 64 }, () => decodeKey(generatePresharedKey())[0]! & 7);
    expect(low.some((b) => b !== 0)).toBe(true);
  });
});

describe.skipIf(!have("wg"))("compatibility with wg (wireguard-tools)", () => {
  const N = 50;

  test(`egressd genkey -> wg pubkey equals egressd pubkey (${N} random keys)`, () => {
    for (let i = 0; i < N; i++) {
      const key = generatePrivateKey();
      expect(publicKeyOf(key)).toBe(wgPubkey(key));
    }
  });

  test(`wg genkey -> egressd pubkey equals wg pubkey (${N} random keys)`, () => {
    for (let i = 0; i < N; i++) {
      const key = wgGen("genkey");
      expect(publicKeyOf(key)).toBe(wgPubkey(key));
    }
  });

  test("wg genkey clamps the way egressd genkey does", () => {
    for (let i = 0; i < 20; i++) {
      const b = decodeKey(wgGen("genkey"));
      expect([b[0]! & 7, b[31]! & 0x80, b[31]! & 0x40]).toEqual([0, 0, 0x40]);
    }
  });

  test(`unclamped private keys: egressd pubkey clamps as wg pubkey does (${N} keys)`, () => {
    for (let i = 0; i < N; i++) {
      const raw = crypto.getRandomValues(new Uint8Array(32));
      raw[0]! |= 7; // every bit that clamping changes is set the "wrong" way
      raw[31] = (raw[31]! | 0x80) & ~0x40;
      const key = encodeKey(raw);
      expect(publicKeyOf(key)).toBe(wgPubkey(key));
      expect(publicKeyOf(key)).toBe(publicKeyOf(encodeKey(clamp(raw.slice()))));
    }
  });

  test("genpsk: 44 characters of base64 of 32 bytes, which wg accepts as a key", () => {
    for (let i = 0; i < 20; i++) {
      const psk = generatePresharedKey();
      expect(psk).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      expect(decodeKey(psk).length).toBe(32);
      expect(wgAcceptsKey(psk + "\n")).toBe(true);
    }
  });

  test("wg genpsk output is a key egressd accepts", () => {
    for (let i = 0; i < 10; i++) expect(isKey(wgGen("genpsk"))).toBe(true);
  });
});

describe("decodeKey", () => {
  const valid = b64("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  const A42 = "A".repeat(42);

  test.each([
    ["a key", valid],
    ["a key with the newline a key file ends in", valid + "\n"],
    ["a key with CRLF", valid + "\r\n"],
    ["all zeroes", A42 + "A="],
  ])("accepts %s", (_name, text) => {
    expect(decodeKey(text).length).toBe(32);
    expect(isKey(text)).toBe(true);
  });

  // Each row is also given to `wg pubkey`, which must reject it too: egressd is no stricter than wg.
  test.each([
    ["empty", ""],
    ["43 characters, no '='", valid.slice(0, 43)],
    ["44 characters, missing '='", valid.slice(0, 43) + "A"],
    ["45 characters", valid + "="],
    ["33 bytes (44 characters of base64 with no padding)", Buffer.alloc(33, 7).toString("base64")],
    ["31 bytes (ends in '==')", Buffer.alloc(31, 7).toString("base64")],
    ["'-' (base64url) instead of '+'", "-" + valid.slice(1)],
    ["'_' (base64url) instead of '/'", "_" + valid.slice(1)],
    ["a '!'", "!" + valid.slice(1)],
    ["a space inside", valid.slice(0, 20) + " " + valid.slice(21)],
    ["a non-ASCII letter", "é" + valid.slice(1)],
    // 32 bytes use 4 bits of the 43rd character; "B" sets one of the 2 padding bits after them.
    ["a last character with nonzero padding bits (B)", A42 + "B="],
    ["a last character with nonzero padding bits (/)", A42 + "/="],
    ["the hex of a key", "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"],
  ])("rejects %s", (_name, text) => {
    expect(() => decodeKey(text)).toThrow(KeyFormatError);
    expect(isKey(text)).toBe(false);
    if (have("wg")) expect(wgAcceptsKey(text + "\n")).toBe(false);
  });

  test("the canonical neighbour of the padding-bits row is accepted, so the row tests padding only", () => {
    expect(isKey(A42 + "E=")).toBe(true);
  });

  test("round-trips bytes through encodeKey", () => {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    expect(decodeKey(encodeKey(bytes))).toEqual(bytes);
  });

  test.each([0, 31, 33, 64])("encodeKey refuses %d bytes", (n) => {
    expect(() => encodeKey(new Uint8Array(n))).toThrow(KeyFormatError);
  });
});
