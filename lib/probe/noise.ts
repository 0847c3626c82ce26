/**
 * WireGuard's handshake messages, as the protocol page and the whitepaper (§5.4) define them:
 * building a handshake initiation (type 1) as the initiator, and decoding and verifying the
 * responder's handshake response (type 2) or cookie reply (type 3). Pure: bytes in, bytes out; the
 * ephemeral key, sender index and clock are inputs, so the messages are reproducible in tests.
 *
 * What it does not do: transport data, rekeying, timers, sending the cookie back (mac2), or
 * acting as a responder. It exists so that `egressd check --probe` can ask an exit "do you answer
 * this key?" without a WireGuard interface.
 */
import { chacha20poly1305, xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { concatBytes as concat } from "@noble/hashes/utils.js";

/** Protocol constants (wireguard.com/protocol, "First Message: Initiator to Responder"). */
export const CONSTRUCTION = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
export const IDENTIFIER = "WireGuard v1 zx2c4 Jason@zx2c4.com";
export const LABEL_MAC1 = "mac1----";
export const LABEL_COOKIE = "cookie--";

/** Message types, the first byte of every WireGuard packet. */
export const MessageType = { initiation: 1, response: 2, cookieReply: 3, transport: 4 } as const;

/** Message lengths in bytes. */
export const MessageLength = { initiation: 148, response: 92, cookieReply: 64 } as const;

const enc = new TextEncoder();

/** HASH(x): BLAKE2s-256. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  return blake2s(concat(...parts));
}

/** HMAC(key, x) over BLAKE2s, as the Noise KDF uses it. */
export function hmacBlake2s(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(blake2s, key, data);
}

/** MAC(key, x): keyed BLAKE2s with a 16-byte output. */
export function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return blake2s(data, { key, dkLen: 16 });
}

/**
 * Noise's HKDF with n outputs: `t0 = HMAC(ck, input)`, `t1 = HMAC(t0, 0x1)`,
 * `t2 = HMAC(t0, t1 || 0x2)`, `t3 = HMAC(t0, t2 || 0x3)`.
 */
export function kdf(ck: Uint8Array, input: Uint8Array, n: 1 | 2 | 3): Uint8Array[] {
  const t0 = hmacBlake2s(ck, input);
  const out: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(0);
  for (let i = 1; i <= n; i++) {
    prev = hmacBlake2s(t0, concat(prev, Uint8Array.of(i)));
    out.push(prev);
  }
  return out;
}

/** The AEAD nonce: 32 zero bits, then the 64-bit little-endian counter. */
function nonce(counter: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(counter), true);
  return n;
}

function aead(key: Uint8Array, counter: number, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  return chacha20poly1305(key, nonce(counter), ad).encrypt(plaintext);
}

/** TAI64N: 8 bytes of TAI64 seconds (2^62 + Unix seconds, big-endian), then 4 bytes of nanoseconds. */
export function tai64n(unixMs: number): Uint8Array {
  const out = new Uint8Array(12);
  const v = new DataView(out.buffer);
  const seconds = Math.floor(unixMs / 1000);
  // wireguard-go adds 10 s to 2^62 (TAI - UTC in 1972); what matters to the responder is only that
  // each initiation's stamp is greater than the last one it accepted, so it does the same.
  v.setBigUint64(0, 0x4000000000000000n + 10n + BigInt(seconds), false);
  v.setUint32(8, Math.floor((unixMs - seconds * 1000) * 1e6), false);
  return out;
}

/** What the initiator needs to build an initiation. */
export interface InitiationInput {
  /** Our (the gateway's) static private key, 32 bytes. */
  staticPrivate: Uint8Array;
  /** The responder's (the exit's) static public key. */
  responderPublic: Uint8Array;
  /** Ephemeral private key, 32 bytes: fresh random bytes in real use. */
  ephemeralPrivate: Uint8Array;
  /** Our session index, as the responder will echo it back. */
  senderIndex: number;
  /** Wall clock for the TAI64N stamp, ms since the epoch. */
  unixMs: number;
}

/** The initiation and the state needed to verify the response to it. */
export interface Initiation {
  /** The 148 bytes to send. */
  readonly message: Uint8Array;
  /** Noise state after the initiation: chaining key and hash. */
  readonly chainingKey: Uint8Array;
  readonly hash: Uint8Array;
  readonly ephemeralPrivate: Uint8Array;
  readonly staticPrivate: Uint8Array;
  readonly senderIndex: number;
  /** mac1 of the initiation: the associated data of a cookie reply. */
  readonly mac1: Uint8Array;
  readonly responderPublic: Uint8Array;
}

/**
 * Builds a handshake initiation. Pure.
 *
 * ```
 * +------+----------+--------+-----------+--------------+-----------------+------+------+
 * | type | reserved | sender | ephemeral | static (enc) | timestamp (enc) | mac1 | mac2 |
 * |  1   |    3     |   4    |    32     |    32+16     |      12+16      |  16  |  16  |
 * +------+----------+--------+-----------+--------------+-----------------+------+------+
 * ```
 * mac2 stays zero: it is only set after the responder sent a cookie (under load).
 */
