"""Pickup codes issued by the gateway itself, so a station works with the cloud unreachable (§4)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
import sqlite3
import time

from . import const as C
from . import protocol
from .config import StationConfig
from .counters import Counters
from .errors import GatewayError, LockerError
from .lockerlink import LockerLink
from .stationdb import Outbox, Record

log = logging.getLogger("jincun.gateway.codes")

MAX_ACTIVE_CODES = 200_000


class CodeClash(GatewayError):
    """A code the cloud sent is already active for someone else at this station."""


class Codes:
    """Issues, syncs to lockers and retires the 6-digit pickup codes of one station.

    The rule (docs/gateway.md, "Pickup codes"): one code per recipient per station. A recipient with parcels
    in several lockers of the station has one plain code; each locker holds it as a row of its own (hashed
    with that locker's secret, with that locker's compartments), so every locker opens its share offline.
    """

    def __init__(self, cfg: StationConfig, outbox: Outbox, link: LockerLink, counters: Counters) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.link = link
        self.counters = counters
        self.ttl = cfg.gateway.code_ttl_s
        self._secrets = {lk.id: lk.secret.lower() for lk in cfg.all_lockers()}
        self._push_lock: dict[str, asyncio.Lock] = {}

    # ---- inside the outbox transaction ----

    def issue_in_tx(self, conn: sqlite3.Connection, locker: str, phone: str, ref: str, c: int) -> int:
        """Give `phone` a code for compartment c at `locker` (reusing an active one) and queue the `code` record."""
        now = time.time()
        self._expire_in_tx(conn, now)
        exp_ts = int(now + self.ttl)
        row = conn.execute("SELECT id, code, cs FROM codes WHERE state='active' AND locker=? AND phone=?",
                           (locker, phone)).fetchone()
        if row is not None:
            code_id, code, cs = row[0], row[1], json.loads(row[2])
            cs = sorted(set(cs) | {c})
            conn.execute("UPDATE codes SET cs=?, exp_ts=?, synced=0 WHERE id=?", (json.dumps(cs), exp_ts, code_id))
            self.counters.inc("codes_reused")
        else:
            n_active = conn.execute("SELECT COUNT(*) FROM codes WHERE state='active'").fetchone()[0]
            if n_active >= MAX_ACTIVE_CODES:
                raise LockerError("too many active pickup codes at this station")
            code = self._station_code(conn, phone)
            h = protocol.code_hash(self._secrets[locker], code)
            code_id = conn.execute(
                "INSERT INTO codes (locker, phone, code, h, cs, exp_ts, state) VALUES (?,?,?,?,?,?, 'active')",
                (locker, phone, code, h, json.dumps([c]), exp_ts)).lastrowid
            self.counters.inc("codes_issued")
        self.outbox._insert(conn, Record(src=C.SRC_GATEWAY, kind="code", body={
            "ref": ref, "locker": locker, "phone": phone, "code": code, "exp_ts": exp_ts}))
        return code_id

    @staticmethod
    def _station_code(conn: sqlite3.Connection, phone: str) -> str:
        """The recipient's code at this station: the one active at another locker, or a fresh one no one holds."""
        row = conn.execute("SELECT code FROM codes WHERE state='active' AND phone=? AND code IS NOT NULL "
                           "ORDER BY id DESC LIMIT 1", (phone,)).fetchone()
        if row is not None:
            return row[0]
        taken = {r[0] for r in conn.execute("SELECT code FROM codes WHERE state='active'")}
        while True:
            code = f"{secrets.randbelow(10 ** C.CODE_DIGITS):0{C.CODE_DIGITS}d}"
            if code not in taken:
                return code

    def replace_in_tx(self, conn: sqlite3.Connection, locker: str, phone: str, code: str, cs: list[int],
                      exp_ts: float) -> tuple[str | None, int]:
        """Make `code` the recipient's code at `locker` (a code the cloud issued); returns (old hash, new id).

        The same code arriving for the recipient's other lockers is the rule, not a clash: only a code active
        for another recipient of the station is refused."""
        self._expire_in_tx(conn, time.time())
        clash = conn.execute("SELECT 1 FROM codes WHERE state='active' AND code=? AND phone<>?",
                             (code, phone)).fetchone()
        if clash:
            raise CodeClash("the code is active for another recipient at this station")
        old = conn.execute("SELECT id, h, cs FROM codes WHERE state='active' AND locker=? AND phone=?",
                           (locker, phone)).fetchone()
        h = protocol.code_hash(self._secrets[locker], code)
        if old is not None:
            # a different old code must leave the locker's vault too: `revoked` until the locker deleted it
            conn.execute("UPDATE codes SET state=?, code=NULL, synced=0 WHERE id=?",
                         ("revoked" if old[1] != h else "retired", old[0]))
            # what the old code still opened here stays the recipient's (a deposit after the cloud issued)
            cs = [*cs, *json.loads(old[2])]
        code_id = conn.execute(
            "INSERT INTO codes (locker, phone, code, h, cs, exp_ts, state) VALUES (?,?,?,?,?,?, 'active')",
            (locker, phone, code, h, json.dumps(sorted(set(cs))), exp_ts)).lastrowid
        assert code_id is not None  # set by every INSERT
        self.counters.inc("codes_replaced")
        return (old[1] if old is not None and old[1] != h else None), code_id

    def _replace_all_in_tx(self, conn: sqlite3.Connection, locker: str, phone: str, code: str, cs: list[int],
                           exp_ts: float) -> list[tuple[str, int]]:
        """The code replaces the recipient's code at `locker` and at every other locker of the station where
        they hold one (one code per recipient per station); returns (locker, new code id) for each."""
        others = [r[0] for r in conn.execute(
            "SELECT DISTINCT locker FROM codes WHERE state='active' AND phone=? AND locker<>? AND code<>?",
            (phone, locker, code))]
        done = [(locker, self.replace_in_tx(conn, locker, phone, code, cs, exp_ts)[1])]
        return done + [(lk, self.replace_in_tx(conn, lk, phone, code, [], exp_ts)[1]) for lk in others]

    async def replace(self, locker: str, phone: str, code: str, cs: list[int], exp_ts: float) -> bool:
        """Replace the recipient's code (at `locker`, and at their other lockers here) and push the change; True
        once `locker` took it. An old code a locker did not delete yet is deleted by the next sync."""
        changed = await self.outbox.run(lambda conn: self._replace_all_in_tx(conn, locker, phone, code, cs, exp_ts))
        ok = False
        for lk, code_id in changed:
            deleted = await self._delete_revoked(lk)
            pushed = await self.push(code_id)
            if lk == locker:
                ok = deleted and pushed
        return ok

    def _expire_in_tx(self, conn: sqlite3.Connection, now: float) -> None:
        n = conn.execute("UPDATE codes SET state='retired', code=NULL WHERE state='active' AND exp_ts < ?",
                         (now,)).rowcount
        if n:
            self.counters.inc("codes_expired", n)

    # ---- locker sync ----

    async def push(self, code_id: int) -> bool:
        """Send code_put for one active code; True once the locker acked it."""
        row = await self.outbox.query(lambda conn: conn.execute(
            "SELECT locker, h, cs, exp_ts, state FROM codes WHERE id=?", (code_id,)).fetchone())
        if row is None or row[4] != "active":
            return False
        locker, h, cs, exp_ts, _ = row
        exp = int(exp_ts - time.time())
        if exp <= 0:
            return False
        lock = self._push_lock.setdefault(locker, asyncio.Lock())
        async with lock:
            try:
                ack = await self.link.send_command(locker, "code_put", h=h, cs=json.loads(cs), exp=exp)
            except LockerError as exc:
                self.counters.inc("code_push_failed")
                log.warning("code %d not pushed to %s yet: %s", code_id, locker, exc)
                return False
        if not ack or not ack.get("ok"):
            self.counters.inc("code_push_refused")
            log.error("locker %s refused code %d: %s", locker, code_id, ack and ack.get("err"))
            return False
        await self.outbox.run(lambda conn: conn.execute(
            "UPDATE codes SET synced=1 WHERE id=? AND cs=?", (code_id, cs)))
        return True

    async def sync(self, locker: str | None = None) -> int:
        """Push every active code a locker has not acked yet; returns how many went through."""
        now = time.time()
        await self.outbox.run(lambda conn: self._expire_in_tx(conn, now))
        q = "SELECT id FROM codes WHERE state='active' AND synced=0"
        args: tuple = ()
        if locker:
            q += " AND locker=?"
            args = (locker,)
        ids = [r[0] for r in await self.outbox.query(lambda conn: conn.execute(q, args).fetchall())]
        for lk in [locker] if locker else list(self.link.lockers):
            await self._delete_revoked(lk)
        ok = 0
        for code_id in ids:
            ok += await self.push(code_id)
        return ok

    async def sync_loop(self, every_s: float = 30.0) -> None:
        """Retry unsynced codes for online lockers from time to time."""
        while True:
            await asyncio.sleep(every_s)
            for ls in self.link.lockers.values():
                if ls.online:
                    await self.sync(ls.id)

    async def on_birth(self, locker: str) -> None:
        ls = self.link.lockers.get(locker)
        if ls is not None and ls.vault == 0:
            # the locker holds no codes (a wiped flash, a lock board after a gateway restart): push them all again
            n = await self.outbox.run(lambda conn: conn.execute(
                "UPDATE codes SET synced=0 WHERE state='active' AND locker=? AND synced=1", (locker,)).rowcount)
            if n:
                self.counters.inc("codes_resent", n)
        await self.sync(locker)

    def _drop_in_tx(self, conn: sqlite3.Connection, locker: str, c: int, *, left: str) -> list[int]:
        """Take compartment c off every active code at `locker`; a code with nothing left goes to state `left`.
        Returns the ids of the codes that still open something (their locker must hear the smaller list)."""
        kept = []
        for code_id, cs in conn.execute(
                "SELECT id, cs FROM codes WHERE state='active' AND locker=?", (locker,)).fetchall():
            cs = json.loads(cs)
            if c in cs:
                cs.remove(c)
                if cs:
                    conn.execute("UPDATE codes SET cs=?, synced=0 WHERE id=?", (json.dumps(cs), code_id))
                    kept.append(code_id)
                else:
                    conn.execute("UPDATE codes SET state=?, code=NULL, cs='[]', synced=0 WHERE id=?",
                                 (left, code_id))
                    self.counters.inc("codes_used")
        return kept

    async def on_event(self, locker: str, evt: dict) -> None:
        """A pickup, or staff who took a parcel out (`state` empty), empties a compartment: take it off its
        code, retire the code when nothing is left. The controller drops it from its vault by itself."""
        if not (evt["type"] == "pickup" or evt["type"] == "state" and evt.get("st") == "empty"):
            return
        c = evt["c"]

        def taken(conn: sqlite3.Connection) -> None:
            for code_id in self._drop_in_tx(conn, locker, c, left="retired"):
                conn.execute("UPDATE codes SET synced=1 WHERE id=?", (code_id,))  # the locker consumed it too
        await self.outbox.run(taken)

    async def revoke(self, locker: str, c: int) -> bool:
        """The recipient's code no longer opens compartment c (its parcel goes back to the carrier): the locker
        gets the smaller list, or the code deleted. True once the locker took it; else the sync retries."""
        kept = await self.outbox.run(lambda conn: self._drop_in_tx(conn, locker, c, left="revoked"))
        self.counters.inc("codes_revoked")
        done = await self._delete_revoked(locker)
        for code_id in kept:
            done = await self.push(code_id) and done
        return done

    async def _delete_revoked(self, locker: str) -> bool:
        """Send code_del for every code at `locker` taken back whole; True when none is left to delete."""
        rows = await self.outbox.query(lambda conn: conn.execute(
            "SELECT id, h FROM codes WHERE state='revoked' AND locker=?", (locker,)).fetchall())
        for code_id, h in rows:
            try:
                ack = await self.link.send_command(locker, "code_del", h=h)
            except LockerError as exc:
                log.warning("revoked code %d not deleted at %s yet: %s", code_id, locker, exc)
                return False
            if not ack or not ack.get("ok"):
                return False
            await self.outbox.run(functools.partial(_retire, code_id=code_id))
        return True

    async def active(self, locker: str | None = None) -> list[dict]:
        """Active codes without the plain code (for views and tests)."""
        def q(conn: sqlite3.Connection) -> list[dict]:
            rows = conn.execute("SELECT id, locker, phone, h, cs, exp_ts, synced FROM codes WHERE state='active'"
                                + (" AND locker=?" if locker else ""), (locker,) if locker else ()).fetchall()
            return [{"id": r[0], "locker": r[1], "phone": r[2], "h": r[3], "cs": json.loads(r[4]),
                     "exp_ts": r[5], "synced": bool(r[6])} for r in rows]
        return await self.outbox.query(q)


def _retire(conn: sqlite3.Connection, *, code_id: int) -> None:
    """A revoked code the locker deleted: nothing is left of it anywhere."""
    conn.execute("UPDATE codes SET state='retired', synced=1 WHERE id=?", (code_id,))
