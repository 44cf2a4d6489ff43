"""Lockers and compartments: what a locker's birth, status, tele and events do to its rows.

A compartment row follows the events by the one mirror the gateway uses too (jincun/mirror.py); the parcel
side of an event (deposit, pickup, deposit_void) is in cloud/ingest/parcels.py.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update

from jincun.mirror import mirror

from ..models import Alarm, Compartment
from ..protocol import Item
from ..telemetry import TelemetryPointSample, TelemetrySample
from . import parcels
from .context import BatchContext
from .find import compartment, locker
from .store import dialect_insert, table_of

log = logging.getLogger("jincun.cloud.ingest")


def _seen(lk: Any, rx: float) -> None:
    if lk.last_seen is None or rx > lk.last_seen:
        lk.last_seen = rx


def birth(b: BatchContext, item: Item) -> None:
    """A locker's snapshot: firmware, boot and every compartment as it stands."""
    body = item.body
    lk = locker(b, item.src)
    _seen(lk, item.rx)
    if lk.boot == body["boot"] and lk.birth_seq is not None and body["seq"] < lk.birth_seq:
        # an older snapshot of the same boot arrived late: the state we hold is newer
        b.counters.inc("stale_births")
        return
    lk.fw, lk.boot, lk.birth_seq = body["fw"], body["boot"], body["seq"]
    lk.snapshot = body
    lk.online = "online"
    lk.status_rx = max(lk.status_rx or 0.0, item.rx)
    # the rows change below by SQL: what the batch changed so far is written first, and the cached
    # compartments of this locker are read afresh when next used
    b.write(keep_new=True)
    b.loaded.discard(lk.id)
    for key in [k for k in b.comps if k[0] == lk.id]:
        b.forget(b.comps.pop(key))
    session, station_id = b.session, b.station.id
    for comp in body["comps"]:
        values = {"size": comp["size"], "state": comp["st"], "door": comp["door"], "occ": comp["occ"],
                  "ref": comp.get("ref"), "updated_at": item.rx}
        session.execute(dialect_insert(session, table_of(Compartment)).values(
            station_id=station_id, locker_id=lk.id, n=comp["n"], **values,
        ).on_conflict_do_nothing(index_elements=["station_id", "locker_id", "n"]))
        session.execute(update(Compartment).where(
            Compartment.station_id == station_id, Compartment.locker_id == lk.id,
            Compartment.n == comp["n"]).values(**values))


def status(b: BatchContext, item: Item) -> None:
    """A locker's link went online or was lost (newest rx wins)."""
    lk = locker(b, item.src)
    if lk.status_rx is not None and item.rx < lk.status_rx:
        b.counters.inc("stale_status")
        return
    lk.online = item.body["state"]
    lk.status_rx = item.rx
    b.record_point(TelemetryPointSample(
        measurement="link", station_id=b.station.id, locker_id=lk.id, c=None, at=item.rx,
        value=1.0 if item.body["state"] == "online" else 0.0))
    if item.body["state"] == "online":
        _seen(lk, item.rx)


def tele(b: BatchContext, item: Item) -> None:
    """A locker's health: the latest values on the locker, every sample in the telemetry store."""
    body = item.body
    lk = locker(b, item.src)
    _seen(lk, item.rx)
    values = {k: body.get(k) for k in ("rssi", "vin", "temp", "heap", "outbox", "up")}
    if lk.tele_at is None or item.rx >= lk.tele_at:
        for k, v in values.items():
            setattr(lk, k, v)
        lk.tele_at = item.rx
        if body.get("fw"):
            lk.fw = body["fw"]
    b.record(TelemetrySample(station_id=b.station.id, locker_id=lk.id, at=item.rx, **values))


def evt(b: BatchContext, item: Item) -> None:
    """A locker event: the compartment follows it, door and occupancy go to telemetry, alarms are kept, and
    deposits and pickups move their parcel."""
    body = item.body
    station_id = b.station.id
    lk = locker(b, item.src)
    _seen(lk, item.rx)
    kind = body["type"]
    at = float(body["ts"]) if body["ts"] > 0 else item.rx
    # a snapshot (birth) already covers events of its boot up to its seq, and a newer boot's
    # birth supersedes older boots: only fresher events may move the compartment state
    fresh = lk.boot is None or (body["boot"] == lk.boot and body["seq"] > (lk.birth_seq or 0))
    comp = compartment(b, lk, body["c"]) if isinstance(body.get("c"), int) else None
    if "c" in body and comp is None and kind != "alarm":
        b.counters.inc("events_unknown_compartment")
        log.warning("%s: event for compartment %s, which locker %s does not have", station_id, body.get("c"), lk.id)
    if comp is not None and fresh:
        _follow(comp, body, item.rx)
    if kind == "door":
        b.record_point(TelemetryPointSample(
            measurement="door", station_id=station_id, locker_id=lk.id, c=body["c"], at=at,
            value=1.0 if body["open"] else 0.0))
    elif kind in ("deposit", "pickup", "deposit_void"):
        b.record_point(TelemetryPointSample(
            measurement="occupancy", station_id=station_id, locker_id=lk.id, c=body["c"], at=at,
            value=1.0 if kind == "deposit" else 0.0))
        parcels.on_event(b, lk, comp, body, at, f"{item.src}/{item.boot}/{item.seq}")
    elif kind == "alarm":
        b.session.add(Alarm(station_id=station_id, locker_id=lk.id, c=body.get("c"), kind=body["kind"], at=at,
                            acked=False))


def _follow(comp: Any, body: dict, rx: float) -> None:
    """Move the compartment row as the event says, by the one mirror the gateway uses too."""
    changes = mirror(body, {"st": comp.state, "door": comp.door, "occ": comp.occ, "ref": comp.ref})
    if not changes:
        return
    for key, value in changes.items():
        setattr(comp, "state" if key == "st" else key, value)
    comp.updated_at = rx

