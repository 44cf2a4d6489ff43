"""Keyword-only data access used by the API, the pages and the seed."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from jincun import carriers

from .audit import audit
from .errors import Conflict, NotFound
from .models import (Carrier, Compartment, Event, Locker, Notification, Parcel, ParcelEvent, Station, Town,
                     Village)
from .schemas import (CompartmentPublic, LockerCreate, LockerPublic, NotificationPublic, ParcelEventPublic,
                      ParcelPublic, StationCreate, StationPublic)
from .principal import Principal
from .storage import fixed_rows


def hash_key(api_key: str) -> str:
    """The stored form of an API key, a station's or a carrier client's (a fast hash is enough for random keys)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def _village_id(session: Session, *, village: str | None, town: str | None) -> int | None:
    if village is None:
        return None
    town_id = None
    if town is not None:
        # the village registry's town of that name first (it has a county), so a station registered after
        # the import lands in the registry's village instead of a second one of the same name
        town_row = session.scalar(select(Town).where(Town.name == town)
                                  .order_by(Town.district_id.is_(None), Town.id).limit(1))
        if town_row is None:
            town_row = Town(name=town)
            session.add(town_row)
            session.flush()
        town_id = town_row.id
    row = session.scalar(select(Village).where(Village.name == village,
                                               Village.town_id.is_(None) if town_id is None
                                               else Village.town_id == town_id))
    if row is None:
        row = Village(name=village, town_id=town_id)
        session.add(row)
        session.flush()
    return row.id


def create_station(session: Session, *, data: StationCreate, who: Principal | None = None) -> Station:
    """Register a station; its API key is stored only as a hash (none given: one nobody knows, until the
    station's gateway enrolls). Audited when a staff member `who` registers it."""
    if session.get(Station, data.id) is not None:
        raise Conflict(f"station {data.id} exists already")
    key_hash = hash_key(data.api_key or secrets.token_urlsafe(32))
    if session.scalar(select(Station.id).where(Station.api_key_hash == key_hash)) is not None:
        raise Conflict("this API key is in use by another station")
    station = Station(id=data.id, name=data.name, kind=data.kind, api_key_hash=key_hash, active=True,
                      address=data.address, phone=data.phone, hours=data.hours,
                      village_id=_village_id(session, village=data.village, town=data.town),
                      created_at=time.time())
    session.add(station)
    session.flush()
    if who is not None:
        audit(session, who, "station_created", data.id, name=data.name, kind=data.kind)
    return station


def retire_station(session: Session, who: Principal, *, station_id: str, reason: str | None = None) -> Station:
    """Retire a station: kept with its history, its gateway's key no longer accepted. Audited; caller commits."""
    station = session.get(Station, station_id)
    if station is None:
        raise NotFound(f"no station {station_id}")
    if not station.active:
        raise Conflict(f"station {station_id} is retired already")
    station.active = False
    audit(session, who, "station_retired", station_id, reason)
    return station


def add_locker(session: Session, *, station_id: str, data: LockerCreate, who: Principal | None = None) -> Locker:
    """Register a locker and its compartments under a station (audited when a staff member `who` adds it).

    Adding a retired locker again with the same compartments brings it back into service (`locker_restored`):
    its gateway takes deposits into it again from its next pull."""
    station = session.get(Station, station_id)
    if station is None:
        raise NotFound(f"no station {station_id}")
    if not station.active:
        raise Conflict(f"station {station_id} is retired")
    old = session.get(Locker, (station_id, data.id))
    if old is not None and not old.active:
        return _restore_locker(session, old, data, who)
    if old is not None:
        raise Conflict(f"locker {data.id} exists already at station {station_id}")
    if data.id == "gw":
        raise Conflict('"gw" is reserved for the gateway itself')
    if len({c.n for c in data.comps}) != len(data.comps):
        raise Conflict("compartment numbers must be unique")
    locker = Locker(station_id=station_id, id=data.id, online="unknown")
    session.add(locker)
    session.flush()
    for comp in data.comps:
        session.add(Compartment(station_id=station_id, locker_id=data.id, n=comp.n, size=comp.size,
                                state="empty", door="closed", occ=False))
    session.flush()
    if who is not None:
        audit(session, who, "locker_added", f"{station_id}/{data.id}", comps=len(data.comps))
    return locker


