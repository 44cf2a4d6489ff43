"""HMAC-SHA256 over hashlib.sha256 (MicroPython has no hmac module) and a constant-time compare."""

import hashlib
import binascii

_BLOCK = 64


def hmac_sha256(key, msg):
    """Return the 32-byte HMAC-SHA256 of msg under key (RFC 2104)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (_BLOCK - len(key))
    ipad = bytes([b ^ 0x36 for b in key])
    opad = bytes([b ^ 0x5C for b in key])
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


class Hmac:
    """HMAC-SHA256 under one fixed key, with the padded keys computed once (the keypad path is hot)."""

    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key + b"\x00" * (_BLOCK - len(key))
        self.ipad = bytes([b ^ 0x36 for b in key])
        self.opad = bytes([b ^ 0x5C for b in key])

    def digest(self, msg):
        inner = hashlib.sha256(self.ipad)
        inner.update(msg)
        outer = hashlib.sha256(self.opad)
        outer.update(inner.digest())
        return outer.digest()


def hmac_hex(key, msg):
    """Return the lowercase hex HMAC-SHA256 of msg under key."""
    return binascii.hexlify(hmac_sha256(key, msg)).decode()


def code_hash(secret, code):
    """Return h for a pickup code as defined in protocol section 4."""
    if isinstance(code, str):
        code = code.encode()
    return hmac_hex(secret, b"pickup:" + code)


def pin_hash(secret, pin):
    """Return h for a courier PIN: HMAC over "courier:" + PIN, so a PIN never matches a pickup code."""
    if isinstance(pin, str):
        pin = pin.encode()
    return hmac_hex(secret, b"courier:" + pin)


def ct_equal(a, b):
    """Compare two str/bytes in time independent of where they differ."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    diff = len(a) ^ len(b)
    n = len(a) if len(a) < len(b) else len(b)
    for i in range(n):
        diff |= a[i] ^ b[i]
    # walk the longer tail too so timing does not reveal the common prefix length
    for i in range(n, max(len(a), len(b))):
        diff |= 1
    return diff == 0
