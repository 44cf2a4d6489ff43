"""Seeding for the demo: one station with lockers (idempotent), an example county, staff accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
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


TOWN_SYLLABLES = ("青石", "柳河", "白沙", "东岭", "南坪", "西庄", "北塘", "梨花", "松林", "杏坝", "桃源", "龙泉",
                  "金山", "石门", "荷塘", "枫桥")
VILLAGE_SYLLABLES = ("上", "下", "前", "后", "东", "西", "南", "北", "大", "小", "新", "老", "高", "中")
VILLAGE_ROOTS = ("王家", "李家", "张庄", "刘湾", "陈岗", "杨坪", "赵沟", "周塘", "吴岭", "孙坝", "马营", "胡桥",
                 "朱村", "郭庄", "何湾", "罗坪", "梁家", "宋岭", "郑沟", "谢庄", "韩坝", "唐村", "冯岗", "于家",
                 "董庄", "萧湾", "程岭", "曹坪", "袁家")


def seed_county(session: Session, *, towns: int = 12, villages: int = 400, coverage: float = 0.75,
                parcels_per_station_day: float = 1.0, days: int = 30, seed: int = 7,
                now: float | None = None) -> dict[str, int]:
    """A fictional example county (names marked 示例) with stations and a month of parcels, for demos and tests.

    Deterministic for a given seed; parcels are bulk-inserted. Returns counts of what was created.
    """
    import random
    import time as _time

    from sqlalchemy import insert

    from .models import District, Parcel, Recipient, Town, Village

    rng = random.Random(seed)
    now = _time.time() if now is None else now
    district = District(name=f"示例县{seed}")
    session.add(district)
    session.flush()
    town_rows = []
    for i in range(towns):
        town = Town(name=f"示例{TOWN_SYLLABLES[i % len(TOWN_SYLLABLES)]}镇{'' if i < len(TOWN_SYLLABLES) else i}",
                    district_id=district.id)
        session.add(town)
        town_rows.append(town)
    session.flush()
    village_rows = []
    names: set[tuple[int, str]] = set()
    for i in range(villages):
        town = town_rows[i % towns]
        while True:
            name = rng.choice(VILLAGE_SYLLABLES) + rng.choice(VILLAGE_ROOTS) + "村"
            if (town.id, name) not in names:
                break
            name = f"{name}{i}"
            if (town.id, name) not in names:
                break
        names.add((town.id, name))
        village_rows.append({"name": name, "town_id": town.id, "distance_km": round(rng.uniform(0.5, 45.0), 1),
                             "population": rng.randint(300, 4000)})
    session.execute(insert(Village), village_rows)
    vids = session.scalars(select(Village.id).where(Village.town_id.in_([t.id for t in town_rows]))
                           .order_by(Village.id)).all()
    kinds = ("village_shop", "party_service_centre", "postal_point")
    station_rows = []
    for n, vid in enumerate(vids):
        if rng.random() > coverage:
            continue
        station_rows.append({"id": f"ex{seed}-{n:04d}", "name": f"示例站点{n:04d}", "kind": rng.choice(kinds),
                             "village_id": vid, "api_key_hash": hash_key(f"example-{seed}-{n}-{rng.random()}"),
                             "active": rng.random() > 0.03, "created_at": now - days * 86400})
    session.execute(insert(Station), station_rows)
    carriers = ("EMS", "SF", "ZTO", "YTO", "STO", "YUNDA", "JT", "JD")
    parcel_rows: list[dict[str, Any]] = []
    # weights of outbound parcels (taken in at the station's scale) from a stream of their own, so the
    # rest of the county comes out the same for a given seed
    scale = random.Random(f"weights-{seed}")
    # fees, from a stream of their own too: postage on most outbound parcels, and in a few stations an
    # extra charge on inbound parcels (二次收费), which the statistics bring to the county office's notice
    charge = random.Random(f"fees-{seed}")
    charging = {st["id"] for st in station_rows if charge.random() < 0.03}
    # about 3 % of the recipients asked for door-to-door help (a stream of its own as well): their parcels
    # are delivered to the door instead of picked up, and the ones still waiting make the dispatch list
    helped = random.Random(f"door-help-{seed}")
    door_phones: set[str] = set()
    k = 0
    for st in station_rows:
        count = int(parcels_per_station_day * days * rng.uniform(0.2, 1.8))
        for _ in range(count):
            k += 1
            created = now - rng.uniform(0, days * 86400)
            outbound = rng.random() < 0.18
            deposited = created + rng.uniform(600, 6 * 3600)
            # most parcels are fetched within a day; a few wait past the 7-day limit
            wait = rng.expovariate(1 / (20 * 3600)) if rng.random() > 0.04 else rng.uniform(7 * 86400, 9 * 86400)
            picked: float | None
            overdue_at: float | None
            status, picked, overdue_at = "picked_up", deposited + wait, None
            if wait > 7 * 86400 and deposited + 7 * 86400 <= now:
                status, picked, overdue_at = "overdue", None, deposited + 7 * 86400
            elif deposited + wait > now:
                status, picked = "notified", None
            if outbound:
                # an outbound parcel's courier collected it from the station
                status, picked, overdue_at, deposited = "collected", created + rng.uniform(3600, 30000), None, created
            parcel_rows.append({
                "ref": f"ex{seed}-{k:07d}", "waybill": f"EX{seed}{k:09d}", "carrier": rng.choice(carriers),
                "direction": "outbound" if outbound else "inbound", "phone": f"139{rng.randint(0, 99999999):08d}",
                "station_id": st["id"], "locker_id": None, "compartment": None, "size": rng.choice("SML"),
                "status": status, "created_at": created, "updated_at": picked or deposited,
                "deposited_at": min(deposited, now), "picked_up_at": picked, "fee_cents": 0, "fee_reason": None,
                "produce": outbound and rng.random() < 0.6, "reminders": 0, "overdue_at": overdue_at,
                "weight_g": scale.randint(500, 20000) if outbound else None, "fee_kind": None,
                "collected_at": picked if outbound else None})
            row = parcel_rows[-1]
            if outbound:
                row["fee_cents"], row["fee_reason"] = charge.choice((800, 1000, 1200, 1500)), "运费"
                row["fee_kind"] = "postage"
            elif st["id"] in charging and charge.random() < 0.5:
                row["fee_cents"], row["fee_reason"] = charge.choice((100, 200, 300)), "偏远村派送费"
                row["fee_kind"] = "remote_surcharge"
            if not outbound and helped.random() < 0.03:
                door_phones.add(row["phone"])
                if row["status"] == "picked_up":
                    row["status"], row["picked_up_at"] = "delivered_door", None
    for i in range(0, len(parcel_rows), 2000):
        session.execute(insert(Parcel), parcel_rows[i:i + 2000])
    known = set(session.scalars(select(Recipient.phone).where(Recipient.phone.in_(door_phones))).all()) \
        if door_phones else set()
    fresh = sorted(door_phones - known)
    if fresh:
        session.execute(insert(Recipient), [{"phone": phone, "consent": "unknown", "door_help": True,
                                              "updated_at": now} for phone in fresh])
    session.commit()
    return {"towns": towns, "villages": len(vids), "stations": len(station_rows), "parcels": len(parcel_rows)}


def seed_user(session: Session, *, username: str, password: str, role: str, display_name: str | None = None,
              station_id: str | None = None, carrier_code: str | None = None) -> None:
    """Create a staff account if missing (the demo's logins). Caller commits."""
    import time as _time

    from .auth import hash_secret
    from .models import User

    if session.scalar(select(User.id).where(User.username == username)) is None:
        session.add(User(username=username, display_name=display_name or username, password_hash=hash_secret(password),
                         role=role, station_id=station_id, carrier_code=carrier_code, active=True,
                         created_at=_time.time()))
        session.flush()
