"""Extra charges (二次收费): what villagers report on the phone page and station agents record at the terminal,
and their rows in the county's fees statistics (with the carrier)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jc.records import CHARGE_TEXT_MAX, FEE_CENTS_MAX, FEE_KINDS
from jincun.carriers import code_of

from .errors import CommandRefused
from .models import Charge, Parcel, Station

# what a villager may say they were charged for on the phone page (postage is what a sender pays)
VILLAGER_KINDS = tuple(k for k in FEE_KINDS if k != "postage")
# reports a villager may make in a day: a person charged every day by every carrier files a handful
VILLAGER_DAILY = 5


def parse_yuan(text: str) -> int:
    """An amount typed in yuan (`3`, `2.5`, `1.50`) as cents; CommandRefused when it is not one."""
    t = text.strip()
    whole, _, frac = t.partition(".")
    if not whole.isdigit() or not whole.isascii() or len(whole) > 6 or (frac and not (frac.isdigit() and
                                                                                  len(frac) <= 2)):
        raise CommandRefused(422, "amount must be yuan, e.g. 3 or 2.50")
    cents = int(whole) * 100 + int((frac or "0").ljust(2, "0"))
    if not 1 <= cents <= FEE_CENTS_MAX:
        raise CommandRefused(422, "amount out of range")
    return cents


def report(session: Session, *, phone: str, carrier: str, kind: str, cents: int, ref: str | None,
           text: str) -> Charge:
    """A villager's report of an extra charge; the parcel, when named, must be theirs and gives the station
    (else their latest parcel's station). Caller commits."""
    code = code_of(carrier)
    if not code or kind not in VILLAGER_KINDS:
        raise CommandRefused(422, "carrier and kind are required")
    parcel = None
    if ref:
        parcel = session.scalar(select(Parcel).where(Parcel.ref == ref, Parcel.phone == phone))
        if parcel is None:
            raise CommandRefused(422, "not your parcel")
    station = parcel.station_id if parcel is not None else session.scalar(
        select(Parcel.station_id).where(Parcel.phone == phone).order_by(Parcel.updated_at.desc()).limit(1))
    row = Charge(station_id=station, carrier=code, kind=kind, cents=cents, parcel_ref=parcel.ref if parcel else None,
                 waybill=parcel.waybill if parcel else None, phone=phone,
                 text=text.strip()[:CHARGE_TEXT_MAX] or None, source="villager", by=f"recipient-{phone}",
                 at=time.time())
    session.add(row)
    session.flush()
    return row


def of_phone(session: Session, *, phone: str, limit: int = 20) -> list[Charge]:
    """The charges a villager reported, newest first (their phone page lists them)."""
    return list(session.scalars(select(Charge).where(Charge.phone == phone, Charge.source == "villager")
                                .order_by(Charge.at.desc()).limit(limit)).all())


def fee_rows(session: Session, *, since: float) -> list[tuple[Any, ...]]:
    """Charges since `since` grouped by station, carrier, kind and who reported them: (station id, station
    name, carrier, kind, source, how many, cents). A charge with no known station has station None."""
    stmt = (select(Charge.station_id, Station.name, Charge.carrier, Charge.kind, Charge.source, func.count(),
                   func.sum(Charge.cents)).select_from(Charge).outerjoin(Station, Station.id == Charge.station_id)
            .where(Charge.at >= since)
            .group_by(Charge.station_id, Station.name, Charge.carrier, Charge.kind, Charge.source))
    return [tuple(r) for r in session.execute(stmt).all()]

