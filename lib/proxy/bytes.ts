/**
 * Byte-buffer helpers shared by the relay and the protocol handshakes.
 *
 * Does not pool or grow buffers in place: every caller keeps at most one pending buffer per
 * direction, so a copy on the rare partial write or split read is cheaper than bookkeeping.
 */

/** `a` followed by `b`, in a new array. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
