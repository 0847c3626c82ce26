/**
 * WireGuard keys: Curve25519 (X25519) private/public keys and preshared keys, as the base64 text
 * that `wg genkey`, `wg pubkey` and `wg genpsk` read and write.
 *
 * Does not read or write files; see lib/cli for that. Private keys are clamped exactly as `wg genkey`
 * clamps them (RFC 7748 §5), so a key made here prints the same text `wg` would print for it.
 */
import { x25519 } from "@noble/curves/ed25519.js";

/** Length of every WireGuard key in bytes. */
export const KEY_BYTES = 32;

/** A key text that is not base64 of exactly 32 bytes. */
export class KeyFormatError extends Error {
  override name = "KeyFormatError";
}

/** Encodes 32 key bytes as standard base64 (44 characters, one `=`). */
export function encodeKey(bytes: Uint8Array): string {
  if (bytes.length !== KEY_BYTES) throw new KeyFormatError(`a key is ${KEY_BYTES} bytes, got ${bytes.length}`);
  return Buffer.from(bytes).toString("base64");
}

/**
 * Decodes a base64 key. Surrounding whitespace (a trailing newline from a file) is ignored; anything
 * else that is not canonical base64 of 32 bytes throws {@link KeyFormatError}.
 */
export function decodeKey(text: string): Uint8Array {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t)) {
    throw new KeyFormatError("a WireGuard key is 44 characters of base64 ending in \"=\" (32 bytes)");
  }
  const bytes = new Uint8Array(Buffer.from(t, "base64"));
  if (bytes.length !== KEY_BYTES || Buffer.from(bytes).toString("base64") !== t) {
    throw new KeyFormatError("a WireGuard key is base64 of exactly 32 bytes");
  }
  return bytes;
}

/** True when `text` is a well-formed key (see {@link decodeKey}). */
export function isKey(text: string): boolean {
  try {
    decodeKey(text);
    return true;
  } catch (e) {
    if (e instanceof KeyFormatError) return false;
    throw e;
  }
}

/** Clamps a scalar in place as RFC 7748 §5 and `wg genkey` do, and returns it. */
export function clamp(bytes: Uint8Array): Uint8Array {
  bytes[0]! &= 248;
  bytes[31] = (bytes[31]! & 127) | 64;
  return bytes;
}

/** Makes a new private key from the system CSPRNG, clamped like `wg genkey`. */
export function generatePrivateKey(): string {
  return encodeKey(clamp(crypto.getRandomValues(new Uint8Array(KEY_BYTES))));
}

/** Makes a new preshared key: 32 random bytes, like `wg genpsk` (no clamping). */
export function generatePresharedKey(): string {
  return encodeKey(crypto.getRandomValues(new Uint8Array(KEY_BYTES)));
}

/** Derives the public key for a private key, like `wg pubkey`. */
export function publicKeyOf(privateKey: string): string {
  return encodeKey(x25519.getPublicKey(decodeKey(privateKey)));
}

/** The X25519 function itself, for the RFC 7748 test vectors. */
export function x25519Scalar(scalar: Uint8Array, point: Uint8Array): Uint8Array {
  return x25519.getSharedSecret(scalar, point);
}
