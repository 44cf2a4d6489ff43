"""Courier deposit flow: pick a compartment, open it, and on the locker's confirmation issue the pickup code.

A courier may also book compartments for the locker's keypad (`book_keypad`): the gateway holds a compartment
per parcel in one locker and pushes a one-time 8-digit PIN's HMAC with those deposits (`courier_put`,
docs/protocol.md §4.1); typed on the keypad, the PIN opens them, and each deposit is then confirmed by its
door and occupancy exactly as a `deposit` command's. A booking holds its compartments until it is used or
expires (`KEYPAD_TTL_S`, the PIN's `exp` on the locker too). An expired booking's parcel is void at the station
and cancelled in the cloud (a parcel record with `void: keypad_expired`), so the cloud never waits for it as a
pre-advised parcel that was never delivered.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time

from . import const as C
from . import protocol
from .codes import Codes
from .counters import Counters
from .errors import (CommandRejected, CommandTimeout, LockerError, LockerOffline, LockerRetired, NoCompartment,
                     NoFoundParcel, UnknownParcel)
from .lockerlink import LockerLink
from .stationdb import Outbox, Record

log = logging.getLogger("jincun.gateway.deposits")

SIZE_RANK = {s: i for i, s in enumerate(C.SIZES)}
KEYPAD_TTL_S = 1800  # a keypad booking (and its PIN on the locker) lasts half an hour
KEYPAD_SWEEP_S = 60.0  # how often the gateway looks for expired keypad bookings
# a booking is ended this long after its PIN's expiry: the locker counts the PIN's life from when the
# courier_put reached it, a little after the gateway recorded the booking, so no late PIN finds its parcel cancelled
KEYPAD_GRACE_S = 60
KEYPAD_MAX = 8  # parcels one keypad PIN opens, and compartments one courier may hold for the keypad at once
PIN_DIGITS = 8  # the keypad tells a courier PIN (8 digits) from a pickup code (6) by its length
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
        # compartments held by keypad bookings: (locker, c) -> (ref, expiry on time.time(), courier)
        self._held: dict[tuple[str, int], tuple[str, float, str]] = {}

    def _live(self, locker: str | None) -> list:
        """The lockers a new deposit may go into: online and synced, and not retired in the cloud (a retired
        one named is refused; unnamed, it is left out of the pool)."""
        if locker is not None and locker not in self.link.lockers:
            raise LockerError(f"unknown locker {locker!r}")
        if locker is not None and self.link.lockers[locker].retired:
            self.counters.inc("deposits_retired_locker")
            raise LockerRetired(locker)
        pool = [self.link.lockers[locker]] if locker else [ls for ls in self.link.lockers.values() if not ls.retired]
        live = [ls for ls in pool if ls.online and ls.birth_at is not None]
        if not live:
            raise LockerOffline("locker offline" if locker else "no locker online")
        return live

    def _free(self, locker: str, c: int) -> bool:
        return (locker, c) not in self._reserved and (locker, c) not in self._held

    def _pick(self, size: str, locker: str | None) -> tuple[str, int, str]:
        live = self._live(locker)
        best = None
        for ls in live:
            for comp in ls.comps.values():
                if not comp.assignable() or not self._free(ls.id, comp.n):
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
                      extra: dict, *, state: str = "opening") -> str:
        """A new parcel in state 'opening' (or 'keypad': booked for a PIN), with its record for the cloud, in
        one transaction; returns its ref."""
        ref = "p-" + secrets.token_hex(6)
        now = time.time()
        body = {"ref": ref, "waybill": waybill, "carrier": carrier, "phone": phone, "locker": lk, "c": c,
                "size": size, **extra}

        def record(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO parcels VALUES (?,?,?,?,?,?,?, ?, ?, ?)",
                         (ref, waybill, phone, carrier, size, lk, c, state, now, now))
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
        self._release(locker, c, ref)
        code_id = await self.outbox.run(tx)
        if code_id is not None:
            self.counters.inc("deposits_done")
            await self.codes.push(code_id)

    async def on_event(self, locker: str, evt: dict) -> None:
        t = evt["type"]
        if t == "deposit":
            await self._deposited(locker, evt["c"], evt["ref"])
        elif t == "deposit_void":
            self._release(locker, evt["c"], evt["ref"])
            await self.outbox.run(lambda conn: conn.execute(
                "UPDATE parcels SET state='void', updated=? WHERE ref=? AND state IN ('opening', 'keypad')",
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

    # ---- keypad bookings ---------------------------------------------------------------------------------
    def _release(self, locker: str, c: int, ref: str) -> None:
        held = self._held.get((locker, c))
        if held is not None and held[0] == ref:
            del self._held[(locker, c)]

    async def load(self) -> None:
        """Hold again the compartments of keypad bookings still running (after a restart)."""
        rows = await self.outbox.query(lambda conn: conn.execute(
            "SELECT ref, locker, c, updated FROM parcels WHERE state='keypad'").fetchall())
        now = time.time()
        for ref, lk, c, at in rows:
            if at + KEYPAD_TTL_S + KEYPAD_GRACE_S > now:
                self._held[(lk, c)] = (ref, at + KEYPAD_TTL_S, "")
        await self._expire_keypad()

    async def _expire_keypad(self) -> None:
        """Bookings whose PIN has expired: their compartments are free again, their parcels void here and
        cancelled in the cloud (a parcel record with `void`, in the same transaction), as a deposit whose door
        closed on an empty compartment is."""
        now = time.time()
        for key in [k for k, (_, exp, _) in self._held.items() if exp + KEYPAD_GRACE_S <= now]:
            del self._held[key]

        def tx(conn: sqlite3.Connection) -> int:
            rows = conn.execute("SELECT ref, locker, c FROM parcels WHERE state='keypad' AND updated <= ?",
                                (now - KEYPAD_TTL_S - KEYPAD_GRACE_S,)).fetchall()
            for ref, lk, c in rows:
                conn.execute("UPDATE parcels SET state='void', updated=? WHERE ref=?", (now, ref))
                self.outbox._insert(conn, Record(src=C.SRC_GATEWAY, kind=C.KIND_PARCEL, body={
                    "ref": ref, "locker": lk, "c": c, "void": "keypad_expired"}))
            return len(rows)
        n = await self.outbox.run(tx)
        if n:
            self.counters.inc("keypad_expired", n)

    async def expiry_loop(self, every_s: float = KEYPAD_SWEEP_S) -> None:
        """End expired keypad bookings within a minute, whether or not another booking comes."""
        while True:
            await asyncio.sleep(every_s)
            await self._expire_keypad()

    def _pick_many(self, sizes: list[str], locker: str | None) -> tuple[str, list[tuple[int, str]]]:
        """A compartment for each size, all in one locker (one PIN opens one locker's doors)."""
        for ls in self._live(locker):
            free = sorted((SIZE_RANK[comp.size], comp.n) for comp in ls.comps.values()
                          if comp.assignable() and self._free(ls.id, comp.n))
            got: list[tuple[int, str]] = []
            for size in sorted(sizes, key=SIZE_RANK.__getitem__, reverse=True):
                fit = next((f for f in free if f[0] >= SIZE_RANK[size]), None)
                if fit is None:
                    break
                free.remove(fit)
                got.append((fit[1], C.SIZES[fit[0]]))
            if len(got) == len(sizes):
                return ls.id, got
        raise NoCompartment(f"no locker has {len(sizes)} free compartments of these sizes")

    async def book_keypad(self, parcels: list[dict], locker: str | None = None, *, courier: str,
                          ttl_s: int = KEYPAD_TTL_S) -> dict:
        """Hold a compartment per parcel ({"waybill","phone","carrier","size","consent"}) in one locker and put
        a fresh one-time keypad PIN for them on it; returns {"pin","locker","exp_s","deposits"}.

        The PIN is returned here once and kept nowhere at the station: the locker holds only its HMAC."""
        if not 1 <= len(parcels) <= KEYPAD_MAX:
            raise NoCompartment(f"a keypad PIN opens 1 to {KEYPAD_MAX} compartments")
        if any(p["size"] not in SIZE_RANK for p in parcels):
            raise NoCompartment("unknown size")
        await self._expire_keypad()
        if sum(1 for h in self._held.values() if h[2] == courier) + len(parcels) > KEYPAD_MAX:
            # one courier cannot hold more than one PIN's worth of compartments away from everybody else
            self.counters.inc("keypad_refused")
            raise CommandRejected("keypad_limit")
        lk, picks = self._pick_many([p["size"] for p in parcels], locker)
        cfg = self.link.cfg.locker(lk)
        if cfg is None or not hasattr(cfg, "secret") or lk in self.link.local:
            raise CommandRejected("no_keypad")  # a lock board driven by the gateway has no courier keypad
        order = sorted(range(len(parcels)), key=lambda i: SIZE_RANK[parcels[i]["size"]], reverse=True)
        deps: list[dict] = []
        for c, _ in picks:
            self._reserved.add((lk, c))
        try:
            for i, (c, csize) in zip(order, picks):
                p = parcels[i]
                extra = {"courier": courier, **({"consent": p["consent"]} if p.get("consent") else {})}
                ref = await self._record(p["waybill"], p["phone"], p["carrier"], csize, lk, c, extra, state="keypad")
                deps.append({"c": c, "ref": ref, "size": csize, "waybill": p["waybill"]})
            pin = "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS))
            try:
                ack = await self.link.send_command(lk, "courier_put", h=protocol.courier_hash(cfg.secret, pin),
                                                   deps=[{"c": d["c"], "ref": d["ref"]} for d in deps], exp=ttl_s)
            except (CommandTimeout, LockerOffline):
                ack = None
            if not ack or not ack.get("ok"):
                for d in deps:
                    await self._set_state(d["ref"], "void")
                self.counters.inc("keypad_refused")
                raise CommandRejected((ack or {}).get("err", "offline"))
            exp = time.time() + ttl_s
            for d in deps:
                self._held[(lk, d["c"])] = (d["ref"], exp, courier)
        finally:
            for c, _ in picks:
                self._reserved.discard((lk, c))
        self.counters.inc("keypad_bookings")
        return {"pin": pin, "locker": lk, "exp_s": ttl_s, "deposits": deps}