export function buildInitiation(input: InitiationInput): Initiation {
  const rs = input.responderPublic;
  let ck = hash(enc.encode(CONSTRUCTION));
  let h = hash(hash(ck, enc.encode(IDENTIFIER)), rs);
  const ephemeralPublic = x25519.getPublicKey(input.ephemeralPrivate);
  h = hash(h, ephemeralPublic);
  [ck] = kdf(ck, ephemeralPublic, 1) as [Uint8Array];
  let key: Uint8Array;
  [ck, key] = kdf(ck, x25519.getSharedSecret(input.ephemeralPrivate, rs), 2) as [Uint8Array, Uint8Array];
  const encryptedStatic = aead(key, 0, x25519.getPublicKey(input.staticPrivate), h);
  h = hash(h, encryptedStatic);
  [ck, key] = kdf(ck, x25519.getSharedSecret(input.staticPrivate, rs), 2) as [Uint8Array, Uint8Array];
  const encryptedTimestamp = aead(key, 0, tai64n(input.unixMs), h);
  h = hash(h, encryptedTimestamp);

  const message = new Uint8Array(MessageLength.initiation);
  const view = new DataView(message.buffer);
  message[0] = MessageType.initiation;
  view.setUint32(4, input.senderIndex >>> 0, true);
  message.set(ephemeralPublic, 8);
  message.set(encryptedStatic, 40);
  message.set(encryptedTimestamp, 88);
  const mac1 = mac(hash(enc.encode(LABEL_MAC1), rs), message.subarray(0, 116));
  message.set(mac1, 116);
  return { message, chainingKey: ck, hash: h, ephemeralPrivate: input.ephemeralPrivate, staticPrivate: input.staticPrivate, senderIndex: input.senderIndex >>> 0, mac1, responderPublic: rs };
}

/** What came back for an initiation. */
export type ReplyVerdict =
  /** A handshake response that decrypts: the exit knows our key and we know its key. */
  | { kind: "response"; responderIndex: number }
  /** A cookie reply: the exit is under load and wants mac2; mac1 (its public key) was right. */
  | { kind: "cookie" }
  /** Not an answer to this initiation (another type, length or index, or it does not verify). */
  | { kind: "invalid"; reason: string };

/**
 * Decodes and verifies a reply to `init`. Pure.
 *
 * Response (type 2), 92 bytes:
 * ```
 * +------+----------+--------+----------+-----------+-------------+------+------+
 * | type | reserved | sender | receiver | ephemeral | empty (enc) | mac1 | mac2 |
 * |  1   |    3     |   4    |    4     |    32     |    0+16     |  16  |  16  |
 * +------+----------+--------+----------+-----------+-------------+------+------+
 * ```
 * Cookie reply (type 3), 64 bytes: type, reserved[3], receiver[4], nonce[24], cookie (enc)[16+16].
 */
export function verifyReply(init: Initiation, packet: Uint8Array, presharedKey: Uint8Array = new Uint8Array(32)): ReplyVerdict {
  if (packet.length < 4) return { kind: "invalid", reason: `${packet.length} bytes is too short for a WireGuard message` };
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const type = packet[0]!;
  if (packet[1] !== 0 || packet[2] !== 0 || packet[3] !== 0) return { kind: "invalid", reason: "reserved bytes are not zero" };
  if (type === MessageType.cookieReply) {
    if (packet.length !== MessageLength.cookieReply) return { kind: "invalid", reason: `a cookie reply has ${MessageLength.cookieReply} bytes, not ${packet.length}` };
    if (view.getUint32(4, true) !== init.senderIndex) return { kind: "invalid", reason: "the cookie reply is for another session index" };
    const key = hash(enc.encode(LABEL_COOKIE), init.responderPublic);
    try {
      xchacha20poly1305(key, packet.subarray(8, 32), init.mac1).decrypt(packet.subarray(32, 64));
    } catch {
      return { kind: "invalid", reason: "the cookie reply does not decrypt with the exit's public key" };
    }
    return { kind: "cookie" };
  }
  if (type !== MessageType.response) return { kind: "invalid", reason: `message type ${type} is not a handshake response` };
  if (packet.length !== MessageLength.response) return { kind: "invalid", reason: `a handshake response has ${MessageLength.response} bytes, not ${packet.length}` };
  if (view.getUint32(8, true) !== init.senderIndex) return { kind: "invalid", reason: "the response is for another session index" };
  const ourPublic = x25519.getPublicKey(init.staticPrivate);
  if (!equal(mac(hash(enc.encode(LABEL_MAC1), ourPublic), packet.subarray(0, 60)), packet.subarray(60, 76))) {
    return { kind: "invalid", reason: "mac1 does not match our public key" };
  }
  const ephemeral = packet.subarray(12, 44);
  let h = hash(init.hash, ephemeral);
  let [ck] = kdf(init.chainingKey, ephemeral, 1) as [Uint8Array];
  let ee: Uint8Array, se: Uint8Array;
  try {
    ee = x25519.getSharedSecret(init.ephemeralPrivate, ephemeral);
    se = x25519.getSharedSecret(init.staticPrivate, ephemeral);
  } catch {
    return { kind: "invalid", reason: "the response's ephemeral key is not a valid point" };
  }
  [ck] = kdf(ck!, ee, 1) as [Uint8Array];
  [ck] = kdf(ck!, se, 1) as [Uint8Array];
  const [, tau, key] = kdf(ck!, presharedKey, 3) as [Uint8Array, Uint8Array, Uint8Array];
  h = hash(h, tau);
  try {
    chacha20poly1305(key, nonce(0), h).decrypt(packet.subarray(44, 60));
  } catch {
    return { kind: "invalid", reason: "the response does not decrypt (another key pair, or another preshared key)" };
  }
  return { kind: "response", responderIndex: view.getUint32(4, true) };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
