"""Parcels sent from the village (寄件): the postage table, the sender's real-name check, and the station's book
of outbound parcels from taken in to collected by the carrier's courier.

The sender's ID number is checked here and cut to its last 4 characters at once: the full number is never
stored, logged, queued or sent (docs/gateway.md, "Outbound").
"""

from __future__ import annotations

import sqlite3
import time

from jincun import carriers
from jc import records

from . import const as C
from . import protocol
from .config import FeeRule, TerminalConfig
from .errors import DepositError, UnknownParcel
from .stationdb import Outbox, Record

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_COLS = ("ref", "carrier", "dest", "weight_g", "taken_by", "taken", "state", "collected_by", "collected", "waybill")


class NotCollectable(DepositError):
    """The outbound parcel was collected already, or is another carrier's."""


def id_tail(number: str) -> str | None:
    """The last 4 characters of a valid resident ID number (18 characters with its check digit, or the old
    15 digits), or None when it is not one. Only the tail leaves this function."""
    n = number.strip().upper()
    if len(n) == 15 and n.isdigit() and n.isascii():
        return n[-records.ID_TAIL:]
    if len(n) != 18 or not n[:17].isdigit() or not n[:17].isascii():
        return None
    check = _ID_CHECK[sum(int(d) * w for d, w in zip(n[:17], _ID_WEIGHTS)) % 11]
    return n[-records.ID_TAIL:] if n[17] == check else None


def fee_cents(cfg: TerminalConfig, carrier: str, weight_g: int, produce: str) -> tuple[int, str]:
    """Outbound fee from the station's table: first kg, each further kg started, a produce discount."""
    rule = cfg.fees.get(carriers.code_of(carrier) or "") or cfg.fees.get("*") or FeeRule()
    kg = max(1, -(-weight_g // 1000))
    fee = rule.first_kg_cents + (kg - 1) * rule.extra_kg_cents
    reason = f"{kg} kg: {rule.first_kg_cents} + {kg - 1} x {rule.extra_kg_cents}"
    if produce and rule.produce_discount_pct:
        fee = fee * (100 - rule.produce_discount_pct) // 100
        reason += f", produce -{rule.produce_discount_pct}%"
    return fee, reason


class OutboundBook:
    """The station's outbound parcels (table `outbound`): each change and its record for the cloud in one
    transaction, so the book and the outbox never disagree, with the uplink up or down."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def take_in(self, rec: dict) -> None:
        """An outbound parcel taken in (its `outbound` record, already checked, holds only the ID's tail)."""
        protocol.check_record(C.KIND_OUTBOUND, rec)

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO outbound (ref, carrier, dest, weight_g, taken_by, taken, state) "
                         "VALUES (?,?,?,?,?,?,'taken_in')",
                         (rec["ref"], rec["carrier"], rec["dest"], rec["weight_g"], rec["by"], time.time()))
            self.outbox.insert_in_tx(conn, Record(src=C.SRC_GATEWAY, kind=C.KIND_OUTBOUND, body=rec))
        await self.outbox.run(tx)

    async def waiting(self, carrier: str | None = None, *, limit: int = 200) -> list[dict]:
        """Outbound parcels waiting for their carrier's courier (of one carrier, or all), oldest first."""
        where, args = ("state='taken_in' AND carrier=?", (carrier,)) if carrier else ("state='taken_in'", ())
        rows = await self.outbox.query(lambda conn: conn.execute(
            f"SELECT {', '.join(_COLS)} FROM outbound WHERE {where} ORDER BY taken LIMIT ?",
            (*args, limit)).fetchall())
        return [dict(zip(_COLS, r)) for r in rows]

    async def collect(self, ref: str, *, carrier: str, by: str, waybill: str | None) -> dict:
        """The carrier's courier collects a parcel: `collected`, with the carrier's waybill; UnknownParcel,
        NotCollectable (collected already, or another carrier's)."""
        at = int(time.time())
        body = {"ref": ref, "carrier": carrier, "by": by, "at": at}
        if waybill:
            body["waybill"] = waybill
        protocol.check_record(C.KIND_COLLECTED, body)

        def tx(conn: sqlite3.Connection) -> dict:
            row = conn.execute("SELECT state, carrier, dest, weight_g FROM outbound WHERE ref=?", (ref,)).fetchone()
            if row is None:
                raise UnknownParcel(ref)
            if row[0] != "taken_in" or row[1] != carrier:
                raise NotCollectable(ref)
            conn.execute("UPDATE outbound SET state='collected', collected_by=?, collected=?, waybill=? WHERE ref=?",
                         (by, at, waybill, ref))
            self.outbox.insert_in_tx(conn, Record(src=C.SRC_GATEWAY, kind=C.KIND_COLLECTED, body=body))
            return {**body, "dest": row[2], "weight_g": row[3]}
        return await self.outbox.run(tx)
