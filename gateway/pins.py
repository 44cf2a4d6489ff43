"""Terminal PINs and sessions: how a PIN is stored and checked, and who is logged in at the station terminal.

A PIN is 6 to 12 digits, hashed and checked by the one PIN rule (`jincun/pins.py`), which the cloud uses
too for the couriers and station agents it sends to the station. Lockouts are per user and per client
address (gateway/lockout.py), never for the whole station.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time

from fastapi import HTTPException

from jincun.pins import PIN_ITERATIONS, PIN_MIN_DIGITS, PIN_RE, hash_pin, verify_pin

# the terminal's names for the one PIN rule, re-exported
__all__ = ["CLOUD_USER_RE", "PIN_ADDR_LOCK", "PIN_ITERATIONS", "PIN_MIN_DIGITS", "PIN_RE", "PIN_USER_LOCK",
           "SESSIONS_PER_USER", "Sessions", "hash_pin", "verify_pin"]

from .config import TerminalConfig, TerminalUser
from .lockout import Lockout

log = logging.getLogger("jincun.gateway.terminal")

# one user's PIN: 5 wrong in a row lock that user for 1 min, doubling up to 16 min
PIN_USER_LOCK = {"fails": 5, "first_s": 60, "max_s": 960, "forget_s": 3600}
# one client address, whichever users it tries: a spray across names locks the address. Looser than the
# per-user lock, because the station's own tablet is one address shared by every courier and the agent
PIN_ADDR_LOCK = {"fails": 20, "first_s": 60, "max_s": 960, "forget_s": 3600}
SESSIONS_PER_USER = 4
# the terminal ids of the couriers (c<n>) and station agents (a<n>) the county manages in the cloud: once the
# station has the cloud's list, it alone decides who of these may log in (staff.py)
CLOUD_USER_RE = re.compile(r"^[ca][0-9]{1,9}$")


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

    def set_synced(self, synced: list[TerminalUser] | None) -> set[str]:
        """Take the cloud's couriers and agents (None: no list yet, station.json alone); return the ids whose
        entry went or changed. Their sessions end at once: a retired courier is logged out too."""
        users = {u.id: u for u in self.cfg.users if synced is None or not CLOUD_USER_RE.match(u.id)}
        for u in synced or []:
            if CLOUD_USER_RE.match(u.id):
                users[u.id] = u
        gone = {uid for uid, u in self.users.items() if users.get(uid) != u}
        self.users = users
        for tok in [t for t, (u, _) in self._s.items() if u.id in gone]:
            del self._s[tok]
        return gone

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
