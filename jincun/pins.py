"""The one PIN rule of the station terminal: what a PIN is, how it is stored and how it is checked.

A terminal PIN is 6 to 12 digits, stored as PBKDF2-SHA256 (`pbkdf2_sha256$iterations$salt$hash`). The cloud
hashes a courier's or station agent's PIN with `hash_pin` when the county sets it, and the station checks
it with `verify_pin` offline from its cache; PINs set at the station (station.json) are hashed the same way.
Hashes the cloud made with argon2id before this rule are still read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PIN_ITERATIONS = 100_000
PIN_MIN_DIGITS = 6
PIN_MAX_DIGITS = 12
PIN_RE = rf"^[0-9]{{{PIN_MIN_DIGITS},{PIN_MAX_DIGITS}}}$"
# what a stored PIN looks like: PBKDF2 as made here, or argon2id from an older cloud
PIN_HASH_RE = r"^(pbkdf2_sha256\$[0-9]+\$[0-9a-f]+\$[0-9a-f]{64}|\$argon2id\$[!-~]{20,200})$"

__all__ = ["PIN_HASH_RE", "PIN_ITERATIONS", "PIN_MAX_DIGITS", "PIN_MIN_DIGITS", "PIN_RE", "hash_pin", "is_pin",
           "verify_pin"]


def is_pin(pin: str) -> bool:
    """True for a well-formed terminal PIN."""
    return re.fullmatch(PIN_RE, pin) is not None


def hash_pin(pin: str, *, salt: bytes | None = None, iterations: int = PIN_ITERATIONS) -> str:
    """The stored form of a terminal PIN: pbkdf2_sha256$iterations$salt$hash."""
    if not is_pin(pin):
        raise ValueError(f"a terminal PIN is {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits")
    salt = salt or secrets.token_bytes(16)
    dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${dk.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    """Check a PIN against its stored hash (PBKDF2, or argon2id from an older cloud), in constant time."""
    if stored.startswith("$argon2id$"):
        from pwdlib import PasswordHash
        from pwdlib.hashers.argon2 import Argon2Hasher

        return PasswordHash((Argon2Hasher(),)).verify(pin, stored)
    try:
        _, it, salt, want = stored.split("$")
        dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(it))
    except ValueError:
        return False
    return hmac.compare_digest(dk.hex(), want)
