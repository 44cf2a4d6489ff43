"""The carrier's side of a parcel: pre-advice manifests (idempotent by carrier and waybill) and the carrier's
view of its own parcels. The carrier API's routes call these; a refusal is a `CommandRefused` or `NotFound`.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from jc.records import FEE_KINDS, PICKUP_FREE

from . import crud, recipients
from .errors import CommandRefused, NotFound
from .parcels import advance
from .models import Parcel, Recipient, Station
from .schemas import CarrierParcelPublic, Manifest, ManifestResult
from .settings import Settings


def parcel_ref(carrier: str, waybill: str) -> str:
    """Parcel ref of a pre-advised parcel: stable, so a re-sent manifest finds the same parcel."""
    return f"{carrier.lower()}-{waybill}"[:40]


def preadvise(session: Session, settings: Settings, *, carrier: str, data: Manifest) -> ManifestResult:
    """Pre-advise a manifest's parcels, checked whole first. A fee must carry its reason and its kind; a fee
    of a kind the recipient never pays (`pickup`, jc.records.PICKUP_FREE) refuses the manifest. A station now
    expecting a parcel of a villager who chose door-to-door help is sent that choice (recipients.parcel_arrived)."""
    stations = {s.id: s for s in session.scalars(select(Station).where(
        Station.id.in_({p.station for p in data.parcels}))).all()}
    for i, p in enumerate(data.parcels):
        if p.station not in stations or not stations[p.station].active:
            raise CommandRefused(422, f"parcels[{i}]: unknown or inactive station {p.station}")
        if p.fee_cents and not (p.fee_reason and p.fee_kind):
            raise CommandRefused(422, f"parcels[{i}]: a fee needs fee_reason and fee_kind, so it can be audited")
        if p.fee_kind is not None and p.fee_kind not in FEE_KINDS:
            raise CommandRefused(422, f"parcels[{i}]: fee_kind must be one of {', '.join(FEE_KINDS)}")
        if p.fee_cents and p.fee_kind in PICKUP_FREE:
            raise CommandRefused(422, f"parcels[{i}]: pickup is free; no pickup fee may be charged")
    created = existing = 0
    refs = []
    now = time.time()
    door = set(session.scalars(select(Recipient.phone).where(
        Recipient.phone.in_({p.phone for p in data.parcels}), Recipient.door_help.is_(True))).all())
    for p in data.parcels:
        ref = parcel_ref(carrier, p.waybill)
        parcel = session.scalar(select(Parcel).where(Parcel.ref == ref))
        if parcel is not None:
            existing += 1
            refs.append(ref)
            continue
        parcel = Parcel(ref=ref, waybill=p.waybill, carrier=carrier, direction=p.direction, phone=p.phone,
                        recipient_name=p.name, station_id=p.station, size=p.size, status="preadvised",
                        produce=p.produce, fee_cents=p.fee_cents, fee_reason=p.fee_reason,
                        fee_kind=p.fee_kind if p.fee_cents else None, created_at=now,
                        updated_at=now, reminders=0)
        session.add(parcel)
        session.flush()
        advance(session, parcel, "preadvised", now, f"carrier:{carrier}:{data.manifest_id}")
        if p.direction == "inbound":
            recipients.parcel_arrived(session, settings, phone=p.phone, station_id=p.station,
                                      door_help=p.phone in door)
        if p.name and session.get(Recipient, p.phone) is None:
            session.add(Recipient(phone=p.phone, name=p.name, consent="unknown", door_help=False, updated_at=now))
            session.flush()
        created += 1
        refs.append(ref)
    return ManifestResult(manifest_id=data.manifest_id, created=created, existing=existing, refs=refs)


def own_parcel(session: Session, *, carrier: str | None, waybill: str) -> Parcel:
    """The carrier's newest parcel of a waybill, or NotFound."""
    parcel = session.scalar(select(Parcel).where(Parcel.waybill == waybill, Parcel.carrier == carrier)
                            .order_by(Parcel.id.desc()).limit(1))
    if parcel is None:
        raise NotFound(f"no parcel {waybill} of carrier {carrier}")
    return parcel


def carrier_view(session: Session, *, ref: str) -> CarrierParcelPublic:
    """A parcel as its carrier sees it: status and timeline, no recipient details."""
    pub = crud.get_parcel(session, ref=ref)
    return CarrierParcelPublic(waybill=pub.waybill, ref=pub.ref, station_id=pub.station_id, direction=pub.direction,
                               status=pub.status, deposited_at=pub.deposited_at, picked_up_at=pub.picked_up_at,
                               fee_cents=pub.fee_cents, fee_reason=pub.fee_reason, timeline=pub.timeline)


def changed_since(session: Session, *, carrier: str | None, since: float, limit: int) -> list[CarrierParcelPublic]:
    """The carrier's parcels changed since `since` (Unix seconds), oldest change first."""
    refs = session.scalars(select(Parcel.ref).where(Parcel.carrier == carrier, Parcel.updated_at > since)
                           .order_by(Parcel.updated_at).limit(limit)).all()
    return [carrier_view(session, ref=ref) for ref in refs]
