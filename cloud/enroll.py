"""Station enrollment: one-time tokens a station's gateway trades for its identity, lockers and couriers."""

from __future__ import annotations

import hashlib
import secrets
import time

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .accounts import station_staff
from .auth import Principal
from .commands import audit
from .crud import hash_key
from .errors import Conflict, NotFound
from .models import Compartment, EnrollToken, Locker, Station
from .storage import rows_touched

TTL_DEFAULT_S = 24 * 3600
TTL_MAX_S = 7 * 24 * 3600
TOKEN_BYTES = 24   # 192 random bits: not guessable, so a plain SHA-256 is enough to store it
API_KEY_BYTES = 32


class EnrollRefused(Exception):
    """A token that is unknown, used, expired or for a station that cannot be enrolled now."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class TokenIssue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_s: int = Field(TTL_DEFAULT_S, ge=60, le=TTL_MAX_S)


class TokenIssued(BaseModel):
    station: str
    token: str
    expires_at: float


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class EnrollComp(BaseModel):
    n: int
    size: str


class EnrollLocker(BaseModel):
    id: str
    comps: list[EnrollComp]


class EnrollCourier(BaseModel):
    """A courier (`c<n>`) or station agent (`a<n>`) of the station, as the gateway's staff sync lists them too."""

    id: str
    name: str
    role: str = "courier"
    carrier: str
    pin_hash: str  # hashed by the one PIN rule (jincun/pins.py): the terminal checks the PIN offline with it


class EnrollStation(BaseModel):
    id: str
    name: str
    kind: str


class Enrollment(BaseModel):
    station: EnrollStation
    api_key: str
    lockers: list[EnrollLocker]
    couriers: list[EnrollCourier]


def token_hash(token: str) -> str:
    """The stored form of an enrollment token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(session: Session, who: Principal, *, station_id: str, ttl_s: int = TTL_DEFAULT_S,
                now: float | None = None) -> TokenIssued:
    """A fresh single-use token for a station; earlier unused ones are withdrawn. Caller commits."""
    if not 60 <= ttl_s <= TTL_MAX_S:
        raise Conflict(f"a token lives 60 s to {TTL_MAX_S // 3600} h, not {ttl_s} s")
    station = session.get(Station, station_id)
    if station is None:
        raise NotFound(f"no station {station_id}")
    if not station.active:
        raise Conflict(f"station {station_id} is retired")
    now = time.time() if now is None else now
    # one live token per station: a token that was handed out twice by mistake dies with the new one
    session.execute(update(EnrollToken).where(EnrollToken.station_id == station_id, EnrollToken.used_at.is_(None),
                                              EnrollToken.expires_at > now).values(expires_at=now))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(EnrollToken(station_id=station_id, token_hash=token_hash(token), issued_by=who.name,
                            created_at=now, expires_at=now + ttl_s, used_at=None))
    audit(session, who, "enroll_token", station_id, expires_at=now + ttl_s)
    return TokenIssued(station=station_id, token=token, expires_at=now + ttl_s)


def _lockers(session: Session, station_id: str) -> list[EnrollLocker]:
    comps: dict[str, list[EnrollComp]] = {}
    for c in session.scalars(select(Compartment).where(Compartment.station_id == station_id)
                             .order_by(Compartment.locker_id, Compartment.n)):
        comps.setdefault(c.locker_id, []).append(EnrollComp(n=c.n, size=c.size))
    ids = session.scalars(select(Locker.id).where(Locker.station_id == station_id, Locker.active.is_(True))
                          .order_by(Locker.id))
    return [EnrollLocker(id=lid, comps=comps.get(lid, [])) for lid in ids]


def _couriers(session: Session, station_id: str) -> list[EnrollCourier]:
    return [EnrollCourier(**u.model_dump()) for u in station_staff(session, station_id)]


def redeem(session: Session, *, token: str, peer: str, now: float | None = None) -> Enrollment:
    """Trade a token for the station's identity and a new gateway API key (only its hash is kept).

    The token is spent by one conditional UPDATE, so two gateways racing with the same token cannot both
    win. The station's previous API key stops working. Caller commits.
    """
    now = time.time() if now is None else now
    row = session.scalar(select(EnrollToken).where(EnrollToken.token_hash == token_hash(token)))
    if row is None:
        raise EnrollRefused(403, "unknown enrollment token")
    if row.used_at is not None:
        raise EnrollRefused(403, "this enrollment token was used already: ask the county for a new one")
    if row.expires_at <= now:
        raise EnrollRefused(403, "this enrollment token has expired: ask the county for a new one")
    station = session.get(Station, row.station_id)
    if station is None or not station.active:
        raise EnrollRefused(409, f"station {row.station_id} is retired")
    lockers = _lockers(session, station.id)
    if not lockers or any(not lk.comps for lk in lockers):
        # refused before the token is spent: the county registers the lockers and the same token works
        raise EnrollRefused(409, f"station {station.id} has no lockers with compartments registered yet")
    spent = session.execute(update(EnrollToken).where(EnrollToken.id == row.id, EnrollToken.used_at.is_(None))
                            .values(used_at=now))
    if rows_touched(spent) != 1:
        raise EnrollRefused(403, "this enrollment token was used already: ask the county for a new one")
    api_key = secrets.token_urlsafe(API_KEY_BYTES)
    station.api_key_hash = hash_key(api_key)
    audit(session, Principal(name=f"gateway@{peer}"[:64], role="gateway", station_id=station.id), "enroll",
          station.id, lockers=len(lockers))
    return Enrollment(station=EnrollStation(id=station.id, name=station.name, kind=station.kind),
                      api_key=api_key, lockers=lockers, couriers=_couriers(session, station.id))