def _restore_locker(session: Session, locker: Locker, data: LockerCreate, who: Principal | None) -> Locker:
    have = {(c.n, c.size) for c in session.scalars(select(Compartment).where(
        Compartment.station_id == locker.station_id, Compartment.locker_id == locker.id))}
    if have != {(c.n, c.size) for c in data.comps}:
        raise Conflict(f"locker {locker.id} was retired at station {locker.station_id} with other compartments; "
                       "add it again with the same ones")
    locker.active = True
    if who is not None:
        audit(session, who, "locker_restored", f"{locker.station_id}/{locker.id}", comps=len(data.comps))
    return locker


def retire_locker(session: Session, who: Principal, *, station_id: str, locker_id: str,
                  reason: str | None = None) -> Locker:
    """Retire a locker: kept with its history, left out of the station's enrollment and listed to its running
    gateway as retired (`retired_lockers`), which then takes no new deposits into it. Audited; caller commits."""
    locker = session.get(Locker, (station_id, locker_id))
    if locker is None:
        raise NotFound(f"no locker {locker_id} at station {station_id}")
    if not locker.active:
        raise Conflict(f"locker {station_id}/{locker_id} is retired already")
    locker.active = False
    audit(session, who, "locker_retired", f"{station_id}/{locker_id}", reason)
    return locker


def retired_lockers(session: Session, station_id: str) -> list[str]:
    """The ids of a station's retired lockers: its gateway stops taking new deposits into them, and parcels
    already in them are still picked up."""
    return list(session.scalars(select(Locker.id).where(Locker.station_id == station_id, Locker.active.is_(False))
                                .order_by(Locker.id)).all())


def station_by_key(session: Session, *, api_key: str) -> Station | None:
    """The station an API key belongs to, if any."""
    return session.scalar(select(Station).where(Station.api_key_hash == hash_key(api_key)))


_KEY_AND_STATION = select(Station.id, Station.name, Station.active,
                          (Station.api_key_hash == bindparam("h")).label("owns")).where(
    or_(Station.api_key_hash == bindparam("h"), Station.id == bindparam("id")))


def key_and_station(session: Session, *, api_key: str, station_id: str) -> tuple[Any, Any]:
    """(the station the key belongs to, the station `station_id`), each None if there is none, in one query.

    Rows with `id`, `name` and `active`: the ingest reads no more of the station, once per batch.
    """
    rows = fixed_rows(session, _KEY_AND_STATION, {"h": hash_key(api_key), "id": station_id}, named=True)
    owner = next((r for r in rows if r.owns), None)
    station = next((r for r in rows if r.id == station_id), None)
    return owner, station


def _place_names(session: Session, station: Station) -> tuple[str | None, str | None]:
    """The station's village and town names (a town co-delivery station has a town of its own)."""
    village = session.get(Village, station.village_id) if station.village_id is not None else None
    town_id = village.town_id if village is not None else station.town_id
    town = session.get(Town, town_id) if town_id is not None else None
    return (village.name if village else None), (town.name if town else None)


def find_stations(session: Session, *, q: str = "", only: str | None = None) -> list[str]:
    """The ids of the stations whose id, name, village or town holds `q` (any case), in id order; with `only`,
    that station alone if it matches. The pages search and page through a county's stations with this."""
    stmt = (select(Station.id).outerjoin(Village, Village.id == Station.village_id)
            .outerjoin(Town, Town.id == func.coalesce(Village.town_id, Station.town_id)).order_by(Station.id))
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(Station.id).like(like), func.lower(Station.name).like(like),
                              func.lower(Village.name).like(like), func.lower(Town.name).like(like)))
    if only is not None:
        stmt = stmt.where(Station.id == only)
    return list(session.scalars(stmt).all())


