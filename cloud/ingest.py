"""Applies ingest batches: dedupe by the events unique key, then each item's domain effect."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from . import constants as K
from .counters import Counters
from .errors import ItemRejected
from .models import (Alarm, Carrier, Compartment, DeadLetter, Event, Locker, Notification, Parcel, ParcelEvent,
                     PickupCode, Station)
from .protocol import Batch, Item, item_key, parse_item
from .sms import sms_text
from .telemetry import TelemetrySample, TelemetryStore

log = logging.getLogger("jincun.cloud.ingest")


def _insert(session: Session, model):
    """A dialect insert that supports ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model.__table__)
    if name == "sqlite":
        return sqlite.insert(model.__table__)
    raise NotImplementedError(f"database {name} is not supported")


class Ingestor:
    """Applies one batch per transaction; every item gets applied, duplicate or rejected."""

    def __init__(self, *, counters: Counters, telemetry: TelemetryStore, dead_letter_max_rows: int) -> None:
        self.counters = counters
        self.telemetry = telemetry
        self.dead_letter_max_rows = dead_letter_max_rows

    # ---- batch ---------------------------------------------------------------------------------

    def ingest(self, session: Session, *, station: Station, batch: Batch) -> tuple[dict[str, Any], bool]:
        """Apply a decoded batch for `station`; the caller commits.

        Returns the §5.1 response body and whether SMS were queued (so the caller can send them).
        """
        results: list[dict[str, Any]] = []
        tally = {K.APPLIED: 0, K.DUPLICATE: 0, K.REJECTED: 0}
        notify = False
        for raw in batch.items:
            key = item_key(raw)
            result: dict[str, Any] = {"src": key[0], "boot": key[1], "seq": key[2]} if key else \
                {"src": None, "boot": None, "seq": None}
            try:
                item = parse_item(raw)
                status = self._apply_one(session, station, item)
                notify = notify or (status == K.APPLIED and item.kind == "code")
            except ItemRejected as exc:
                status = K.REJECTED
                result["error"] = exc.wire
                self._dead_letter(session, station.id, raw, exc.wire)
            result["status"] = status
            tally[status] += 1
            results.append(result)
        for status, n in tally.items():
            if n:
                self.counters.inc(f"ingest_{status}", n)
        return {"batch": batch.batch, **tally, "results": results}, notify

    def _apply_one(self, session: Session, station: Station, item: Item) -> str:
        with session.begin_nested() as savepoint:
            stmt = _insert(session, Event).values(
                station_id=station.id, src=item.src, boot=item.boot, seq=item.seq, kind=item.kind,
                type=item.body.get("type") if item.kind == "evt" else None,
                ts=item.body.get("ts") if isinstance(item.body.get("ts"), int) else None,
                rx=item.rx, body=item.body,
            ).on_conflict_do_nothing(index_elements=["station_id", "src", "boot", "seq", "kind"]
                                     ).returning(Event.__table__.c.id)
            # RETURNING yields no row when the conflict clause skipped the insert (rowcount is not portable)
            if session.execute(stmt).first() is None:
                return K.DUPLICATE
            try:
                self._effect(session, station, item)
                session.flush()
            except ItemRejected:
                savepoint.rollback()
                raise
            except (IntegrityError, DataError) as exc:
                # validation should keep these out; if one slips through it must not fail the batch
                savepoint.rollback()
                log.error("item %s/%s/%s not storable: %s", item.src, item.boot, item.seq, exc.orig)
                self.counters.inc("ingest_storage_rejects")
                raise ItemRejected(K.E_BAD_FIELD, "a value cannot be stored") from exc
        return K.APPLIED

    def _dead_letter(self, session: Session, station_id: str, raw: Any, reason: str) -> None:
        text = json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        stored = raw if isinstance(raw, (dict, list)) else {"raw": text}
        log.warning("rejected item from %s: %s", station_id, reason)
        for attempt in (stored, {"unstorable": text[:4000]}):
            try:
                with session.begin_nested():
                    # unique on the raw item: a replayed bad item is answered the same and stored once
                    session.execute(_insert(session, DeadLetter).values(
                        station_id=station_id, raw=attempt, raw_hash=digest, reason=reason, at=time.time(),
                    ).on_conflict_do_nothing(index_elements=["station_id", "raw_hash"]))
                break
            except (DataError, IntegrityError) as exc:
                self.counters.inc("dead_letters_unstorable")
                log.error("dead letter from %s not storable as received: %s", station_id, exc.orig)
        count = session.scalar(select(func.count()).select_from(DeadLetter)) or 0
        if count > self.dead_letter_max_rows:
            oldest = session.scalars(select(DeadLetter.id).order_by(DeadLetter.id)
                                     .limit(count - self.dead_letter_max_rows)).all()
            session.execute(DeadLetter.__table__.delete().where(DeadLetter.id.in_(oldest)))
            self.counters.inc("dead_letters_dropped", len(oldest))

    # ---- effects -------------------------------------------------------------------------------

    def _effect(self, session: Session, station: Station, item: Item) -> None:
        handler = {"birth": self._birth, "status": self._status, "evt": self._evt, "tele": self._tele,
                   "parcel": self._parcel_record, "code": self._code_record}[item.kind]
        handler(session, station, item)

    def _locker(self, session: Session, station_id: str, locker_id: str) -> Locker:
        locker = session.get(Locker, (station_id, locker_id))
        if locker is not None:
            return locker
        elsewhere = session.scalar(select(Locker.station_id).where(Locker.id == locker_id,
                                                                   Locker.station_id != station_id).limit(1))
        if elsewhere is not None:
            raise ItemRejected(K.E_LOCKER_OF_OTHER_STATION,
                               f"locker {locker_id} is registered for another station, not {station_id}")
        raise ItemRejected(K.E_UNKNOWN_LOCKER, f"locker {locker_id} is not registered for station {station_id}")

    @staticmethod
    def _seen(locker: Locker, rx: float) -> None:
        if locker.last_seen is None or rx > locker.last_seen:
            locker.last_seen = rx

    def _comp(self, session: Session, locker: Locker, n: int) -> Compartment | None:
        return session.scalar(select(Compartment).where(Compartment.station_id == locker.station_id,
                                                        Compartment.locker_id == locker.id, Compartment.n == n))

    def _birth(self, session: Session, station: Station, item: Item) -> None:
        body = item.body
        locker = self._locker(session, station.id, item.src)
        self._seen(locker, item.rx)
        if locker.boot == body["boot"] and locker.birth_seq is not None and body["seq"] < locker.birth_seq:
            # an older snapshot of the same boot arrived late: the state we hold is newer
            self.counters.inc("stale_births")
            return
        locker.fw, locker.boot, locker.birth_seq = body["fw"], body["boot"], body["seq"]
        locker.snapshot = body
        locker.online = "online"
        locker.status_rx = max(locker.status_rx or 0.0, item.rx)
        for comp in body["comps"]:
            session.execute(_insert(session, Compartment).values(
                station_id=station.id, locker_id=locker.id, n=comp["n"], size=comp["size"], state=comp["st"],
                door=comp["door"], occ=comp["occ"], ref=comp.get("ref"), updated_at=item.rx,
            ).on_conflict_do_nothing(index_elements=["station_id", "locker_id", "n"]))
            session.execute(update(Compartment).where(
                Compartment.station_id == station.id, Compartment.locker_id == locker.id,
                Compartment.n == comp["n"]).values(size=comp["size"], state=comp["st"], door=comp["door"],
                                                   occ=comp["occ"], ref=comp.get("ref"), updated_at=item.rx))

    def _status(self, session: Session, station: Station, item: Item) -> None:
        locker = self._locker(session, station.id, item.src)
        if locker.status_rx is not None and item.rx < locker.status_rx:
            self.counters.inc("stale_status")
            return
        locker.online = item.body["state"]
        locker.status_rx = item.rx
        if item.body["state"] == "online":
            self._seen(locker, item.rx)

    def _tele(self, session: Session, station: Station, item: Item) -> None:
        body = item.body
        locker = self._locker(session, station.id, item.src)
        self._seen(locker, item.rx)
        values = {k: body.get(k) for k in ("rssi", "vin", "temp", "heap", "outbox", "up")}
        if locker.tele_at is None or item.rx >= locker.tele_at:
            for k, v in values.items():
                setattr(locker, k, v)
            locker.tele_at = item.rx
            if body.get("fw"):
                locker.fw = body["fw"]
        self.telemetry.record(session, TelemetrySample(station_id=station.id, locker_id=locker.id, at=item.rx,
                                                       **values))

    def _evt(self, session: Session, station: Station, item: Item) -> None:
        body = item.body
        locker = self._locker(session, station.id, item.src)
        self._seen(locker, item.rx)
        kind = body["type"]
        at = float(body["ts"]) if body["ts"] > 0 else item.rx
        source = f"{item.src}/{item.boot}/{item.seq}"
        # a snapshot (birth) already covers events of its boot up to its seq, and a newer boot's
        # birth supersedes older boots: only fresher events may move the compartment state
        fresh = locker.boot is None or (body["boot"] == locker.boot and body["seq"] > (locker.birth_seq or 0))
        comp = self._comp(session, locker, body["c"]) if isinstance(body.get("c"), int) else None
        if "c" in body and comp is None and kind != "alarm":
            self.counters.inc("events_unknown_compartment")
            log.warning("%s: event for compartment %s, which locker %s does not have", station.id, body.get("c"),
                        locker.id)
        if comp is not None and fresh:
            self._comp_effect(comp, body, item.rx)
        if kind == "alarm":
            session.add(Alarm(station_id=station.id, locker_id=locker.id, c=body.get("c"), kind=body["kind"],
                              at=at, acked=False))
        elif kind in ("deposit", "pickup", "deposit_void"):
            parcel = self._parcel_for_event(session, station, locker, body, item.rx)
            if parcel is None:
                return
            if kind == "deposit":
                parcel.locker_id, parcel.compartment = locker.id, body["c"]
                if comp is not None and parcel.size is None:
                    parcel.size = comp.size
                parcel.deposited_at = at
                self._advance(session, parcel, "deposited", at, source)
            elif kind == "pickup":
                parcel.picked_up_at = at
                self._advance(session, parcel, "picked_up", at, source)
                self._use_codes(session, station.id, parcel.ref)
            elif parcel.status in ("deposited", "notified"):
                parcel.status = "preadvised"
                parcel.deposited_at = None
                parcel.updated_at = time.time()
                session.add(ParcelEvent(parcel_id=parcel.id, status="preadvised", at=at,
                                        source=f"{source} deposit_void"))

    @staticmethod
    def _comp_effect(comp: Compartment, body: dict, rx: float) -> None:
        kind = body["type"]
        if kind == "door":
            comp.door = "open" if body["open"] else "closed"
        elif kind == "lock" and body["why"] in ("deposit", "pickup"):
            comp.state = body["why"]
        elif kind == "deposit":
            comp.state, comp.occ, comp.ref = "occupied", True, body["ref"]
        elif kind in ("deposit_void", "pickup"):
            comp.state, comp.occ, comp.ref = "empty", False, None
        elif kind == "state":
            comp.state = body["st"]
        else:
            return
        comp.updated_at = rx

    def _parcel_for_event(self, session: Session, station: Station, locker: Locker, body: dict,
                          rx: float) -> Parcel | None:
        parcel = self._get_or_stub(session, station.id, body["ref"], locker.id, body["c"], rx)
        if parcel.station_id != station.id:
            # the event itself is kept; only another station's parcel is left alone
            self.counters.inc("parcel_ref_conflicts")
            log.error("%s: event names parcel %s of station %s", station.id, parcel.ref, parcel.station_id)
            return None
        return parcel

    def _get_or_stub(self, session: Session, station_id: str, ref: str, locker_id: str | None, c: int | None,
                     rx: float) -> Parcel:
        """The parcel `ref`, created as a stub if an event got here before the parcel record."""
        now = time.time()
        session.execute(_insert(session, Parcel).values(
            ref=ref, station_id=station_id, locker_id=locker_id, compartment=c, status="preadvised",
            direction="inbound", fee_cents=0, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["ref"]))
        return session.scalars(select(Parcel).where(Parcel.ref == ref)
                               .execution_options(populate_existing=True)).one()

    @staticmethod
    def _advance(session: Session, parcel: Parcel, status: str, at: float, source: str) -> None:
        """Record `status` in the timeline; the parcel status itself only ever moves forward."""
        if K.PARCEL_RANK[status] > K.PARCEL_RANK[parcel.status]:
            parcel.status = status
        parcel.updated_at = time.time()
        session.add(ParcelEvent(parcel_id=parcel.id, status=status, at=at, source=source))

    def _use_codes(self, session: Session, station_id: str, ref: str) -> None:
        codes = session.scalars(select(PickupCode).where(PickupCode.station_id == station_id,
                                                         PickupCode.used.is_(False))).all()
        for code in codes:
            if ref not in code.refs:
                continue
            statuses = session.scalars(select(Parcel.status).where(Parcel.ref.in_(code.refs))).all()
            if all(s == "picked_up" for s in statuses):
                code.used = True

    def _own_parcel(self, session: Session, station: Station, ref: str, locker_id: str | None,
                    c: int | None, rx: float) -> tuple[Parcel, bool]:
        existed = session.scalar(select(Parcel.id).where(Parcel.ref == ref)) is not None
        parcel = self._get_or_stub(session, station.id, ref, locker_id, c, rx)
        if parcel.station_id != station.id:
            raise ItemRejected(K.E_BAD_FIELD, f"parcel {ref} belongs to another station")
        return parcel, not existed

    def _parcel_record(self, session: Session, station: Station, item: Item) -> None:
        body = item.body
        locker = self._locker(session, station.id, body["locker"])
        if self._comp(session, locker, body["c"]) is None:
            raise ItemRejected(K.E_NO_SUCH_COMPARTMENT, f"locker {locker.id} has no compartment {body['c']}")
        parcel, created = self._own_parcel(session, station, body["ref"], locker.id, body["c"], item.rx)
        parcel.locker_id, parcel.compartment = locker.id, body["c"]
        for field in ("waybill", "carrier", "phone", "size"):
            if body.get(field) is not None:
                setattr(parcel, field, body[field].strip())
        if parcel.carrier and session.get(Carrier, parcel.carrier.upper()) is not None:
            parcel.carrier = parcel.carrier.upper()
        parcel.updated_at = time.time()
        if created or not session.scalar(select(ParcelEvent.id).where(ParcelEvent.parcel_id == parcel.id,
                                                                      ParcelEvent.status == "preadvised")):
            session.add(ParcelEvent(parcel_id=parcel.id, status="preadvised", at=item.rx, source="gw/parcel"))

    def _code_record(self, session: Session, station: Station, item: Item) -> None:
        body = item.body
        locker_id = body.get("locker")
        if locker_id is not None:
            self._locker(session, station.id, locker_id)
        parcel, _ = self._own_parcel(session, station, body["ref"], locker_id, None, item.rx)
        if parcel.phone is None:
            parcel.phone = body["phone"]
        locker_id = locker_id or parcel.locker_id or "?"
        session.add(PickupCode(station_id=station.id, phone=body["phone"], code=body["code"], refs=[parcel.ref],
                               exp=body.get("exp_ts"), used=False, created_at=time.time()))
        self._advance(session, parcel, "notified", item.rx, f"gw/{item.boot}/{item.seq}")
        carrier = session.get(Carrier, parcel.carrier) if parcel.carrier else None
        text = sms_text(waybill=parcel.waybill or parcel.ref,
                        carrier=carrier.name_zh if carrier else (parcel.carrier or "快递"),
                        station=station.name, locker=locker_id, c=parcel.compartment, code=body["code"])
        session.add(Notification(phone=body["phone"], text=text, status="queued", attempts=0, ref=parcel.ref,
                                 created_at=time.time()))
