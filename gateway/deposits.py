"""Courier deposit flow: pick a compartment, open it, and on the locker's confirmation issue the pickup code."""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time

from . import const as C
from .codes import Codes
from .counters import Counters
from .errors import (CommandRejected, CommandTimeout, LockerError, LockerOffline, NoCompartment, NoFoundParcel,
                     UnknownParcel)
from .lockerlink import LockerLink
from .stationdb import Outbox, Record

log = logging.getLogger("jincun.gateway.deposits")

SIZE_RANK = {s: i for i, s in enumerate(C.SIZES)}
_PARCEL_KEYS = ("ref", "state", "locker", "c", "size", "waybill", "carrier", "phone", "updated")
_PARCEL_COLS = ", ".join(_PARCEL_KEYS)


class Deposits:
    """Starts deposits on request and follows them through the locker's events."""

    def __init__(self, outbox: Outbox, link: LockerLink, codes: Codes, counters: Counters) -> None:
        self.outbox = outbox
        self.link = link
        self.codes = codes
        self.counters = counters
        self._reserved: set[tuple[str, int]] = set()

    def _pick(self, size: str, locker: str | None) -> tuple[str, int, str]:
        if locker is not None and locker not in self.link.lockers:
            raise LockerError(f"unknown locker {locker!r}")
        pool = [self.link.lockers[locker]] if locker else list(self.link.lockers.values())
        live = [ls for ls in pool if ls.online and ls.birth_at is not None]
        if not live:
            raise LockerOffline("locker offline" if locker else "no locker online")
        best = None
        for ls in live:
            for comp in ls.comps.values():
                if not comp.assignable() or (ls.id, comp.n) in self._reserved:
                    continue
                rank = SIZE_RANK[comp.size] - SIZE_RANK[size]
                if rank < 0:
                    continue
                key = (rank, ls.id, comp.n)
                if best is None or key < best[0]:
                    best = (key, ls.id, comp.n, comp.size)
        if best is None:
            raise NoCompartment(f"no free compartment of size {size} or larger")
        return best[1], best[2], best[3]

    async def request(self, waybill: str, phone: str, carrier: str, size: str, locker: str | None = None, *,
                      courier: str | None = None, consent: str | None = None) -> dict:
        """Open a free compartment for a parcel; returns {"ref","locker","c","size"}."""
        if size not in SIZE_RANK:
            raise NoCompartment(f"unknown size {size!r}")
        lk, c, csize = self._pick(size, locker)
        self._reserved.add((lk, c))
        try:
            extra = {"courier": courier} if courier else {}
            if consent:
                extra["consent"] = consent  # how the recipient's consent to locker delivery is known
            ref = await self._record(waybill, phone, carrier, csize, lk, c, extra)
            try:
                ack = await self.link.send_command(lk, "deposit", c=c, ref=ref)
            except (CommandTimeout, LockerOffline):
                # the locker may still open; its deposit or deposit_void event (or next birth) settles it
                self.counters.inc("deposit_cmd_unacked")
                raise
            if not ack or not ack.get("ok"):
                await self._set_state(ref, "void")
                self.counters.inc("deposit_refused")
                raise CommandRejected((ack or {}).get("err", "refused"))
            comp = self.link.lockers[lk].comps[c]
            if comp.st in ("empty", "deposit") and comp.ref is None:
                # the locker's lock event (mirrored) names no ref: the command did
                comp.st, comp.ref = "deposit", ref
            self.counters.inc("deposits_started")
            return {"ref": ref, "locker": lk, "c": c, "size": csize}
        finally:
            self._reserved.discard((lk, c))

    async def _record(self, waybill: str, phone: str, carrier: str, size: str, lk: str, c: int,
                      extra: dict) -> str:
        """A new parcel in state 'opening', with its record for the cloud, in one transaction; returns its ref."""
        ref = "p-" + secrets.token_hex(6)
        now = time.time()
        body = {"ref": ref, "waybill": waybill, "carrier": carrier, "phone": phone, "locker": lk, "c": c,
                "size": size, **extra}

        def record(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO parcels VALUES (?,?,?,?,?,?,?, 'opening', ?, ?)",
                         (ref, waybill, phone, carrier, size, lk, c, now, now))
            self.outbox._insert(conn, Record(src=C.SRC_GATEWAY, kind="parcel", body=body))
        await self.outbox.run(record)
        return ref

    def found(self) -> list[dict]:
        """Compartments whose sensor reads a parcel that nothing accounts for: the agent's found-parcel tasks."""
        return [{"locker": ls.id, "c": comp.n, "size": comp.size, "online": ls.online}
                for ls in self.link.lockers.values() for comp in sorted(ls.comps.values(), key=lambda x: x.n)
                if comp.mm]

    async def adopt(self, locker: str, c: int, waybill: str, phone: str, carrier: str, *, agent: str,
                    consent: str | None = None) -> dict:
        """Register a found parcel where it lies; the locker confirms it with a `deposit` event, and the code
        and SMS then go out exactly as for a deposit."""
        ls = self.link.lockers.get(locker)
        comp = ls.comps.get(c) if ls is not None else None
        if ls is None or comp is None or not comp.mm:
            raise NoFoundParcel(f"no found parcel in {locker}/{c}")
        if not ls.online:
            raise LockerOffline("locker offline")
        if (locker, c) in self._reserved:
            raise NoFoundParcel(f"{locker}/{c} is being registered already")
        self._reserved.add((locker, c))
        try:
            extra = {"found": True, "agent": agent}
            if consent:
                extra["consent"] = consent
            ref = await self._record(waybill, phone, carrier, comp.size, locker, c, extra)
            try:
                ack = await self.link.send_command(locker, "adopt", c=c, ref=ref)
            except (CommandTimeout, LockerOffline):
                self.counters.inc("adopt_cmd_unacked")  # its deposit event (or the next birth) settles it
                raise
            if not ack or not ack.get("ok"):
                await self._set_state(ref, "void")
                self.counters.inc("adopt_refused")
                raise CommandRejected((ack or {}).get("err", "refused"))
            comp.mm = False
            if comp.ref is None:
                comp.st, comp.ref = "occupied", ref
            self.counters.inc("found_adopted")
            return {"ref": ref, "locker": locker, "c": c, "size": comp.size}
        finally:
            self._reserved.discard((locker, c))

    async def get(self, ref: str) -> dict:
        """A parcel of the station (its place, state, size, waybill, carrier, phone, last change); UnknownParcel."""
        row = await self.outbox.query(lambda conn: conn.execute(
            f"SELECT {_PARCEL_COLS} FROM parcels WHERE ref=?", (ref,)).fetchone())
        if row is None:
            raise UnknownParcel(ref)
        return dict(zip(_PARCEL_KEYS, row))

    async def waiting(self, *, limit: int = 500) -> list[dict]:
        """Parcels deposited and not yet collected, the longest waiting first (as `get`)."""
        rows = await self.outbox.query(lambda conn: conn.execute(
            f"SELECT {_PARCEL_COLS} FROM parcels WHERE state='deposited' ORDER BY updated LIMIT ?",
            (limit,)).fetchall())
        return [dict(zip(_PARCEL_KEYS, r)) for r in rows]

    @staticmethod
    def handed_over_in_tx(conn: sqlite3.Connection, *, ref: str, at: float, state: str = "handed_over") -> None:
        """Inside the transaction that records the handover: the parcel left the locker door to door
        (`handed_over`) or went back to its carrier (`returned`)."""
        conn.execute("UPDATE parcels SET state=?, updated=? WHERE ref=?", (state, at, ref))

    async def to_return(self, locker: str, c: int, ref: str) -> bool:
        """The cloud sent an overdue parcel back to its carrier: the villager's code stops opening it, and it
        waits on the couriers' 待退回 list. False when this station holds no such parcel there."""
        held = await self.outbox.query(lambda conn: conn.execute(
            "SELECT 1 FROM parcels WHERE ref=? AND locker=? AND c=? AND state IN ('deposited', 'returning')",
            (ref, locker, c)).fetchone())
        if held is None:
            return False
        # the code first: the parcel is on the couriers' list only once the villager's code stopped opening it
        # (an offline locker gets the change from the next sync)
        await self.codes.revoke(locker, c)
        await self.outbox.run(lambda conn: conn.execute(
            "UPDATE parcels SET state='returning', updated=? WHERE ref=? AND state IN ('deposited', 'returning')",
            (time.time(), ref)))
        self.counters.inc("returns_started")
        return True

    async def returns(self, carrier: str | None = None, *, limit: int = 500) -> list[dict]:
        """Parcels waiting for their carrier's courier to take them back (as `get`), of one carrier or all."""
        q = f"SELECT {_PARCEL_COLS} FROM parcels WHERE state='returning'"
        args: tuple = ()
        if carrier:
            q += " AND carrier=?"
            args = (carrier,)
        rows = await self.outbox.query(lambda conn: conn.execute(q + " ORDER BY updated LIMIT ?",
                                                                 (*args, limit)).fetchall())
        return [dict(zip(_PARCEL_KEYS, r)) for r in rows]

    async def _set_state(self, ref: str, state: str) -> None:
        await self.outbox.run(lambda conn: conn.execute(
            "UPDATE parcels SET state=?, updated=? WHERE ref=?", (state, time.time(), ref)))

    async def _deposited(self, locker: str, c: int, ref: str) -> None:
        def tx(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT state, phone, locker, c FROM parcels WHERE ref=?", (ref,)).fetchone()
            if row is None:
                self.counters.inc("deposit_unknown_ref")
                log.warning("locker %s confirmed a deposit of unknown parcel %s", locker, ref)
                return None
            if row[0] == "deposited" or row[0] == "picked":
                return None
            if (row[2], row[3]) != (locker, c):
                log.warning("parcel %s went into %s/%d, asked for %s/%d", ref, locker, c, row[2], row[3])
                conn.execute("UPDATE parcels SET locker=?, c=? WHERE ref=?", (locker, c, ref))
            conn.execute("UPDATE parcels SET state='deposited', updated=? WHERE ref=?", (time.time(), ref))
            return self.codes.issue_in_tx(conn, locker, row[1], ref, c)
        code_id = await self.outbox.run(tx)
        if code_id is not None:
            self.counters.inc("deposits_done")
            await self.codes.push(code_id)

    async def on_event(self, locker: str, evt: dict) -> None:
        t = evt["type"]
        if t == "deposit":
            await self._deposited(locker, evt["c"], evt["ref"])
        elif t == "deposit_void":
            await self.outbox.run(lambda conn: conn.execute(
                "UPDATE parcels SET state='void', updated=? WHERE ref=? AND state='opening'",
                (time.time(), evt["ref"])))
            self.counters.inc("deposits_void")
        elif t == "pickup":
            await self.outbox.run(lambda conn: conn.execute(
                "UPDATE parcels SET state='picked', updated=? WHERE ref=? AND state='deposited'",
                (time.time(), evt["ref"])))

    async def on_birth(self, locker: str) -> None:
        """Settle deposits whose confirmation the gateway missed, from the birth snapshot."""
        ls = self.link.lockers[locker]
        rows = await self.outbox.query(lambda conn: conn.execute(
            "SELECT ref, c FROM parcels WHERE state='opening' AND locker=?", (locker,)).fetchall())
        for ref, c in rows:
            comp = ls.comps.get(c)
            if comp is None or comp.ref == ref and comp.st == "deposit":
                continue
            if comp.ref == ref and comp.st in ("occupied", "pickup"):
                await self._deposited(locker, c, ref)
            elif (locker, c) not in self._reserved:
                await self._set_state(ref, "void")
                self.counters.inc("deposits_void")
