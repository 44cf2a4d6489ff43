"""Carrier API (carrier API key): pre-advice manifests, parcel status, "signed" reports."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy import select

from . import constants as K
from . import crud, lifecycle
from .auth import Principal, allow
from .deps import ServicesDep
from .models import Parcel, Recipient, Station
from .parcels import advance
from .schemas import CarrierParcelPublic, Manifest, ManifestResult, SignedReport, SignedResult
from .storage import SessionDep

log = logging.getLogger("jincun.cloud.carrier")
router = APIRouter(prefix=f"{K.API_PREFIX}/carrier", tags=["carrier"])
Client = Annotated[Principal, Depends(allow("carrier_client"))]
Waybill = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{4,64}$")]


def _ref(carrier: str, waybill: str) -> str:
    """Parcel ref of a pre-advised parcel: stable, so a re-sent manifest finds the same parcel."""
    return f"{carrier.lower()}-{waybill}"[:40]


@router.post("/manifests", response_model=ManifestResult, tags=["carrier"])
def post_manifest(data: Manifest, session: SessionDep, services: ServicesDep, who: Client) -> ManifestResult:
    """Pre-advise parcels; idempotent by (carrier, waybill). Fees must carry a reason; pickup is free."""
    carrier = who.carrier_code or ""
    stations = {s.id: s for s in session.scalars(select(Station).where(
        Station.id.in_({p.station for p in data.parcels}))).all()}
    for i, p in enumerate(data.parcels):
        if p.station not in stations or not stations[p.station].active:
            raise HTTPException(422, f"parcels[{i}]: unknown or inactive station {p.station}")
        if p.fee_cents and not p.fee_reason:
            raise HTTPException(422, f"parcels[{i}]: a fee needs fee_reason, so it can be audited")
        if p.fee_reason and ("pickup" in p.fee_reason.lower() or "取件" in p.fee_reason):
            raise HTTPException(422, f"parcels[{i}]: pickup is free; no pickup fee may be charged")
    created = existing = 0
    refs = []
    now = time.time()
    for p in data.parcels:
        ref = _ref(carrier, p.waybill)
        parcel = session.scalar(select(Parcel).where(Parcel.ref == ref))
        if parcel is not None:
            existing += 1
            refs.append(ref)
            continue
        parcel = Parcel(ref=ref, waybill=p.waybill, carrier=carrier, direction=p.direction, phone=p.phone,
                        recipient_name=p.name, station_id=p.station, size=p.size, status="preadvised",
                        produce=p.produce, fee_cents=p.fee_cents, fee_reason=p.fee_reason, created_at=now,
                        updated_at=now, reminders=0)
        session.add(parcel)
        session.flush()
        advance(session, parcel, "preadvised", now, f"carrier:{carrier}:{data.manifest_id}")
        if p.name and session.get(Recipient, p.phone) is None:
            session.add(Recipient(phone=p.phone, name=p.name, consent="unknown", door_help=False, updated_at=now))
            session.flush()
        created += 1
        refs.append(ref)
    session.commit()
    services.counters.inc("manifest_parcels", created)
    return ManifestResult(manifest_id=data.manifest_id, created=created, existing=existing, refs=refs)


def _own(session, who: Principal, waybill: str) -> Parcel:
    parcel = session.scalar(select(Parcel).where(Parcel.waybill == waybill, Parcel.carrier == who.carrier_code)
                            .order_by(Parcel.id.desc()).limit(1))
    if parcel is None:
        raise HTTPException(404, f"no parcel {waybill} of carrier {who.carrier_code}")
    return parcel


@router.get("/parcels/{waybill}", response_model=CarrierParcelPublic)
def parcel_status(waybill: Waybill, session: SessionDep, who: Client) -> CarrierParcelPublic:
    """Status and timeline of one of the carrier's parcels."""
    parcel = _own(session, who, waybill)
    pub = crud.get_parcel(session, ref=parcel.ref)
    return CarrierParcelPublic(waybill=pub.waybill, ref=pub.ref, station_id=pub.station_id, direction=pub.direction,
                               status=pub.status, deposited_at=pub.deposited_at, picked_up_at=pub.picked_up_at,
                               fee_cents=pub.fee_cents, fee_reason=pub.fee_reason, timeline=pub.timeline)


@router.get("/parcels", response_model=list[CarrierParcelPublic])
def parcels_since(session: SessionDep, who: Client, since: Annotated[float, Query(ge=0, le=1e11)] = 0,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[CarrierParcelPublic]:
    """The carrier's parcels changed since `since` (Unix seconds), oldest change first."""
    rows = session.scalars(select(Parcel.ref).where(Parcel.carrier == who.carrier_code, Parcel.updated_at > since)
                           .order_by(Parcel.updated_at).limit(limit)).all()
    out = []
    for ref in rows:
        pub = crud.get_parcel(session, ref=ref)
        out.append(CarrierParcelPublic(waybill=pub.waybill, ref=pub.ref, station_id=pub.station_id,
                                       direction=pub.direction, status=pub.status, deposited_at=pub.deposited_at,
                                       picked_up_at=pub.picked_up_at, fee_cents=pub.fee_cents,
                                       fee_reason=pub.fee_reason, timeline=pub.timeline))
    return out


@router.post("/parcels/{waybill}/signed", response_model=SignedResult)
def report_signed(waybill: Waybill, data: SignedReport, session: SessionDep, services: ServicesDep,
                  who: Client) -> SignedResult:
    """The carrier reports the parcel signed for; a locker parcel without deposit and pickup evidence is flagged."""
    parcel = _own(session, who, waybill)
    flag = lifecycle.carrier_signed(session, parcel, at=data.at or time.time())
    session.commit()
    if flag is not None:
        services.counters.inc("signoff_flags")
    return SignedResult(waybill=waybill, status=parcel.status, flagged=flag is not None,
                        missing=flag.evidence.get("missing", []) if flag is not None else [])
