"""Staff HTTP API for alerts to people: the episodes told so far, and each station's maintenance phone."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from jincun.phone import PHONE_PATTERN

from . import alerts
from . import constants as K
from .audit import audit
from .auth import allow
from .principal import OPS_VIEW, Principal
from .storage import SessionDep

router = APIRouter(prefix=K.API_PREFIX, tags=["maintenance"])
StationPath = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,32}$")]


class AlertPublic(BaseModel):
    """One alert episode: what, where, when it started and (once over) when it ended."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    station_id: str
    locker_id: str
    c: int | None
    kind: str
    opened_at: float
    closed_at: float | None
    detail: str | None


class MaintPhone(BaseModel):
    """The phone that gets a station's alerts by SMS; null sends them to the county's duty phone."""

    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)


@router.get("/alerts", response_model=list[AlertPublic])
def list_alerts(session: SessionDep, who: Annotated[Principal, Depends(allow(*OPS_VIEW))],
                station: Annotated[str | None, Query(pattern=r"^[a-z0-9-]{1,32}$")] = None,
                open_only: bool = False, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list:
    """Alert episodes, newest first (a station agent sees only their station)."""
    if who.role == "station_agent":
        station = who.station_id
    return alerts.list_episodes(session, station=station, open_only=open_only, limit=limit)


@router.put("/stations/{station}/maint-phone", response_model=MaintPhone)
def set_maint_phone(station: StationPath, body: MaintPhone, session: SessionDep,
                    who: Annotated[Principal, Depends(allow("admin", "maintenance"))]) -> MaintPhone:
    """Set the phone a station's alerts go to (audited; the number is masked in the audit line)."""
    if not alerts.set_maint_phone(session, station, body.phone):
        raise HTTPException(404, f"no station {station}")
    audit(session, who, "maint_phone", station, None, phone=(body.phone or "")[-4:])
    session.commit()
    return body
