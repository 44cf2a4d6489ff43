"""Enrollment routes: an admin issues a station's one-time token; the station's gateway redeems it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from . import enroll
from .auth import Principal, allow
from .constants import API_PREFIX
from .errors import Conflict, NotFound
from .schemas import STATION_ID
from .storage import SessionDep

router = APIRouter(prefix=API_PREFIX, tags=["enrollment"])
StationPath = Annotated[str, Path(pattern=STATION_ID)]


@router.post("/admin/stations/{station_id}/enroll-token", status_code=201, response_model=enroll.TokenIssued)
def issue_token(station_id: StationPath, data: enroll.TokenIssue, session: SessionDep,
                who: Annotated[Principal, Depends(allow("admin"))]) -> enroll.TokenIssued:
    """A one-time enrollment token for a station's gateway (shown once; only its hash is kept)."""
    try:
        issued = enroll.issue_token(session, who, station_id=station_id, ttl_s=data.ttl_s)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    session.commit()
    return issued


@router.post("/enroll", response_model=enroll.Enrollment)
def redeem(data: enroll.EnrollRequest, request: Request, session: SessionDep) -> enroll.Enrollment:
    """Trade a one-time token for the station's identity, lockers, couriers and a new gateway API key."""
    peer = request.client.host if request.client else "unknown"
    try:
        got = enroll.redeem(session, token=data.token, peer=peer)
    except enroll.EnrollRefused as exc:
        session.rollback()
        raise HTTPException(exc.status_code, exc.detail) from None
    session.commit()
    return got
