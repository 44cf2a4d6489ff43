"""Carrier API (carrier API key): pre-advice manifests, parcel status, "signed" reports."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from . import constants as K
from . import lifecycle, manifests
from .auth import Principal, allow
from .deps import ServicesDep
from .errors import CommandRefused, NotFound
from .models import Parcel
from .schemas import CarrierParcelPublic, Manifest, ManifestResult, SignedReport, SignedResult
from .storage import SessionDep

log = logging.getLogger("jincun.cloud.carrier")
router = APIRouter(prefix=f"{K.API_PREFIX}/carrier", tags=["carrier"])
Client = Annotated[Principal, Depends(allow("carrier_client"))]
Waybill = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{4,64}$")]


@router.post("/manifests", response_model=ManifestResult, tags=["carrier"])
def post_manifest(data: Manifest, session: SessionDep, services: ServicesDep, who: Client) -> ManifestResult:
    """Pre-advise parcels; idempotent by (carrier, waybill). Fees must carry a reason; pickup is free."""
    try:
        result = manifests.preadvise(session, services.settings, carrier=who.carrier_code or "", data=data)
    except CommandRefused as exc:
        raise HTTPException(exc.status_code, exc.detail) from exc
    session.commit()
    services.counters.inc("manifest_parcels", result.created)
    return result


def _own(session, who: Principal, waybill: str) -> Parcel:
    try:
        return manifests.own_parcel(session, carrier=who.carrier_code, waybill=waybill)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/parcels/{waybill}", response_model=CarrierParcelPublic)
def parcel_status(waybill: Waybill, session: SessionDep, who: Client) -> CarrierParcelPublic:
    """Status and timeline of one of the carrier's parcels."""
    return manifests.carrier_view(session, ref=_own(session, who, waybill).ref)


@router.get("/parcels", response_model=list[CarrierParcelPublic])
def parcels_since(session: SessionDep, who: Client, since: Annotated[float, Query(ge=0, le=1e11)] = 0,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[CarrierParcelPublic]:
    """The carrier's parcels changed since `since` (Unix seconds), oldest change first."""
    return manifests.changed_since(session, carrier=who.carrier_code, since=since, limit=limit)


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
