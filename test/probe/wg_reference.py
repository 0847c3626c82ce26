"""An independent WireGuard handshake, for pinning lib/probe/noise.ts: Python's hashlib.blake2s and
hmac, and the `cryptography` package's X25519 and ChaCha20-Poly1305 (Debian: python3-cryptography),
written from wireguard.com/protocol without looking at the TypeScript.

Usage (JSON on stdin, JSON on stdout; byte strings are hex):
  primitives    {"data"}                          -> {"hash", "hmac", "mac1key", "mac", "kdf3"}
  initiation    {"staticPrivate", "responderPublic", "ephemeralPrivate", "senderIndex", "unixMs"}
                                                  -> {"message"}
  respond       {"responderPrivate", "responderEphemeral", "responderIndex", "initiation", "psk"}
                -> {"initiatorPublic", "timestamp", "response"}   (the responder's side)
"""
import hashlib, hmac, json, struct, sys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"

def HASH(x): return hashlib.blake2s(x).digest()
def HMAC(k, x): return hmac.new(k, x, hashlib.blake2s).digest()
def MAC(k, x): return hashlib.blake2s(x, key=k, digest_size=16).digest()
def KDF(ck, x, n):
    t0 = HMAC(ck, x); out = []; prev = b""
    for i in range(1, n + 1):
        prev = HMAC(t0, prev + bytes([i])); out.append(prev)
    return out
def raw(pub): return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
def priv(b): return X25519PrivateKey.from_private_bytes(b)
def pubof(b): return raw(priv(b).public_key())
def DH(p, pub): return priv(p).exchange(X25519PublicKey.from_public_bytes(pub))
def AEAD(k, n, pt, ad): return ChaCha20Poly1305(k).encrypt(b"\0\0\0\0" + struct.pack("<Q", n), pt, ad)
def OPEN(k, n, ct, ad): return ChaCha20Poly1305(k).decrypt(b"\0\0\0\0" + struct.pack("<Q", n), ct, ad)
def TAI64N(ms):
    s = ms // 1000
    return struct.pack(">QI", 0x400000000000000A + s, (ms - s * 1000) * 1000000)

def start(rs):
    ck = HASH(CONSTRUCTION)
    return ck, HASH(HASH(ck + IDENTIFIER) + rs)

def initiation(a):
    sp, rs, ep = (bytes.fromhex(a[k]) for k in ("staticPrivate", "responderPublic", "ephemeralPrivate"))
    ck, h = start(rs)
    e = pubof(ep)
    h = HASH(h + e); ck, = KDF(ck, e, 1)
    ck, k = KDF(ck, DH(ep, rs), 2)
    es = AEAD(k, 0, pubof(sp), h); h = HASH(h + es)
    ck, k = KDF(ck, DH(sp, rs), 2)
    et = AEAD(k, 0, TAI64N(a["unixMs"]), h)
    msg = bytes([1, 0, 0, 0]) + struct.pack("<I", a["senderIndex"]) + e + es + et
    msg += MAC(HASH(LABEL_MAC1 + rs), msg)
    return {"message": (msg + bytes(16)).hex()}

def respond(a):
    rp, re, m, psk = (bytes.fromhex(a[k]) for k in ("responderPrivate", "responderEphemeral", "initiation", "psk"))
    rs = pubof(rp)
    assert len(m) == 148 and m[0] == 1, "not an initiation"
    assert hmac.compare_digest(MAC(HASH(LABEL_MAC1 + rs), m[:116]), m[116:132]), "bad mac1"
    ck, h = start(rs)
    e = m[8:40]
    h = HASH(h + e); ck, = KDF(ck, e, 1)
    ck, k = KDF(ck, DH(rp, e), 2)
    spub = OPEN(k, 0, m[40:88], h); h = HASH(h + m[40:88])
    ck, k = KDF(ck, DH(rp, spub), 2)
    ts = OPEN(k, 0, m[88:116], h); h = HASH(h + m[88:116])
    sender = m[4:8]
    er = pubof(re)
    h = HASH(h + er); ck, = KDF(ck, er, 1)
    ck, = KDF(ck, DH(re, e), 1)
    ck, = KDF(ck, DH(re, spub), 1)
    ck, tau, k = KDF(ck, psk, 3)
    h = HASH(h + tau)
    empty = AEAD(k, 0, b"", h)
    msg = bytes([2, 0, 0, 0]) + struct.pack("<I", a["responderIndex"]) + sender + er + empty
    msg += MAC(HASH(LABEL_MAC1 + spub), msg)
    return {"initiatorPublic": spub.hex(), "timestamp": ts.hex(), "response": (msg + bytes(16)).hex()}

def primitives(a):
    d = bytes.fromhex(a["data"])
    return {"hash": HASH(d).hex(), "hmac": HMAC(d, b"\x01").hex(), "mac1key": HASH(LABEL_MAC1 + d).hex(),
            "mac": MAC(d[:32] or b"k", d).hex(), "kdf3": [x.hex() for x in KDF(HASH(CONSTRUCTION), d, 3)]}

print(json.dumps({"initiation": initiation, "respond": respond, "primitives": primitives}[sys.argv[1]](json.load(sys.stdin))))
