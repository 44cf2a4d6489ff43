"""Terminal PINs and sessions: how a PIN is stored and checked, and who is logged in at the station terminal.

A PIN is 6 to 12 digits, stored as PBKDF2 (`hash_pin`) or, for a courier enrolled from the cloud, as the
cloud's argon2id hash. Lockouts are per user and per client address (gateway/lockout.py), never for the whole
station.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time

from fastapi import HTTPException

from .config import TerminalConfig, TerminalUser
from .lockout import Lockout

log = logging.getLogger("jincun.gateway.terminal")

PIN_ITERATIONS = 100_000
PIN_MIN_DIGITS = 6
PIN_RE = rf"^[0-9]{{{PIN_MIN_DIGITS},12}}$"
# one user's PIN: 5 wrong in a row lock that user for 1 min, doubling up to 16 min
PIN_USER_LOCK = {"fails": 5, "first_s": 60, "max_s": 960, "forget_s": 3600}
# one client address, whichever users it tries: a spray across names locks the address. Looser than the
# per-user lock, because the station's own tablet is one address shared by every courier and the agent
PIN_ADDR_LOCK = {"fails": 20, "first_s": 60, "max_s": 960, "forget_s": 3600}
SESSIONS_PER_USER = 4

def hash_pin(pin: str, *, salt: bytes | None = None, iterations: int = PIN_ITERATIONS) -> str:
    """The station.json form of a terminal PIN: pbkdf2_sha256$iterations$salt$hash."""
    if not re.fullmatch(PIN_RE, pin):
        raise ValueError(f"a terminal PIN is {PIN_MIN_DIGITS} to 12 digits")
    salt = salt or secrets.token_bytes(16)
    dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${dk.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    """Check a PIN against its station.json hash: PBKDF2 set here, or argon2id enrolled from the cloud."""
    if stored.startswith("$argon2id$"):
        from pwdlib import PasswordHash
        from pwdlib.hashers.argon2 import Argon2Hasher

        return PasswordHash((Argon2Hasher(),)).verify(pin, stored)
    _, it, salt, want = stored.split("$")
    dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(it))
    return hmac.compare_digest(dk.hex(), want)


class Sessions:
    """Logged-in terminal users by bearer token, with PIN lockouts per user and per client address.

    A user's lockout holds even against that user's right PIN (so guessing learns nothing during it) and
    touches no one else; each user keeps at most SESSIONS_PER_USER sessions, so no login ends another
    user's session.
    """

    def __init__(self, cfg: TerminalConfig, counters, *, clock=time.monotonic) -> None:
        self.cfg = cfg
        self.counters = counters
        self.clock = clock
        self._s: dict[str, tuple[TerminalUser, float]] = {}
        self.users = {u.id: u for u in cfg.users}
        self.by_user = Lockout(**PIN_USER_LOCK, clock=clock)
        self.by_addr = Lockout(**PIN_ADDR_LOCK, clock=clock)
        # an unknown name costs the same hash as a known one, so timing does not tell them apart: the first
        # user's kind of hash (PBKDF2 at its iterations, or the cloud's argon2id for an enrolled courier)
        first = cfg.users[0].pin_hash if cfg.users else ""
        dummy_pin = "".join(secrets.choice("0123456789") for _ in range(PIN_MIN_DIGITS))
        if first.startswith("$argon2id$"):
            from pwdlib import PasswordHash
            from pwdlib.hashers.argon2 import Argon2Hasher

            self._dummy = PasswordHash((Argon2Hasher(),)).hash(dummy_pin)
        else:
            its = int(first.split("$")[1]) if first else PIN_ITERATIONS
            self._dummy = hash_pin(dummy_pin, iterations=its)

    async def login(self, user_id: str, pin: str, addr: str) -> tuple[str, TerminalUser]:
        for lock, key, scope in ((self.by_addr, addr, "address"), (self.by_user, user_id, "user")):
            secs = lock.wait_s(key)
            if secs:
                self.counters.inc("pin_locked")
                raise HTTPException(429, {"error": "locked", "secs": secs, "scope": scope})
        user = self.users.get(user_id)
        # PBKDF2 takes a while on a Pi: off the event loop
        ok = await asyncio.to_thread(verify_pin, pin, user.pin_hash if user else self._dummy)
        if not ok or user is None:
            self.counters.inc("pin_failures")
            if user is not None:  # unknown names make no entries; the address counts them
                self.by_user.failed(user_id)
            self.by_addr.failed(addr)
            log.warning("wrong terminal PIN for %s from %s", user_id if user else "an unknown user", addr)
            raise HTTPException(401, {"error": "bad_pin"})
        self.by_user.succeeded(user_id)
        return self.open(user), user

    def open(self, user: TerminalUser) -> str:
        """A new session of `user` (whose PIN was checked); ends only that user's own oldest one if needed."""
        now = self.clock()
        for tok in [t for t, (_, exp) in self._s.items() if exp < now]:
            del self._s[tok]
        mine = [t for t, (u, _) in self._s.items() if u.id == user.id]
        if len(mine) >= SESSIONS_PER_USER:
            del self._s[min(mine, key=lambda t: self._s[t][1])]
        token = secrets.token_urlsafe(24)
        self._s[token] = (user, now + self.cfg.session_s)
        return token

    def user(self, token: str | None) -> TerminalUser:
        got = self._s.get(token or "")
        if got is None or got[1] < self.clock():
            self._s.pop(token or "", None)
            raise HTTPException(401, {"error": "login"})
        return got[0]

    def logout(self, token: str | None) -> None:
        self._s.pop(token or "", None)
