"""Code and PIN hashes and firmware-offer MACs: HMAC-SHA256 from micropython-lib's `hmac`, constant-time compare.

micropython-lib's hmac works over the port's built-in `hashlib.sha256`, whose objects have no `copy()`: each
HMAC object gives one digest, so every call here makes a fresh one.
"""

import binascii
import hashlib
import hmac


def hmac_sha256(key, msg):
    """Return the 32-byte HMAC-SHA256 of msg under key (RFC 2104)."""
    return hmac.new(key, msg, hashlib.sha256).digest()


class Hmac:
    """HMAC-SHA256 under one fixed key (the device secret)."""

    def __init__(self, key):
        self.key = bytes(key)

    def digest(self, msg):
        return hmac.new(self.key, msg, hashlib.sha256).digest()


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
