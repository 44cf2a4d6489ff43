"""Staff accounts, carriers, carrier API clients and couriers: the rules for creating them, and their rows.

Keyword-only functions that the staff routes call; each audits what it creates and leaves the commit to the
caller. A refusal is a `CommandRefused` with its HTTP status, `Conflict` or `NotFound`.
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import commands
from .auth import hash_secret
from .crud import hash_key
from .errors import CommandRefused, Conflict, NotFound
from .models import ApiClient, Carrier, Courier, Station, User
from .principal import Principal
from .schemas import ApiClientCreate, ApiClientCreated, CarrierCreate, CourierCreate, UserCreate


def create_user(session: Session, who: Principal, *, data: UserCreate) -> User:
    """A staff account, with its bindings checked (an agent's station, a courier's carrier)."""
    if data.role == "station_agent" and not data.station_id:
        raise CommandRefused(422, "a station agent needs station_id")
    if data.role == "courier" and not data.carrier_code:
        raise CommandRefused(422, "a courier needs carrier_code")
    if data.carrier_code and session.get(Carrier, data.carrier_code) is None:
        raise CommandRefused(422, f"unknown carrier {data.carrier_code}")
    if data.station_id and session.get(Station, data.station_id) is None:
        raise CommandRefused(422, f"unknown station {data.station_id}")
    if session.scalar(select(User.id).where(User.username == data.username)) is not None:
        raise Conflict(f"user {data.username} exists already")
    user = User(username=data.username, display_name=data.display_name, password_hash=hash_secret(data.password),
                role=data.role, station_id=data.station_id, carrier_code=data.carrier_code, active=True,
                created_at=time.time())
    session.add(user)
    commands.audit(session, who, "user_created", data.username, None, role=data.role)
    return user


def list_carriers(session: Session) -> list[Carrier]:
    """Every carrier, by code."""
    return list(session.scalars(select(Carrier).order_by(Carrier.code)).all())


def add_carrier(session: Session, who: Principal, *, data: CarrierCreate) -> Carrier:
    """A carrier beyond the seeded ones."""
    if session.get(Carrier, data.code) is not None:
        raise Conflict(f"carrier {data.code} exists already")
    carrier = Carrier(code=data.code, name_zh=data.name_zh, name_en=data.name_en)
    session.add(carrier)
    commands.audit(session, who, "carrier_added", data.code)
    return carrier


def add_api_client(session: Session, who: Principal, *, code: str, data: ApiClientCreate) -> ApiClientCreated:
    """A carrier API client; the key and webhook secret are returned here once and stored only as a hash."""
    if session.get(Carrier, code) is None:
        raise NotFound(f"no carrier {code}")
    api_key = "ck_" + secrets.token_urlsafe(32)
    secret = secrets.token_urlsafe(32) if data.webhook_url else None
    client = ApiClient(name=data.name, key_hash=hash_key(api_key), carrier_code=code, webhook_url=data.webhook_url,
                       webhook_secret=secret, active=True, created_at=time.time())
    session.add(client)
    session.flush()
    commands.audit(session, who, "api_client_created", f"{code}/{client.id}")
    return ApiClientCreated(id=client.id, carrier_code=code, api_key=api_key, webhook_secret=secret)


def add_courier(session: Session, who: Principal, *, code: str, data: CourierCreate) -> Courier:
    """A courier with a PIN and the stations they may use."""
    if session.get(Carrier, code) is None:
        raise NotFound(f"no carrier {code}")
    unknown = [s for s in data.stations if session.get(Station, s) is None]
    if unknown:
        raise CommandRefused(422, f"unknown stations {unknown}")
    if session.scalar(select(Courier.id).where(Courier.phone == data.phone)) is not None:
        raise Conflict(f"a courier with phone {data.phone} exists already")
    courier = Courier(carrier_code=code, name=data.name, phone=data.phone, pin_hash=hash_secret(data.pin),
                      stations=sorted(set(data.stations)), active=True)
    session.add(courier)
    commands.audit(session, who, "courier_added", f"{code}/{data.phone}")
    return courier
