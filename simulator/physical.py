"""The physical ledger: what is inside each compartment against what the cloud and the villagers were told.

The simulated boards know which parcels people put into each compartment and took out (`BoardSim.contents`).
At the end of a run every parcel physically inside must be held by the cloud as in that compartment, with
a live pickup code that reached its recipient by SMS, or be on the station agent's found-parcel list;
otherwise it is **stranded** (nobody will ever come for it). Every parcel the cloud holds as in a locker
must be physically in that compartment; otherwise it is a **phantom** (a villager holds a code for an empty
door). `reconcile()` is pure; `read_cloud()` reads the cloud's own database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from simulator.ledger import LedgerError

IN_LOCKER = ("deposited", "notified", "overdue")  # cloud statuses of a parcel that lies in a compartment
NO_SMS = "no SMS reached the recipient"


@dataclass(frozen=True)
class CloudParcel:
    """An inbound parcel as the cloud holds it."""

    waybill: str
    ref: str
    station: str
    locker: str | None
    c: int | None
    status: str


@dataclass(frozen=True)
class CloudView:
    """The cloud's parcels by waybill and its live (unused, unexpired) codes: (station, code) -> refs."""

    parcels: dict[str, CloudParcel]
    live_codes: dict[tuple[str, str], frozenset[str]]


def read_cloud(db_url: str, now: float | None = None) -> CloudView:
    """Inbound parcels and live pickup codes from the cloud's database."""
    now = now or time.time()
    eng = create_engine(db_url)
    try:
        with eng.connect() as conn:
            rows = conn.execute(text(
                "SELECT waybill, ref, station_id, locker_id, compartment, status FROM parcels "
                "WHERE direction = 'inbound' AND waybill IS NOT NULL")).all()
            codes = conn.execute(text(
                "SELECT station_id, code, refs, exp FROM pickup_codes WHERE used = :f"), {"f": False}).all()
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the cloud database: {exc}") from exc
    finally:
        eng.dispose()
    parcels = {r[0]: CloudParcel(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}
    live: dict[tuple[str, str], frozenset[str]] = {}
    for st, code, refs, exp in codes:
        if exp is not None and exp <= now:
            continue
        refs = json.loads(refs) if isinstance(refs, str) else (refs or [])
        live[(st, code)] = live.get((st, code), frozenset()) | frozenset(refs)
    return CloudView(parcels, live)


def reconcile(inside: dict[str, dict[int, list[str]]], cloud: CloudView, sms: dict[str, str],
              found: AbstractSet[str] = frozenset()) -> dict:
    """inside: locker -> compartment -> parcels physically there; sms: parcel ref -> code the recipient got;
    found: waybills on the agents' found-parcel lists. Returns the stranded and phantom parcels, each with
    its reason."""
    stranded, phantom, on_list = [], [], []
    for locker, comps in inside.items():
        for c, items in comps.items():
            for wb in items:
                if wb in found:
                    on_list.append({"waybill": wb, "locker": locker, "c": c})
                    continue
                why = _why_stranded(wb, locker, c, cloud, sms, found)
                if why:
                    stranded.append({"waybill": wb, "locker": locker, "c": c, "why": why})
    for p in cloud.parcels.values():
        there = inside.get(p.locker or "", {}).get(p.c, []) if p.c is not None else []
        if p.status in IN_LOCKER and p.waybill not in there:
            where = [f"{lk}/{c}" for lk, comps in inside.items() for c, items in comps.items() if p.waybill in items]
            phantom.append({"waybill": p.waybill, "locker": p.locker, "c": p.c, "status": p.status,
                            "physically_at": where})
    return {"stranded_parcels": len(stranded), "phantom_parcels": len(phantom), "stranded": stranded,
            "phantom": phantom, "found": on_list}


def _why_stranded(wb: str, locker: str, c: int, cloud: CloudView, sms: dict[str, str],
                  found: AbstractSet[str]) -> str:
    if wb in found:
        return ""
    p = cloud.parcels.get(wb)
    if p is None:
        return "unknown to the cloud"
    if p.status not in IN_LOCKER:
        return f"cloud status {p.status}"
    if (p.locker, p.c) != (locker, c):
        return f"cloud holds it at {p.locker}/{p.c}"
    code = sms.get(p.ref)
    if code is None:
        return NO_SMS
    if p.ref not in cloud.live_codes.get((p.station, code), frozenset()):
        return "the code sent is not live for it"
    return ""
