"""Terminal PINs and sessions: how a PIN is stored and checked, and who is logged in at the station terminal.

A PIN is 6 to 12 digits, hashed and checked by the one PIN rule (`jincun/pins.py`), which the cloud uses
too for the couriers and station agents it sends to the station. Lockouts are per user and per client
address (gateway/lockout.py), never for the whole station.

Sessions outlive a gateway restart: each is a row of the station database's `terminal_sessions` (the sha256 of
its token, never the token, with the user id, the login time and the expiry), written before the login answers
and read back at start. The lockouts are held in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from jincun.pins import PIN_ITERATIONS, PIN_MIN_DIGITS, PIN_RE, hash_pin, verify_pin

# the terminal's names for the one PIN rule, re-exported
__all__ = ["CLOUD_USER_RE", "PIN_ADDR_LOCK", "PIN_ITERATIONS", "PIN_MIN_DIGITS", "PIN_RE", "PIN_USER_LOCK",
           "SESSIONS_PER_USER", "Sessions", "hash_pin", "verify_pin"]

from .config import TerminalConfig, TerminalUser
from .lockout import Lockout

if TYPE_CHECKING:
    from .stationdb import StationDB

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


def token_hash(token: str) -> str:
    """What the station keeps of a session's token: its sha256, so a copy of the database logs no one in."""
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """Logged-in terminal users by bearer token, with PIN lockouts per user and per client address.

    With `db`, every session is also a row of `terminal_sessions` (the token's sha256, never the token), and
    load() takes them back after a restart.

    A user's lockout holds even against that user's right PIN (so guessing learns nothing during it) and
    touches no one else; each user keeps at most SESSIONS_PER_USER sessions, so no login ends another
    user's session.
    """

    def __init__(self, cfg: TerminalConfig, counters, *, clock=time.monotonic, wall=time.time,
                 db: StationDB | None = None) -> None:
        self.cfg = cfg
        self.counters = counters
        self.clock = clock  # the lockouts'
        self.wall = wall  # the sessions' expiries, kept across restarts: wall-clock time
        self.db = db  # None: sessions in memory only
        # sha256 of the token -> (user, expiry); the rows of terminal_sessions, as loaded and written
        self._s: dict[str, tuple[TerminalUser, float]] = {}
        self._writes: set[asyncio.Future] = set()
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
        ended = [h for h, (u, _) in self._s.items() if u.id in gone]
        for h in ended:
            del self._s[h]
        if ended:
            self._write(lambda conn: conn.executemany("DELETE FROM terminal_sessions WHERE h=?",
                                                      [(h,) for h in ended]))
        return gone

    async def load(self) -> int:
        """Take the sessions stored before a restart (after the staff list is loaded): expired ones and those of
        users no longer allowed are deleted; how many were taken."""
        if self.db is None:
            return 0
        now = self.wall()

        def read(conn: sqlite3.Connection) -> list[tuple[str, str, float]]:
            conn.execute("DELETE FROM terminal_sessions WHERE exp < ?", (now,))
            return conn.execute("SELECT h, user_id, exp FROM terminal_sessions").fetchall()
        rows = await self.db.run(read)
        stale = []
        for h, uid, exp in rows:
            u = self.users.get(uid)
            if u is None:
                stale.append((h,))
            else:
                self._s[h] = (u, exp)
        if stale:
            await self.db.run(lambda conn: conn.executemany("DELETE FROM terminal_sessions WHERE h=?", stale))
        return len(self._s)

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future | None:
        """Queue a write of the sessions' table; the future is done once it has committed."""
        if self.db is None:
            return None
        fut = asyncio.ensure_future(self.db.run(fn))
        self._writes.add(fut)
        fut.add_done_callback(self._written)
        return fut

    def _written(self, fut: asyncio.Future) -> None:
        self._writes.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("terminal sessions not stored: %s", fut.exception())

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
        token, stored = self._open(user)
        if stored is not None:
            with contextlib.suppress(Exception):  # not stored: the session lasts until a restart (logged)
                await stored
        return token, user

    def open(self, user: TerminalUser) -> str:
        """A new session of `user` (whose PIN was checked); ends only that user's own oldest one if needed."""
        return self._open(user)[0]

    def _open(self, user: TerminalUser) -> tuple[str, asyncio.Future | None]:
        now = self.wall()
        ended = [h for h, (_, exp) in self._s.items() if exp < now]
        mine = [h for h, (u, exp) in self._s.items() if u.id == user.id and exp >= now]
        if len(mine) >= SESSIONS_PER_USER:
            ended.append(min(mine, key=lambda h: self._s[h][1]))
        for h in ended:
            del self._s[h]
        token = secrets.token_urlsafe(24)
        h, exp = token_hash(token), now + self.cfg.session_s
        self._s[h] = (user, exp)

        def store(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM terminal_sessions WHERE exp < ?", (now,))
            conn.executemany("DELETE FROM terminal_sessions WHERE h=?", [(e,) for e in ended])
            conn.execute("INSERT INTO terminal_sessions (h, user_id, at, exp) VALUES (?,?,?,?)",
                         (h, user.id, now, exp))
        return token, self._write(store)

    def user(self, token: str | None) -> TerminalUser:
        h = token_hash(token or "")
        got = self._s.get(h)
        if got is None or got[1] < self.wall():
            if self._s.pop(h, None) is not None:
                self._write(lambda conn: conn.execute("DELETE FROM terminal_sessions WHERE h=?", (h,)))
            raise HTTPException(401, {"error": "login"})
        return got[0]

    async def logout(self, token: str | None) -> None:
        h = token_hash(token or "")
        self._s.pop(h, None)
        done = self._write(lambda conn: conn.execute("DELETE FROM terminal_sessions WHERE h=?", (h,)))
        if done is not None:
            await done
