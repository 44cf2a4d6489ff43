"""Idempotent seeding of a station and its lockers (used by the demo)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from .crud import add_locker, create_station, hash_key
from .models import Compartment, Locker, Station
from .schemas import CompartmentCreate, LockerCreate, StationCreate


def seed_station(session: Session, *, station_id: str, name: str, api_key: str, lockers: list[dict],
                 village: str | None = None, town: str | None = None,
                 kind: str = "village_shop") -> Station:
    """Create the station and lockers if missing; an existing station gets its key and name refreshed."""
    station = session.get(Station, station_id)
    if station is None:
        station = create_station(session, data=StationCreate(id=station_id, name=name, kind=kind,
                                                             village=village, town=town, api_key=api_key))
    else:
        station.name = name
        station.api_key_hash = hash_key(api_key)
    for spec in lockers:
        data = LockerCreate(id=spec["id"], comps=[CompartmentCreate(**c) for c in spec["comps"]])
        if session.get(Locker, (station_id, data.id)) is None:
            add_locker(session, station_id=station_id, data=data)
            continue
        for comp in data.comps:
            if session.query(Compartment).filter_by(station_id=station_id, locker_id=data.id,
                                                    n=comp.n).first() is None:
                session.add(Compartment(station_id=station_id, locker_id=data.id, n=comp.n, size=comp.size,
                                        state="empty", door="closed", occ=False))
    session.commit()
    return station
