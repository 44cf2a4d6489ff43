"""Secrets anyone could guess, refused at start-up outside the demo (one rule for the gateway and the cloud).

Refused: shorter than the kind's minimum, a placeholder, one character or a short pattern repeated, a run
of consecutive bytes or characters, and every value published in the test vectors (tests/vectors/*.json,
kept in step by tests/security/test_secrets.py).
"""

from __future__ import annotations

from itertools import pairwise

PLACEHOLDERS = frozenset({"...", "changeme", "change-me", "password", "secret", "xxx", "demo", "test"})

# secrets printed in the test vectors and docs: public, so never a real station's
PUBLISHED = frozenset({
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "9fd687cc5e1918da74cb849b2370293069abc311a49d4f4b7772006b898ad859",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
})
MAX_PERIOD = 8


def _consecutive(seq) -> bool:
    steps = {b - a for a, b in pairwise(seq)}
    return len(steps) == 1 and steps <= {1, -1}


def weakness(value: str, *, min_len: int = 12) -> str | None:
    """Why `value` is a guessable secret, or None when it is not."""
    v = value.strip()
    low = v.lower()
    if low in PLACEHOLDERS:
        return "is a placeholder"
    if len(v) < min_len:
        return f"is shorter than {min_len} characters"
    if low in PUBLISHED:
        return "is a published test value"
    for p in range(1, MAX_PERIOD + 1):
        if len(low) > p and low == (low[:p] * (len(low) // p + 1))[:len(low)]:
            return "repeats one short pattern"
    if _consecutive([ord(c) for c in low]):
        return "is a run of consecutive characters"
    if len(low) % 2 == 0 and all(c in "0123456789abcdef" for c in low) and _consecutive(bytes.fromhex(low)):
        return "is a run of consecutive bytes"
    return None
