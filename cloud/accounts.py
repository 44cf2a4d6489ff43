"""Staff accounts, carriers, carrier API clients and couriers: the rules for creating and retiring them, their
rows, and who of them may log in at a station's terminal.

Keyword-only functions that the staff routes, pages and `jincun cloud` call; each audits what it changes and
leaves the commit to the caller. A refusal is a `CommandRefused` with its HTTP status, `Conflict` or
`NotFound`. Retiring is soft: the row stays for history, and the person can no longer log in anywhere (the
staff pages and API check `active`; the stations drop them at their next sync, `station_staff`).
PINs are hashed by the one PIN rule (jincun/pins.py) that the station checks them with.
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from jincun import carriers
from jincun.pins import hash_pin

from .audit import audit
from .auth import hash_secret
from .crud import hash_key
from .errors import CommandRefused, Conflict, NotFound
from .models import ApiClient, Carrier, Courier, Station, User
from .principal import Principal
from .schemas import ApiClientCreate, ApiClientCreated, CarrierCreate, CourierCreate, StaffEntry, UserCreate


def create_user(session: Session, who: Principal, *, data: UserCreate) -> User:
    """A staff account, with its bindings checked (an agent's station, a courier's carrier)."""
    if data.role == "station_agent" and not data.station_id:
        raise CommandRefused(422, "a station agent needs station_id")
    if data.role == "courier" and not data.carrier_code:
        raise CommandRefused(422, "a courier needs carrier_code")
    if data.pin and data.role != "station_agent":
        raise CommandRefused(422, "only a station agent has a terminal PIN (a courier's is set with the courier)")
    if data.carrier_code and session.get(Carrier, data.carrier_code) is None:
        raise CommandRefused(422, f"unknown carrier {data.carrier_code}")
    if data.station_id and session.get(Station, data.station_id) is None:
        raise CommandRefused(422, f"unknown station {data.station_id}")
    if session.scalar(select(User.id).where(User.username == data.username)) is not None:
        raise Conflict(f"user {data.username} exists already")
    user = User(username=data.username, display_name=data.display_name, password_hash=hash_secret(data.password),
                pin_hash=hash_pin(data.pin) if data.pin else None, role=data.role, station_id=data.station_id,
                carrier_code=data.carrier_code, active=True, created_at=time.time())
    session.add(user)
    audit(session, who, "user_created", data.username, None, role=data.role, station=data.station_id,
          terminal_pin=bool(data.pin))
    return user


def list_users(session: Session) -> list[User]:
    """Every staff account, retired ones too, by name."""
    return list(session.scalars(select(User).order_by(User.username)).all())


def retire_user(session: Session, who: Principal, *, username: str, reason: str | None = None) -> User:
    """Retire a staff account: kept for the audit trail, no longer able to log in (pages, API or terminal)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username}")
    if not user.active:
        raise Conflict(f"user {username} is retired already")
    if user.username == who.name:
        raise CommandRefused(422, "no one retires their own account")
    user.active = False
    audit(session, who, "user_retired", username, reason, role=user.role)
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
    audit(session, who, "carrier_added", data.code)
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
    audit(session, who, "api_client_created", f"{code}/{client.id}")
    return ApiClientCreated(id=client.id, carrier_code=code, api_key=api_key, webhook_secret=secret)


def add_courier(session: Session, who: Principal, *, code: str, data: CourierCreate) -> Courier:
    """A courier with a PIN and the stations they may use; the carrier as a code or a name (中通 -> ZTO)."""
    code = carriers.code_of(code) or code
    if session.get(Carrier, code) is None:
        raise NotFound(f"no carrier {code}")
    unknown = [s for s in data.stations if session.get(Station, s) is None]
    if unknown:
        raise CommandRefused(422, f"unknown stations {unknown}")
    if session.scalar(select(Courier.id).where(Courier.phone == data.phone)) is not None:
        raise Conflict(f"a courier with phone {data.phone} exists already")
    courier = Courier(carrier_code=code, name=data.name, phone=data.phone, pin_hash=hash_pin(data.pin),
                      stations=sorted(set(data.stations)), active=True)
    session.add(courier)
    session.flush()
    audit(session, who, "courier_added", f"{code}/{data.phone}", stations=courier.stations)
    return courier


def list_couriers(session: Session) -> list[Courier]:
    """Every courier, retired ones too, by carrier and name."""
    return list(session.scalars(select(Courier).order_by(Courier.carrier_code, Courier.name, Courier.id)).all())


def retire_courier(session: Session, who: Principal, *, phone: str, reason: str | None = None) -> Courier:
    """Retire a courier: kept for their parcels' history; their stations stop taking their PIN at the next sync."""
    courier = session.scalar(select(Courier).where(Courier.phone == phone))
    if courier is None:
        raise NotFound(f"no courier with phone {phone}")
    if not courier.active:
        raise Conflict(f"courier {phone} is retired already")
    courier.active = False
    audit(session, who, "courier_retired", f"{courier.carrier_code}/{phone}", reason)
    return courier


def station_staff(session: Session, station_id: str) -> list[StaffEntry]:
    """Who may log in at a station's terminal: its active couriers (`c<n>`) and its station agents with a PIN
    (`a<n>`), each with the PIN hash the terminal checks offline. A retired station lists no one."""
    station = session.get(Station, station_id)
    if station is None or not station.active:
        return []
    out = [StaffEntry(id=f"c{c.id}", name=c.name[:40], role="courier", carrier=c.carrier_code, pin_hash=c.pin_hash)
           for c in session.scalars(select(Courier).where(Courier.active.is_(True)).order_by(Courier.id))
           if station_id in (c.stations or [])]
    out += [StaffEntry(id=f"a{u.id}", name=u.display_name[:40], role="agent", carrier="", pin_hash=u.pin_hash)
            for u in session.scalars(select(User).where(User.active.is_(True), User.role == "station_agent",
                                                        User.station_id == station_id,
                                                        User.pin_hash.is_not(None)).order_by(User.id))
            if u.pin_hash]
    return out
