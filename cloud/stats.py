"""County statistics (coverage, volumes, pickup times, overdue rate, flags, subsidy ranking, farm produce, fees,
door-to-door help, dispatch from the town stations)
and their CSV / XLSX export. Days are China Standard Time calendar days."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Integer, and_, cast, func, select
from sqlalchemy.orm import Session

from jc.records import PICKUP_FREE
from jincun.carriers import CODES as CARRIER_CODES
from jincun.carriers import code_of, display

from . import charges
from .models import Carrier, Parcel, Recipient, SignoffFlag, Station, Town, Village
from .parcels import NOT_PARCELS, SENT, WAITING

CST = timezone(timedelta(hours=8))
PICKUP_BUCKETS = ((0, 2), (2, 6), (6, 12), (12, 24), (24, 48), (48, 72), (72, None))
TABLES = ("coverage", "volumes", "pickup_times", "overdue", "flags", "subsidy", "produce", "fees", "door_help",
          "dispatch")


def _day(session: Session, column):
    """SQL for the CST day number of a Unix-time column (days since 1970-01-01 CST)."""
    shifted = (column + 8 * 3600) / 86400
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(shifted), Integer)
    return cast(shifted, Integer)  # SQLite truncates toward zero, which is floor for these positive times


def day_label(day: int) -> str:
    """yyyy-mm-dd of a CST day number."""
    return (datetime(1970, 1, 1, tzinfo=CST) + timedelta(days=day)).strftime("%Y-%m-%d")


def _covered_village_ids(session: Session) -> set[int]:
    """The ids of villages with an active service point."""
    return {vid for vid in session.scalars(select(Station.village_id).where(
        Station.active.is_(True), Station.village_id.is_not(None))).all() if vid is not None}


def coverage(session: Session) -> list[dict[str, Any]]:
    """Per town: villages with an active service point / all villages."""
    covered = _covered_village_ids(session)
    towns: dict[int | None, str] = {t.id: t.name for t in session.scalars(select(Town)).all()}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for vid, town_id in session.execute(select(Village.id, Village.town_id)).all():
        row = counts[towns.get(town_id, "—")]
        row[0] += 1
        row[1] += vid in covered
    return [{"town": town, "villages": n, "covered": c, "uncovered": n - c,
             "coverage": round(c / n, 4) if n else 0.0} for town, (n, c) in sorted(counts.items())]


def _placed(stmt):
    """A select over parcels joined to their station, village and town (a station without a village, or a
    village without a town, still counts; a town co-delivery station has its town of its own)."""
    return (stmt.join(Station, Station.id == Parcel.station_id).outerjoin(Village, Village.id == Station.village_id)
            .outerjoin(Town, Town.id == func.coalesce(Village.town_id, Station.town_id)))


def _period(days: int, now: float | None) -> float:
    return (time.time() if now is None else now) - days * 86400


def volumes(session: Session, *, by: str = "town", days: int = 30, now: float | None = None) -> list[dict[str, Any]]:
    """Daily parcel volumes in and out, grouped by village, town or carrier."""
    day = _day(session, Parcel.created_at)
    if by == "carrier":
        key = Parcel.carrier
        stmt = select(day, key, Parcel.direction, func.count()).select_from(Parcel)
    elif by in ("village", "town"):
        key = Village.name if by == "village" else Town.name
        stmt = _placed(select(day, key, Parcel.direction, func.count()).select_from(Parcel))
    else:
        raise ValueError("by must be village, town or carrier")
    stmt = stmt.where(Parcel.created_at >= _period(days, now), Parcel.status.not_in(NOT_PARCELS)) \
        .group_by(day, key, Parcel.direction)
    rows: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: {"inbound": 0, "outbound": 0})
    for d, k, direction, n in session.execute(stmt).all():
        if by == "carrier":
            k = code_of(k)  # one row per carrier, however an older row spelt it (jincun/carriers.py)
        rows[(d, k or "—")][direction] += n
    return [{"day": day_label(d), by: k, **({"name": display(k)} if by == "carrier" else {}),
             "inbound": v["inbound"], "outbound": v["outbound"]} for (d, k), v in sorted(rows.items())]


def pickup_times(session: Session, *, days: int = 30, now: float | None = None) -> list[dict[str, Any]]:
    """How long picked-up parcels waited in the locker, in hour buckets."""
    wait = (Parcel.picked_up_at - Parcel.deposited_at) / 3600.0
    out = []
    base = and_(Parcel.picked_up_at.is_not(None), Parcel.deposited_at.is_not(None),
                Parcel.picked_up_at >= _period(days, now))
    total = session.scalar(select(func.count()).select_from(Parcel).where(base)) or 0
    for lo, hi in PICKUP_BUCKETS:
        cond = [base, wait >= lo] + ([wait < hi] if hi is not None else [])
        n = session.scalar(select(func.count()).select_from(Parcel).where(*cond)) or 0
        out.append({"hours": f"{lo}-{hi}" if hi is not None else f"{lo}+", "lo": lo, "hi": hi, "parcels": n,
                    "share": round(n / total, 4) if total else 0.0})
    return out


def overdue(session: Session, *, days: int = 30, now: float | None = None) -> list[dict[str, Any]]:
    """Overdue rate per town: parcels that went overdue / parcels deposited in the period."""
    since = _period(days, now)
    stmt = (_placed(select(Town.name, func.count(), func.count(Parcel.overdue_at)).select_from(Parcel))
            .where(Parcel.deposited_at.is_not(None), Parcel.deposited_at >= since).group_by(Town.name))
    rows = [{"town": t or "—", "deposited": n, "overdue": o, "overdue_rate": round(o / n, 4) if n else 0.0}
            for t, n, o in session.execute(stmt).all()]
    total = sum(r["deposited"] for r in rows)
    late = sum(r["overdue"] for r in rows)
    rows.sort(key=lambda r: r["town"])
    rows.append({"town": "合计/total", "deposited": total, "overdue": late,
                 "overdue_rate": round(late / total, 4) if total else 0.0})
    return rows


def flags(session: Session, *, limit: int = 500) -> list[dict[str, Any]]:
    """Fake sign-off flags, newest first."""
    rows = session.execute(select(SignoffFlag, Parcel).join(Parcel, Parcel.id == SignoffFlag.parcel_id)
                           .order_by(SignoffFlag.at.desc()).limit(limit)).all()
    return [{"id": f.id, "ref": p.ref, "waybill": p.waybill, "carrier": p.carrier, "station_id": p.station_id,
             "kind": f.kind, "at": f.at, "missing": ",".join(f.evidence.get("missing", [])),
             "evidence": f.evidence, "resolved": f.resolved} for f, p in rows]


# the population a village of unknown population counts as: the score's population factor is then 1
SUBSIDY_PEOPLE = 1000


def subsidy(session: Session, *, days: int = 30, limit: int = 50, now: float | None = None) -> list[dict[str, Any]]:
    """Remote, populous, low-volume villages first, from the village registry:
    score = distance to the town's co-delivery station (km) x population / 1000 / (1 + parcels a day).

    A village with no station has no parcels: its score is its distance times its thousands of people, so
    the large remote villages nobody serves yet lead the ranking."""
    since = _period(days, now)
    volume = dict(session.execute(
        select(Station.village_id, func.count(Parcel.id)).select_from(Parcel)
        .join(Station, Station.id == Parcel.station_id).where(Parcel.created_at >= since)
        .group_by(Station.village_id)).all())
    covered = _covered_village_ids(session)
    towns: dict[int | None, str] = {t.id: t.name for t in session.scalars(select(Town)).all()}
    out: list[dict[str, Any]] = []
    for v in session.scalars(select(Village)).all():
        per_day = volume.get(v.id, 0) / days
        distance = v.distance_km or 0.0
        people = SUBSIDY_PEOPLE if v.population is None else v.population
        out.append({"village": v.name, "town": towns.get(v.town_id, "—"), "distance_km": distance,
                    "population": v.population, "parcels_per_day": round(per_day, 2), "covered": v.id in covered,
                    "score": round(distance * people / SUBSIDY_PEOPLE / (1.0 + per_day), 3)})
    out.sort(key=lambda r: (-r["score"], r["village"]))
    return out[:limit]


def dispatch(session: Session, *, days: int = 30, now: float | None = None) -> list[dict[str, Any]]:
    """Per town of the village registry, what its co-delivery station sends out: the town's stations of
    that tier, its villages and how many have an active point, inbound parcels a day to those points in
    the period, and how far the served villages lie from the town station (farthest and mean `distance_km`).
    The busiest towns first."""
    since = _period(days, now)
    covered = _covered_village_ids(session)
    hubs: dict[int | None, list[str]] = defaultdict(list)
    for town_id, name in session.execute(select(Station.town_id, Station.name).where(
            Station.kind == "town_station", Station.active.is_(True), Station.town_id.is_not(None))
            .order_by(Station.id)).all():
        hubs[town_id].append(name)
    inbound = dict(session.execute(
        select(Village.town_id, func.count(Parcel.id)).select_from(Parcel)
        .join(Station, Station.id == Parcel.station_id).join(Village, Village.id == Station.village_id)
        .where(Parcel.direction == "inbound", Parcel.created_at >= since).group_by(Village.town_id)).all())
    in_town: dict[int | None, list[tuple[int, float | None]]] = defaultdict(list)
    for vid, town_id, distance in session.execute(select(Village.id, Village.town_id, Village.distance_km)).all():
        in_town[town_id].append((vid, distance))
    rows: list[dict[str, Any]] = []
    for town in session.scalars(select(Town).order_by(Town.name)).all():
        villages = in_town.get(town.id, [])
        if not villages and not hubs.get(town.id):
            continue
        served = [d for vid, d in villages if vid in covered and d is not None]
        served_n = sum(vid in covered for vid, _ in villages)
        rows.append({"town": town.name, "town_station": "、".join(hubs.get(town.id, [])) or "—",
                     "villages": len(villages), "served": served_n,
                     "parcels_per_day": round(inbound.get(town.id, 0) / days, 2),
                     "farthest_km": max(served) if served else None,
                     "mean_km": round(sum(served) / len(served), 1) if served else None})
    rows.sort(key=lambda r: (-r["parcels_per_day"], r["town"]))
    return rows


def produce(session: Session, *, days: int = 30, now: float | None = None) -> list[dict[str, Any]]:
    """Farm-produce outbound parcels (寄件) per town and carrier in the period, counted once their carrier
    collected them (a parcel still at the station counter has not been sent)."""
    stmt = (_placed(select(Town.name, Parcel.carrier, func.count(), func.sum(Parcel.weight_g)).select_from(Parcel))
            .where(Parcel.direction == "outbound", Parcel.produce.is_(True), Parcel.status.in_(SENT),
                   Parcel.created_at >= _period(days, now))
            .group_by(Town.name, Parcel.carrier))
    # weight is known for parcels taken in at a station terminal; older rows have none
    return sorted(({"town": t or "—", "carrier": c or "—", "parcels": n, "weight_kg": round((w or 0) / 1000, 1)}
                   for t, c, n, w in session.execute(stmt).all()), key=lambda r: (-r["parcels"], r["town"]))


def fees(session: Session, *, days: int = 30, now: float | None = None) -> list[dict[str, Any]]:
    """Fees recorded in the period per station (with its town), direction, kind and reason: parcels charged,
    the total, and the carriers whose parcels they were; then the extra charges (二次收费) villagers reported
    on the phone page (`source` villager) and agents recorded at the terminal (`source` agent), one row per
    station, carrier and kind.

    A fee on an inbound parcel is a charge to the recipient for its delivery, the extra charge for remote
    villages the county office looks into: those rows come first, then the largest totals. `banned` marks a
    charge of a kind the recipient never pays (a pickup fee, jc.records.PICKUP_FREE)."""
    since = _period(days, now)
    stmt = (_placed(select(Town.name, Station.id, Station.name, Parcel.direction, Parcel.fee_kind, Parcel.fee_reason,
                           Parcel.carrier, func.count(), func.sum(Parcel.fee_cents)).select_from(Parcel))
            .where(Parcel.fee_cents > 0, Parcel.created_at >= since)
            .group_by(Town.name, Station.id, Station.name, Parcel.direction, Parcel.fee_kind, Parcel.fee_reason,
                      Parcel.carrier))
    grouped: dict[tuple, dict[str, Any]] = {}
    for town, sid, sname, direction, kind, reason, carrier, n, cents in session.execute(stmt).all():
        row = grouped.setdefault((sid, direction, kind, reason), {
            "town": town or "—", "station_id": sid, "station": sname, "direction": direction, "kind": kind or "—",
            "reason": reason or "—", "source": "carrier" if direction == "inbound" else "station",
            "parcels": 0, "total_yuan": 0.0, "carriers": set(), "banned": kind in PICKUP_FREE})
        row["parcels"] += n
        row["total_yuan"] = round(row["total_yuan"] + (cents or 0) / 100, 2)
        row["carriers"].add(code_of(carrier) or "—")
    reported = charges.fee_rows(session, since=since)
    towns = _station_towns(session, {r[0] for r in reported if r[0]})
    for sid, sname, carrier, kind, source, n, cents in reported:
        grouped[(sid, source, kind, carrier)] = {
            "town": towns.get(sid) or "—", "station_id": sid or "—", "station": sname or "—", "direction": "inbound",
            "kind": kind, "reason": kind, "source": source, "parcels": n, "total_yuan": round((cents or 0) / 100, 2),
            "carriers": {carrier}, "banned": kind in PICKUP_FREE}
    rows = [{**r, "carriers": " ".join(sorted(r["carriers"]))} for r in grouped.values()]
    rows.sort(key=lambda r: (r["direction"] != "inbound", -r["total_yuan"], r["town"], r["station_id"]))
    return rows


def _station_towns(session: Session, ids: set[str]) -> dict[str, str | None]:
    """Station id -> the name of its town (through its village, or its own for a town station)."""
    if not ids:
        return {}
    stmt = (select(Station.id, Town.name).select_from(Station).outerjoin(Village, Village.id == Station.village_id)
            .outerjoin(Town, Town.id == func.coalesce(Village.town_id, Station.town_id)).where(Station.id.in_(ids)))
    return {sid: town for sid, town in session.execute(stmt).all()}


def door_help(session: Session, *, days: int = 30, now: float | None = None) -> list[dict[str, Any]]:
    """Door-to-door help per station: parcels now waiting for recipients who asked for it (elderly or
    disabled villagers), the longest wait in hours, and parcels delivered to the door in the period; with
    the station's village and its distance to the town's co-delivery station from the village registry.

    Stations with parcels waiting come first, the longest waits first: the dispatch list of the day."""
    now = time.time() if now is None else now
    place = (Town.name, Station.id, Station.name, Village.name, Village.distance_km)
    waiting = _placed(select(*place, func.count(), func.min(Parcel.deposited_at))
                      .select_from(Parcel).join(Recipient, Recipient.phone == Parcel.phone)) \
        .where(Recipient.door_help.is_(True), Parcel.direction == "inbound", Parcel.status.in_(WAITING)) \
        .group_by(*place)
    delivered = _placed(select(*place, func.count()).select_from(Parcel)) \
        .where(Parcel.status == "delivered_door", Parcel.updated_at >= _period(days, now)) \
        .group_by(*place)
    rows: dict[str, dict[str, Any]] = {}

    def row(town, sid, name, village, distance) -> dict[str, Any]:
        return rows.setdefault(sid, {"town": town or "—", "village": village or "—", "distance_km": distance,
                                     "station_id": sid, "station": name, "waiting": 0, "oldest_wait_h": None,
                                     "delivered_door": 0})

    for *at, n, first in session.execute(waiting).all():
        r = row(*at)
        r["waiting"] = n
        r["oldest_wait_h"] = round((now - first) / 3600, 1) if first else None
    for *at, n in session.execute(delivered).all():
        row(*at)["delivered_door"] = n
    return sorted(rows.values(), key=lambda r: (-r["waiting"], -(r["oldest_wait_h"] or 0), -r["delivered_door"],
                                                r["station_id"]))


def cst_day_start(now: float) -> float:
    """Unix time of the CST midnight that began the day `now` falls in."""
    d = datetime.fromtimestamp(now, CST)
    return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def summary(session: Session, *, days: int = 30, now: float | None = None) -> dict[str, Any]:
    """The county at a glance (the top of /stats), from the same rules as the tables below it: coverage,
    parcels today and this week (CST, the week from Monday), parcels overdue now, the door-to-door backlog
    (parcels waiting and the oldest wait in days) and the extra charges on inbound parcels in the period."""
    now = time.time() if now is None else now
    cov = coverage(session)
    villages, covered = sum(r["villages"] for r in cov), sum(r["covered"] for r in cov)
    today = cst_day_start(now)
    week = today - datetime.fromtimestamp(now, CST).weekday() * 86400

    def created_since(t: float) -> int:
        return session.scalar(select(func.count()).select_from(Parcel).where(
            Parcel.created_at >= t, Parcel.status.not_in(NOT_PARCELS))) or 0

    door = door_help(session, days=days, now=now)
    oldest_h = max((r["oldest_wait_h"] for r in door if r["oldest_wait_h"] is not None), default=None)
    extra = [r for r in fees(session, days=days, now=now) if r["direction"] == "inbound"]
    return {
        "villages": villages, "covered": covered, "coverage": round(covered / villages, 4) if villages else 0.0,
        "parcels_today": created_since(today), "parcels_week": created_since(week),
        "overdue_now": session.scalar(select(func.count()).select_from(Parcel)
                                      .where(Parcel.status == "overdue")) or 0,
        "door_waiting": sum(r["waiting"] for r in door),
        "door_oldest_days": round(oldest_h / 24, 1) if oldest_h is not None else None,
        "extra_parcels": sum(r["parcels"] for r in extra),
        "extra_yuan": round(sum(r["total_yuan"] for r in extra), 2),
        "days": days,
    }


def table(session: Session, name: str, **kw) -> list[dict[str, Any]]:
    """One statistics table by name (see TABLES)."""
    if name == "coverage":
        return coverage(session)
    if name == "volumes":
        return volumes(session, **kw)
    if name == "flags":
        return [{k: v for k, v in r.items() if k != "evidence"} for r in flags(session)]
    fn = {"pickup_times": pickup_times, "overdue": overdue, "subsidy": subsidy, "produce": produce,
          "fees": fees, "door_help": door_help, "dispatch": dispatch}.get(name)
    if fn is None:
        raise ValueError(f"unknown table {name}")
    return fn(session, **{k: v for k, v in kw.items() if k != "by"})


def carriers(session: Session) -> dict[str, str]:
    """Carrier code -> Chinese name (the one table's names; a carrier added in the cloud keeps its own)."""
    return {c.code: display(c.code) if c.code in CARRIER_CODES else c.name_zh
            for c in session.scalars(select(Carrier)).all()}
