"""Admin and read HTTP routes (admin token), plus the open health check."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from . import auth, crud, lifecycle, lookups
from .constants import API_PREFIX
from .auth import STAFF_READ, STAFF_SECURITY, Principal, allow
from .deps import ServicesDep
from .errors import Conflict, NotFound
from .schemas import (HealthPublic, LedgerPublic, LockerCreate, LockerPublic, NotificationPublic, ParcelPublic,
                      ReasonBody, StationCreate, StationPublic)
from .storage import SessionDep

log = logging.getLogger("jincun.cloud.api")
router = APIRouter(prefix=API_PREFIX)
admin = APIRouter(prefix=API_PREFIX, dependencies=[Depends(allow("admin"))])
read = APIRouter(prefix=API_PREFIX, dependencies=[Depends(allow(*STAFF_READ))])


@router.get("/health", response_model=HealthPublic, tags=["health"])
def health(session: SessionDep, services: ServicesDep) -> HealthPublic:
    """Liveness, database reachability and the ingest/SMS counters."""
    try:
        session.execute(text("SELECT 1"))
        db = "ok"
    except SQLAlchemyError as exc:
        services.counters.inc("health_db_errors")
        log.error("health check: database unreachable: %s", exc)
        db = "unreachable"
    counters = services.counters.snapshot()
    for name in ("ingest_applied", "ingest_duplicate", "ingest_rejected"):
        counters.setdefault(name, 0)
    return HealthPublic(status="ok" if db == "ok" else "degraded", db=db, counters=counters)


Admin = Annotated[Principal, Depends(allow("admin"))]
StationPath = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,32}$")]


@admin.post("/admin/stations", status_code=201, response_model=StationPublic, tags=["admin"])
def create_station(data: StationCreate, session: SessionDep, who: Admin) -> StationPublic:
    """Register a station (its API key, or none until its gateway enrolls); audited."""
    try:
        station = crud.create_station(session, data=data, who=who)
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    session.commit()
    return crud.list_stations(session, station_id=station.id)[0]


@admin.post("/admin/stations/{station_id}/lockers", status_code=201, response_model=LockerPublic, tags=["admin"])
def add_locker(station_id: str, data: LockerCreate, session: SessionDep, who: Admin) -> LockerPublic:
    """Register a locker and its compartments; audited."""
    try:
        crud.add_locker(session, station_id=station_id, data=data, who=who)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    session.commit()
    station = crud.list_stations(session, station_id=station_id)[0]
    return next(locker for locker in station.lockers if locker.id == data.id)


@admin.post("/admin/stations/{station_id}/retire", response_model=StationPublic, tags=["admin"])
def retire_station(station_id: StationPath, data: ReasonBody, session: SessionDep, who: Admin) -> StationPublic:
    """Retire a station: kept for history, its gateway no longer accepted; audited."""
    try:
        crud.retire_station(session, who, station_id=station_id, reason=data.reason)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    session.commit()
    return crud.list_stations(session, station_id=station_id)[0]


@admin.post("/admin/stations/{station_id}/lockers/{locker_id}/retire", response_model=LockerPublic, tags=["admin"])
def retire_locker(station_id: StationPath, locker_id: StationPath, data: ReasonBody, session: SessionDep,
                  who: Admin) -> LockerPublic:
    """Retire a locker: kept for history, left out of the station's enrollment; audited."""
    try:
        crud.retire_locker(session, who, station_id=station_id, locker_id=locker_id, reason=data.reason)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    session.commit()
    station = crud.list_stations(session, station_id=station_id)[0]
    return next(locker for locker in station.lockers if locker.id == locker_id)


@admin.get("/admin/ledger", response_model=LedgerPublic, tags=["admin"])
def ledger(session: SessionDep, station: Annotated[str, Query(min_length=1, max_length=32)]) -> dict:
    """Every locker event held for a station and parcel status counts."""
    return crud.ledger(session, station=station)


@admin.post("/admin/sweep", tags=["admin"])
def sweep(session: SessionDep, services: ServicesDep, at: float | None = None) -> dict[str, int]:
    """Run the lifecycle sweep now (reminders, overdue and returns, never delivered). `at` moves its clock, in
    the demo only: the scripted day and the journey tests play a week in a minute."""
    if at is not None and not services.settings.demo:
        raise HTTPException(403, "the sweep's clock moves in the demo only")
    done = lifecycle.sweep(session, services.settings, now=at)
    session.commit()
    return done


@read.get("/parcels", response_model=list[ParcelPublic], tags=["parcels"])
def parcels(session: SessionDep, waybill: str | None = None, phone: str | None = None, station: str | None = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[ParcelPublic]:
    """Parcels with status and timeline."""
    return crud.list_parcels(session, waybill=waybill, phone=phone, station=station, limit=limit)


@router.get("/parcels/{ref}", response_model=ParcelPublic, tags=["parcels"], dependencies=STAFF_SECURITY)
async def parcel(ref: Annotated[str, Path(min_length=1, max_length=64)], request: Request,
                 services: ServicesDep) -> Response:
    """One parcel with its timeline."""
    await auth.authorize(request, services, STAFF_READ)
    found = await lookups.parcel_by_ref_any(services, ref)
    if found is None:
        raise HTTPException(404, f"no parcel {ref}")
    return lookups.json_response(found)


@read.get("/notifications", response_model=list[NotificationPublic], tags=["sms"])
def notifications(session: SessionDep, phone: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[NotificationPublic]:
    """The SMS outbox, newest first."""
    return crud.list_notifications(session, phone=phone, limit=limit)


@read.get("/stations", response_model=list[StationPublic], tags=["stations"])
def stations(session: SessionDep) -> list[StationPublic]:
    """Stations with lockers and compartments."""
    return crud.list_stations(session)