def list_stations(session: Session, *, station_id: str | None = None,
                  ids: list[str] | None = None) -> list[StationPublic]:
    """Stations with their lockers and compartments (one, some by id, or all)."""
    stmt = select(Station).order_by(Station.id)
    if station_id is not None:
        stmt = stmt.where(Station.id == station_id)
    if ids is not None:
        stmt = stmt.where(Station.id.in_(ids))
    stations = session.scalars(stmt).all()
    ids = [s.id for s in stations]
    lockers = session.scalars(select(Locker).where(Locker.station_id.in_(ids))
                              .order_by(Locker.station_id, Locker.id)).all()
    comps = session.scalars(select(Compartment).where(Compartment.station_id.in_(ids))
                            .order_by(Compartment.station_id, Compartment.locker_id, Compartment.n)).all()
    by_locker: dict[tuple[str, str], list[CompartmentPublic]] = defaultdict(list)
    for comp in comps:
        by_locker[(comp.station_id, comp.locker_id)].append(CompartmentPublic.model_validate(comp))
    by_station: dict[str, list[LockerPublic]] = defaultdict(list)
    for locker in lockers:
        pub = LockerPublic.model_validate(locker)
        pub.compartments = by_locker[(locker.station_id, locker.id)]
        by_station[locker.station_id].append(pub)
    out = []
    for station in stations:
        village, town = _place_names(session, station)
        out.append(StationPublic(id=station.id, name=station.name, kind=station.kind, active=station.active,
                                 village=village, town=town, address=station.address, phone=station.phone,
                                 hours=station.hours, lockers=by_station[station.id]))
    return out


def _with_timeline(session: Session, parcels: list[Parcel]) -> list[ParcelPublic]:
    ids = [p.id for p in parcels]
    events = session.scalars(select(ParcelEvent).where(ParcelEvent.parcel_id.in_(ids))
                             .order_by(ParcelEvent.id)).all() if ids else []
    # processing order, not clock order: locker and gateway clocks may disagree
    timeline: dict[int, list[ParcelEventPublic]] = defaultdict(list)
    for ev in events:
        timeline[ev.parcel_id].append(ParcelEventPublic.model_validate(ev))
    out = []
    for parcel in parcels:
        pub = ParcelPublic.model_validate(parcel)
        pub.timeline = timeline[parcel.id]
        out.append(pub)
    return out


def list_parcels(session: Session, *, waybill: str | None = None, phone: str | None = None,
                 station: str | None = None, limit: int = 100) -> list[ParcelPublic]:
    """Parcels matching all given filters, newest first, each with its timeline."""
    stmt = select(Parcel).order_by(Parcel.updated_at.desc(), Parcel.id.desc()).limit(limit)
    if waybill:
        stmt = stmt.where(Parcel.waybill == waybill)
    if phone:
        stmt = stmt.where(Parcel.phone == phone)
    if station:
        stmt = stmt.where(Parcel.station_id == station)
    return _with_timeline(session, list(session.scalars(stmt).all()))


def get_parcel(session: Session, *, ref: str) -> ParcelPublic:
    """One parcel by ref with its timeline."""
    parcel = session.scalar(select(Parcel).where(Parcel.ref == ref))
    if parcel is None:
        raise NotFound(f"no parcel {ref}")
    return _with_timeline(session, [parcel])[0]


def list_notifications(session: Session, *, phone: str | None = None, limit: int = 100) -> list[NotificationPublic]:
    """The SMS outbox, newest first."""
    stmt = select(Notification).order_by(Notification.id.desc()).limit(limit)
    if phone:
        stmt = stmt.where(Notification.phone == phone)
    return [NotificationPublic.model_validate(n) for n in session.scalars(stmt).all()]


def ledger(session: Session, *, station: str) -> dict:
    """Every locker event held for a station, plus how often each parcel status was entered."""
    rows = session.execute(select(Event.src, Event.boot, Event.seq)
                           .where(Event.station_id == station, Event.kind == "evt")
                           .order_by(Event.src, Event.boot, Event.seq)).all()
    counts = session.execute(select(ParcelEvent.status, func.count()).join(Parcel, Parcel.id == ParcelEvent.parcel_id)
                             .where(Parcel.station_id == station).group_by(ParcelEvent.status)).all()
    return {"station": station, "events": [(r.src, r.boot, r.seq) for r in rows],
            "parcel_transitions": {status: n for status, n in counts}}


def carrier_names(session: Session) -> dict[str, tuple[str, str]]:
    """Carrier code -> (Chinese name, English name): the one table's names (jincun/carriers.py), and a carrier
    added in the cloud with its own."""
    return {c.code: carriers.NAMES.get(c.code, (c.name_zh, c.name_en)) for c in session.scalars(select(Carrier)).all()}
