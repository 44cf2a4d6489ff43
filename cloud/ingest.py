"""Applies ingest batches: dedupe by the events unique key, then each item's domain effect."""

from __future__ import annotations

import json
import logging
import time
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

import orjson

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from jincun.mirror import mirror

from . import constants as K
from .counters import Counters
from .deadletters import DeadLetters, printable
from .errors import ItemRejected
from .models import (Alarm, Carrier, Compartment, Event, GatewayHealth, Locker, Notification, Parcel,
                     ParcelEvent, PickupCode, Recipient, Station)
from .partitions import month_of
from .protocol import Batch, Item, item_key, parse_item
from .webhooks import enqueue_status, hooked_clients_sql, prime_clients
from .sms import queued
from .sms_text import Style
from .rows import CodeRow, CompartmentRow, LockerRow, ParcelRow, PlainRow, write_rows
from .storage import among, bulk_insert, fixed_rows, one_of, pg_rows, transient
from .telemetry import TelemetryPointSample, TelemetrySample, TelemetryStore

log = logging.getLogger("jincun.cloud.ingest")


def _insert(session: Session, model):
    """A dialect insert that supports ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model.__table__)
    if name == "sqlite":
        return sqlite.insert(model.__table__)
    raise NotImplementedError(f"database {name} is not supported")


# kinds whose body names an inbound parcel that may arrive before its parcel record
_STUB_KINDS = ("evt", "parcel", "code", "handover")
# parcel statuses after which a pickup code has nothing left to open
_DONE_STATUSES = ("picked_up", "delivered_door", "returned")

# rows a batch pass only writes (never reads back), inserted together at its end
ROWS = "jc_rows"

_PG_EVENTS_INSERT = text(
    "INSERT INTO events (station_id, src, boot, seq, kind, month, type, ts, rx, body) "
    "SELECT :station, u.src, u.boot, u.seq, u.kind, u.month, u.type, u.ts, u.rx, CAST(u.body AS json) FROM unnest("
    "CAST(:src AS text[]), CAST(:boot AS text[]), CAST(:seq AS bigint[]), CAST(:kind AS text[]), "
    "CAST(:month AS integer[]), CAST(:type AS text[]), CAST(:ts AS double precision[]), "
    "CAST(:rx AS double precision[]), CAST(:body AS text[])) AS u(src, boot, seq, kind, month, type, ts, rx, body) "
    "ON CONFLICT (station_id, src, boot, seq, kind, month) DO NOTHING RETURNING src, boot, seq, kind, month")


def _json_text(body: Any) -> str:
    """Compact JSON text of a validated body; the stdlib writes what orjson refuses (big ints, lone surrogates)."""
    try:
        return orjson.dumps(body).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(body, ensure_ascii=False)


# run through pg_rows (psycopg parameters). It answers one row of nulls when every row was inserted (the
# common case: nothing more travels back), else the keys of the rows inserted (none if all were held)
_PG_EVENTS_INSERT_JSON = (
    "WITH ins AS (INSERT INTO events (station_id, src, boot, seq, kind, month, type, ts, rx, body) "
    "SELECT %(station)s, u.src, u.boot, u.seq, u.kind, u.month, u.type, u.ts, u.rx, u.body "
    "FROM json_to_recordset(CAST(%(rows)s AS json)) AS u(src text, boot text, seq bigint, kind text, month integer, "
    "type text, ts double precision, rx double precision, body json) "
    "ON CONFLICT (station_id, src, boot, seq, kind, month) DO NOTHING RETURNING src, boot, seq, kind, month), "
    "n AS (SELECT count(*) AS c FROM ins) "
    "SELECT NULL, NULL, NULL, NULL, NULL FROM n WHERE n.c = %(total)s "
    "UNION ALL SELECT ins.src, ins.boot, ins.seq, ins.kind, ins.month FROM ins, n WHERE n.c <> %(total)s")


def _lookups() -> dict[str, Any]:
    """The batch's look-ups elsewhere than on PostgreSQL, as fixed statements for `fixed_rows`."""
    station = bindparam("station")
    return {
        "lockers": LockerRow.select().where(Locker.station_id == station),
        "compartments": CompartmentRow.select().where(Compartment.station_id == station),
        "parcels": ParcelRow.select().where(among(Parcel.ref, "refs", pg=False)),
        "preadvised": ParcelRow.select().where(Parcel.station_id == station, among(Parcel.waybill, "waybills", pg=False),
                                               Parcel.status == "preadvised", Parcel.locker_id.is_(None)),
        "recipients": select(Recipient.phone, Recipient.consent).where(among(Recipient.phone, "phones", pg=False)),
        "codes": CodeRow.select().where(PickupCode.station_id == station, among(PickupCode.phone, "phones", pg=False),
                                        PickupCode.used.is_(False)),
        "carriers": select(Carrier.code, Carrier.name_zh),
    }


# elsewhere than PostgreSQL (there: _PG_PRELOAD, all in one statement)
_LOOKUPS = _lookups()


def _json_rows(cls: type[PlainRow], alias: str, where: str) -> str:
    """A subquery answering the rows of `cls` matching `where` as one JSON array of arrays (in `cols` order)."""
    cols = ", ".join(f"{alias}.{name}" for name in cls.cols)
    return f"(SELECT json_agg(json_build_array({cols})) FROM {cls.table.name} AS {alias} WHERE {where})"


# the batch's look-ups on PostgreSQL as one statement and one round trip (pg_rows), answered as one JSON text
# that orjson reads: each statement had cost the worker some 0.3 ms of CPU, about as much as its rows
_PG_PRELOAD = ("SELECT CAST(json_build_array("
               + ", ".join((
                   _json_rows(LockerRow, "l", "l.station_id = %(station)s"),
                   _json_rows(CompartmentRow, "c", "c.station_id = %(station)s"),
                   _json_rows(ParcelRow, "p", "p.ref = ANY(CAST(%(refs)s AS text[]))"),
                   _json_rows(ParcelRow, "a", "a.station_id = %(station)s AND a.waybill = ANY(CAST(%(waybills)s AS "
                                              "text[])) AND a.status = 'preadvised' AND a.locker_id IS NULL"),
                   "(SELECT json_agg(json_build_array(r.phone, r.consent)) FROM recipients AS r "
                   "WHERE r.phone = ANY(CAST(%(phones)s AS text[])))",
                   # the codes of the recipients the records name, and of those whose parcels the batch picks
                   # up or hands over
                   _json_rows(CodeRow, "k", "k.station_id = %(station)s AND k.used IS false AND (k.phone = ANY("
                                            "CAST(%(phones)s AS text[])) OR k.phone IN (SELECT q.phone FROM parcels "
                                            "AS q WHERE q.ref = ANY(CAST(%(pickup_refs)s AS text[]))))"),
                   "(SELECT json_agg(json_build_array(x.code, x.name_zh)) FROM carriers AS x)",
                   f"(SELECT json_agg(json_build_array(h.id, h.carrier_code)) FROM ({hooked_clients_sql()}) AS h)",
                   # an id for each ref not held yet, for the parcels the batch will create (_stub_parcels);
                   # one not used leaves a gap in the sequence, nothing more
                   "(SELECT json_agg(json_build_array(n.ref, nextval(pg_get_serial_sequence('parcels', 'id')))) "
                   "FROM unnest(CAST(%(refs)s "
                   "AS text[])) AS n(ref) WHERE NOT EXISTS (SELECT 1 FROM parcels AS e WHERE e.ref = n.ref))"))
               + ") AS text)")
_Recipient = namedtuple("_Recipient", "phone consent")
_Carrier = namedtuple("_Carrier", "code name_zh")
_PARCEL_REF, _PARCEL_PHONE = ParcelRow.cols.index("ref"), ParcelRow.cols.index("phone")  # in a row read


@dataclass(frozen=True)
class _BatchKeys:
    """What a batch's look-ups are keyed by."""

    refs: set[str]
    waybills: set[str]
    phones: set[str]
    # the refs pickups and handovers name: their recipients' codes are used up
    pickup_refs: list[str]

    @classmethod
    def of(cls, items: list[Item]) -> "_BatchKeys":
        records = [it.body for it in items if it.kind in K.GATEWAY_KINDS]
        return cls(refs={it.body["ref"] for it in items if isinstance(it.body.get("ref"), str)},
                   waybills={b["waybill"].strip() for b in records if isinstance(b.get("waybill"), str)},
                   phones={b["phone"] for b in records if isinstance(b.get("phone"), str)},
                   pickup_refs=[ref for it in items if it.kind in ("evt", "handover")
                                and isinstance(ref := it.body.get("ref"), str)])

    def code_phones(self, phone_of) -> set[str]:
        """The phones whose codes the batch needs: the records' and those of the parcels picked up or handed
        over (`phone_of(ref)`: the phone of a parcel found, or None)."""
        return self.phones | {phone for ref in self.pickup_refs if (phone := phone_of(ref))}


@dataclass
class _BatchCache:
    """Rows one batch looks up repeatedly, as plain rows: one object per table row, however often it is read."""

    lockers: dict[str, Any] = field(default_factory=dict)
    comps: dict[tuple[str, int], Any] = field(default_factory=dict)
    loaded: set[str] = field(default_factory=set)
    parcels: dict[str, Any] = field(default_factory=dict)
    codes: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    recipients: dict[str, Any] = field(default_factory=dict)
    carriers: dict[str, Any] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    stubbed: set[str] = field(default_factory=set)
    preadvised: dict[tuple[str, str], Any] | None = None
    # ids drawn for the refs the batch names that no parcel holds yet (PostgreSQL), used by _stub_parcels
    parcel_ids: dict[str, int] = field(default_factory=dict)
    # every row read (by table and primary key) and every row made, so one write finds all changes
    held: dict[tuple, PlainRow] = field(default_factory=dict)
    fresh: list[PlainRow] = field(default_factory=list)

    def adopt(self, cls: type[PlainRow], values) -> Any:
        """The batch's object for a row read from the database (the one already held, if any)."""
        row = cls.loaded(values)
        key = (cls, *(getattr(row, k) for k in cls.keys))
        held = self.held.get(key)
        if held is not None:
            return held
        self.held[key] = row
        return row

    def fill(self, station_id: str, keys: _BatchKeys, *, lockers, comps, parcels, preadvised, recipients, codes,
             carriers) -> None:
        """Take the rows the batch's look-ups found (each as values in its plain row's `cols` order)."""
        for values in lockers:
            lk = self.adopt(LockerRow, values)
            self.lockers[lk.id] = lk
        for values in comps:
            comp = self.adopt(CompartmentRow, values)
            self.comps[(comp.locker_id, comp.n)] = comp
        self.loaded = set(self.lockers)
        for values in parcels:
            parcel = self.adopt(ParcelRow, values)
            self.parcels[parcel.ref] = parcel
        self.absent = keys.refs - set(self.parcels)
        if keys.waybills:
            self.preadvised = {(p.waybill, p.carrier): p for p in (self.adopt(ParcelRow, v) for v in preadvised)}
        if keys.phones:
            found = {phone: _Recipient(phone, consent) for phone, consent in recipients}
            self.recipients = {ph: found.get(ph) for ph in keys.phones}
        for ph in keys.code_phones(lambda ref: (p := self.parcels.get(ref)) is not None and p.phone):
            self.codes[(station_id, ph)] = []
        for values in codes:
            code = self.adopt(CodeRow, values)
            self.codes.setdefault((station_id, code.phone), []).append(code)
        self.carriers = {code: _Carrier(code, name) for code, name in carriers}

    def forget(self, row: PlainRow) -> None:
        """Drop a written row whose table row SQL changed since: the next read loads it afresh."""
        self.held.pop((type(row), *(getattr(row, k) for k in row.keys)), None)

    def write(self, session: Session, *, keep_new: bool) -> None:
        """Write the changes of every row held or made; with `keep_new` new rows stay usable afterwards."""
        write_rows(session, [*self.held.values(), *self.fresh], keep_new=keep_new)
        if keep_new:
            for row in self.fresh:
                self.held[(type(row), *(getattr(row, k) for k in row.keys))] = row
        self.fresh = []


_HANDLERS = {"birth": "_birth", "status": "_status", "evt": "_evt", "tele": "_tele", "parcel": "_parcel_record",
             "code": "_code_record", "gw_tele": "_gw_tele", "outbound": "_outbound", "handover": "_handover",
             "fault_report": "_fault_report"}


@dataclass(slots=True)
class _StationRef:
    """What the effects read of the station, read once: an ORM attribute read costs on every item."""

    id: str
    name: str


def _echo_key(raw: Any) -> dict[str, Any]:
    """The src/boot/seq of a rejected raw item for its result, as null when unreadable or not UTF-8 text."""
    key = item_key(raw)
    if key is None or printable(key[0]) != key[0] or printable(key[1]) != key[1]:
        return {"src": None, "boot": None, "seq": None}
    return {"src": key[0], "boot": key[1], "seq": key[2]}


class Ingestor:
    """Applies one batch per transaction; every item gets applied, duplicate or rejected."""

    def __init__(self, *, counters: Counters, telemetry: TelemetryStore, dead_letter_max_rows: int,
                 sms: Style) -> None:
        self.counters = counters
        self.telemetry = telemetry
        self.dead_letters = DeadLetters(counters=counters, max_rows=dead_letter_max_rows)
        self.sms = sms

    # ---- batch ---------------------------------------------------------------------------------

    def ingest(self, session: Session, *, station: Station, batch: Batch) -> tuple[dict[str, Any], bool]:
        """Apply a decoded batch for `station` in the session's transaction, which must hold no writes yet
        (a failed batch pass rolls it back whole); the caller commits.

        Returns the §5.1 response body and whether SMS were queued (so the caller can send them).
        The whole batch is first tried in one pass (one multi-row dedupe insert, then the effects); if any
        item turns out unusable there, the pass is rolled back and the batch is applied item by item.
        """
        station = _StationRef(id=station.id, name=station.name)
        results: list[dict[str, Any]] = []
        parsed: list[Item | ItemRejected] = []
        for raw in batch.items:
            try:
                item = parse_item(raw)
            except ItemRejected as exc:
                parsed.append(exc)
                results.append(_echo_key(raw))
            except MemoryError:
                raise  # the cloud's state, not the item's: the batch fails and is sent again
            except Exception as exc:
                # what the checks cannot judge (a lone surrogate that cannot be written out, a nesting deeper
                # than the JSON writer goes) is this item's fault, not the batch's
                log.warning("item of batch %s from %s cannot be judged: %s", batch.batch, station.id,
                            type(exc).__name__)
                parsed.append(self._unusable(exc))
                results.append(_echo_key(raw))
            else:
                parsed.append(item)
                results.append({"src": item.src, "boot": item.boot, "seq": item.seq})
        statuses = self._fast(session, station, [p for p in parsed if isinstance(p, Item)])
        if statuses is None:
            self._preload(session, station.id, [])
        tally = {K.APPLIED: 0, K.DUPLICATE: 0, K.REJECTED: 0}
        notify = False
        fast_iter = iter(statuses) if statuses is not None else None
        for raw, result, item in zip(batch.items, results, parsed):
            try:
                if isinstance(item, ItemRejected):
                    raise item
                status = next(fast_iter) if fast_iter is not None else self._apply_one(session, station, item)
                notify = notify or (status == K.APPLIED and item.kind == "code")
            except ItemRejected as exc:
                status = K.REJECTED
                result["error"] = printable(exc.wire)
                self.dead_letters.keep(session, station.id, raw, exc.wire)
            result["status"] = status
            tally[status] += 1
        for status, n in tally.items():
            if n:
                self.counters.inc(f"ingest_{status}", n)
        session.info.pop("jc", None)
        session.info.pop("jc_clients", None)
        return {"batch": batch.batch, **tally, "results": results}, notify

    def _fast(self, session: Session, station: Station, items: list[Item]) -> list[str] | None:
        """Apply all items in one pass; None (with the transaction rolled back) if any of them needs the per-item
        path."""
        if not items:
            self._preload(session, station.id, items)
            return []
        station_id = station.id
        keys = [(item.src, item.boot, item.seq, item.kind, month_of(item.rx)) for item in items]
        rows, row_items, first = [], [], {}
        for i, (item, key) in enumerate(zip(items, keys)):
            if key in first:
                continue
            first[key] = i
            body = item.body
            ts = body.get("ts")
            rows.append({"station_id": station_id, "src": item.src, "boot": item.boot, "seq": item.seq,
                         "kind": item.kind, "month": key[4], "type": body.get("type") if item.kind == "evt" else None,
                         "ts": ts if isinstance(ts, int) else None, "rx": item.rx})
            row_items.append(item)
        try:
            # no autoflush: lookups within the batch go through the per-batch caches, and all row changes
            # are written in one flush at the end, grouped into multi-row statements. No savepoint: the pass
            # is the transaction's first write, so a failed pass rolls back the whole transaction (two round
            # trips fewer a batch, and no subtransaction for every row the pass writes)
            with session.no_autoflush:
                # in the try: a key the driver cannot send (a lone surrogate in a ref) sends the batch item by item
                self._preload(session, station_id, items)
                self.telemetry.begin_batch(session)
                session.info[ROWS] = {"parcel_events": [], "notifications": []}
                inserted = self._insert_events(session, station_id, rows, row_items)
                fresh = [(inserted is None or key in inserted) and first[key] == i for i, key in enumerate(keys)]
                self._stub_parcels(session, station_id, [it for it, new in zip(items, fresh) if new])
                statuses = []
                for item, new in zip(items, fresh):
                    if new:
                        self._effect(session, station, item)
                        statuses.append(K.APPLIED)
                    else:
                        statuses.append(K.DUPLICATE)
                # the rows the effects changed, one statement per table instead of one per row
                self._ctx(session).write(session, keep_new=False)
                session.flush()
                self.telemetry.write_batch(session)
                buffered = session.info.pop(ROWS)
                bulk_insert(session, ParcelEvent.__table__, buffered["parcel_events"])
                bulk_insert(session, Notification.__table__, buffered["notifications"])
        except Exception as exc:
            if isinstance(exc, DBAPIError) and transient(exc):
                raise
            # an item unusable in any way (rejected, refused by the database, a value the driver cannot send):
            # nothing of this pass remains; the per-item path sorts it out in a new transaction
            session.rollback()
            self.telemetry.drop_batch(session)
            session.info.pop(ROWS, None)
            # the plain rows of this pass are dropped with its cache: the per-item path reads them afresh
            self.counters.inc("ingest_slow_batches")
            log.info("batch from %s applied item by item: %s", station.id, printable(str(exc))[:300])
            return None
        return statuses

    def _stub_parcels(self, session: Session, station_id: str, items: list[Item]) -> None:
        """Create, in one statement, the parcels this batch names that do not exist yet (as stubs)."""
        ctx = self._ctx(session)
        stubs: dict[str, dict[str, Any]] = {}
        now = time.time()
        # a parcel record with a waybill may take over a pre-advised parcel: its ref is left to that record
        candidates = ctx.preadvised or {}
        adopting = {it.body["ref"] for it in items if it.kind == "parcel" and isinstance(it.body.get("waybill"), str)
                    and (it.body["waybill"].strip(), (it.body.get("carrier") or "").strip().upper()) in candidates}
        for it in items:
            ref = it.body.get("ref")
            # an outbound record creates its own parcel (direction outbound), not an inbound stub
            if it.kind not in _STUB_KINDS:
                continue
            if not isinstance(ref, str) or ref not in ctx.absent or ref in stubs or ref in adopting:
                continue
            locker = it.src if it.kind == "evt" else it.body.get("locker")
            c = it.body.get("c") if it.kind in ("evt", "parcel") else None
            stubs[ref] = {"ref": ref, "station_id": station_id, "locker_id": locker, "compartment": c,
                          "status": "preadvised", "direction": "inbound", "fee_cents": 0, "produce": False,
                          "reminders": 0, "created_at": now, "updated_at": now}
        if not stubs:
            return
        if session.get_bind().dialect.name == "postgresql":
            # the stubs are made here with ids drawn from the sequence and inserted with the batch's other new
            # rows at its end, holding by then what the batch's records and events set: one insert and no
            # update per new parcel (inserted first and changed later, each changed its indexed columns and
            # cost a new row version). A ref another transaction inserts meanwhile fails that insert, and the
            # batch then goes item by item
            # (a stub's ref is one the look-ups found no parcel for, so it has an id drawn for it)
            made = [ParcelRow.fresh(id=ctx.parcel_ids[ref], **values) for ref, values in stubs.items()]
            ctx.fresh.extend(made)
        else:
            bulk_insert(session, Parcel.__table__, list(stubs.values()), skip_existing=True)
            made = [ctx.adopt(ParcelRow, row) for row in session.execute(
                ParcelRow.select().where(one_of(session, Parcel.ref, set(stubs)))).all()]
        for parcel in made:
            ctx.parcels[parcel.ref] = parcel
            ctx.absent.discard(parcel.ref)
            ctx.stubbed.add(parcel.ref)

    @staticmethod
    def _insert_events(session: Session, station_id: str, rows: list[dict[str, Any]],
                       items: list[Item]) -> set[tuple] | None:
        """Insert the batch's ledger rows (`items` gives each row's body, `rows` has no key twice), skipping
        ones already held; returns the keys inserted, or None when every row was."""
        if session.get_bind().dialect.name == "postgresql":
            # one statement, one JSON document: the SQL text never changes, so nothing is re-parsed. A body
            # validation already wrote out is not written again: each row's text is closed with it
            doc = None
            if all(it.text is not None for it in items):
                doc = (b"[" + b",".join(orjson.dumps(r)[:-1] + b',"body":' + it.text + b"}" for r, it in zip(rows, items))
                       + b"]").decode("utf-8")
            else:
                rows = [{**r, "body": it.body} for r, it in zip(rows, items)]
                try:
                    doc = orjson.dumps(rows).decode("utf-8")
                except orjson.JSONEncodeError:
                    doc = None
            if doc is not None:
                got = pg_rows(session, _PG_EVENTS_INSERT_JSON, {"station": station_id, "rows": doc,
                                                                "total": len(rows)})
                if len(got) == 1 and got[0][0] is None:
                    return None
                return set(got)
            # values orjson cannot write (integers beyond 64 bits, lone surrogates): one array per column
            rows = [r if "body" in r else {**r, "body": it.body} for r, it in zip(rows, items)]
            cols = {name: [r[name] for r in rows] for name in ("src", "boot", "seq", "kind", "month", "type")}
            # one element type per array: psycopg refuses lists mixing int and float
            cols["ts"] = [None if r["ts"] is None else float(r["ts"]) for r in rows]
            cols["rx"] = [float(r["rx"]) for r in rows]
            cols["body"] = [_json_text(r["body"]) for r in rows]
            result = session.execute(_PG_EVENTS_INSERT, {"station": station_id, **cols})
            return {tuple(r) for r in result.all()}
        table = Event.__table__
        stmt = (_insert(session, Event)
                .on_conflict_do_nothing(index_elements=["station_id", "src", "boot", "seq", "kind", "month"])
                .returning(table.c.src, table.c.boot, table.c.seq, table.c.kind, table.c.month))
        rows = [{**r, "body": it.body} for r, it in zip(rows, items)]
        return {tuple(r) for r in session.execute(stmt, rows).all()}

    def _preload(self, session: Session, station_id: str, items: list[Item]) -> _BatchCache:
        """Load once per batch what events look up again and again: lockers, compartments, parcels, carriers."""
        ctx = _BatchCache()
        session.info["jc"] = ctx
        session.info["jc_clients"] = {}
        keys = _BatchKeys.of(items)
        if session.get_bind().dialect.name == "postgresql":
            # all in one statement and one round trip (_PG_PRELOAD)
            (doc,), = pg_rows(session, _PG_PRELOAD, {
                "station": station_id, "refs": list(keys.refs), "waybills": list(keys.waybills),
                "phones": list(keys.phones), "pickup_refs": keys.pickup_refs})
            lockers, comps, parcels, preadvised, recipients, codes, carriers, clients, ids = (
                found or () for found in orjson.loads(doc))
            prime_clients(session, clients)
            ctx.parcel_ids = dict(ids)
        else:
            q = _LOOKUPS
            lockers = fixed_rows(session, q["lockers"], {"station": station_id})
            comps = fixed_rows(session, q["compartments"], {"station": station_id})
            parcels = fixed_rows(session, q["parcels"], {"refs": list(keys.refs)}) if keys.refs else ()
            preadvised = fixed_rows(session, q["preadvised"], {"station": station_id,
                                                               "waybills": list(keys.waybills)}) if keys.waybills else ()
            recipients = fixed_rows(session, q["recipients"], {"phones": list(keys.phones)}) if keys.phones else ()
            # pickups and handovers use up the codes of their parcel's recipient: load those codes with the rest
            code_phones = keys.code_phones({row[_PARCEL_REF]: row[_PARCEL_PHONE] for row in parcels}.get)
            codes = fixed_rows(session, q["codes"], {"station": station_id, "phones": list(code_phones)}
                               ) if code_phones else ()
            carriers = fixed_rows(session, q["carriers"])
        ctx.fill(station_id, keys, lockers=lockers, comps=comps, parcels=parcels, preadvised=preadvised,
                 recipients=recipients, codes=codes, carriers=carriers)
        return ctx

    @staticmethod
    def _ctx(session: Session) -> _BatchCache:
        ctx = session.info.get("jc")
        if ctx is None:
            ctx = session.info["jc"] = _BatchCache()
        return ctx

    def _apply_one(self, session: Session, station: Station, item: Item) -> str:
        try:
            with session.begin_nested():
                stmt = _insert(session, Event).values(
                    station_id=station.id, src=item.src, boot=item.boot, seq=item.seq, kind=item.kind,
                    month=month_of(item.rx),
                    type=item.body.get("type") if item.kind == "evt" else None,
                    ts=item.body.get("ts") if isinstance(item.body.get("ts"), int) else None,
                    rx=item.rx, body=item.body,
                ).on_conflict_do_nothing(index_elements=["station_id", "src", "boot", "seq", "kind", "month"]
                                         ).returning(Event.__table__.c.seq)
                # RETURNING yields no row when the conflict clause skipped the insert (rowcount is not portable)
                if session.execute(stmt).first() is None:
                    return K.DUPLICATE
                self._effect(session, station, item)
                self._ctx(session).write(session, keep_new=True)
                session.flush()
        except ItemRejected:
            # the savepoint is rolled back by now; cached rows may be stale
            self._reset(session)
            raise
        except DBAPIError as exc:
            if transient(exc):
                raise
            # validation should keep these out; if one slips through it must not fail the batch
            self._reset(session)
            log.error("item %s/%s/%s not storable: %s", item.src, item.boot, item.seq, printable(str(exc.orig)))
            self.counters.inc("ingest_storage_rejects")
            raise ItemRejected(K.E_BAD_FIELD, "a value cannot be stored") from exc
        except MemoryError:
            raise  # the cloud's state, not the item's: the batch fails and is sent again
        except Exception as exc:
            # a value the driver cannot send, a nesting too deep to write, or a fault in an effect: the item is
            # dead-lettered, so that it cannot hold back the station's uplink (it would fail again on every retry)
            self._reset(session)
            log.exception("item %s/%s/%s cannot be applied", item.src, item.boot, item.seq)
            raise self._unusable(exc) from exc
        return K.APPLIED

    def _unusable(self, exc: BaseException) -> ItemRejected:
        """The rejection of an item that failed in a way no check foresaw (counted: each one is worth a look)."""
        self.counters.inc("ingest_unusable_items")
        return ItemRejected(K.E_BAD_FIELD, f"the item cannot be stored or applied ({type(exc).__name__})")

    def _reset(self, session: Session) -> None:
        """After a savepoint rollback cached rows may be gone or changed: start the caches afresh."""
        ctx = self._ctx(session)
        if ctx.lockers:
            self._preload(session, next(iter(ctx.lockers.values())).station_id, [])
        else:
            session.info["jc"] = _BatchCache()

    # ---- effects -------------------------------------------------------------------------------

    def _effect(self, session: Session, station: Station, item: Item) -> None:
        getattr(self, _HANDLERS[item.kind])(session, station, item)

    def _locker(self, session: Session, station_id: str, locker_id: str) -> Locker:
        cached = self._ctx(session).lockers.get(locker_id)
        if cached is not None and cached.station_id == station_id:
            return cached
        row = session.execute(LockerRow.select().where(Locker.station_id == station_id,
                                                       Locker.id == locker_id)).first()
        if row is not None:
            locker = self._ctx(session).adopt(LockerRow, row)
            self._ctx(session).lockers[locker.id] = locker
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
        ctx = self._ctx(session)
        cache = ctx.comps
        if locker.id in ctx.loaded:
            return cache.get((locker.id, n))
        row = session.execute(CompartmentRow.select().where(Compartment.station_id == locker.station_id,
                                                            Compartment.locker_id == locker.id,
                                                            Compartment.n == n)).first()
        if row is None:
            return None
        comp = cache[(locker.id, n)] = ctx.adopt(CompartmentRow, row)
        return comp

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
        # the rows change below by SQL: what the batch changed so far is written first, and the cached
        # compartments of this locker are read afresh when next used
        ctx = self._ctx(session)
        ctx.write(session, keep_new=True)
        ctx.loaded.discard(locker.id)
        for key in [k for k in ctx.comps if k[0] == locker.id]:
            ctx.forget(ctx.comps.pop(key))
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
        self.telemetry.record_point(session, TelemetryPointSample(
            measurement="link", station_id=station.id, locker_id=locker.id, c=None, at=item.rx,
            value=1.0 if item.body["state"] == "online" else 0.0))
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
        if kind == "door":
            self.telemetry.record_point(session, TelemetryPointSample(
                measurement="door", station_id=station.id, locker_id=locker.id, c=body["c"], at=at,
                value=1.0 if body["open"] else 0.0))
        elif kind in ("deposit", "pickup", "deposit_void"):
            self.telemetry.record_point(session, TelemetryPointSample(
                measurement="occupancy", station_id=station.id, locker_id=locker.id, c=body["c"], at=at,
                value=1.0 if kind == "deposit" else 0.0))
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
                self._use_codes(session, station.id, parcel.ref, parcel.phone)
            elif parcel.status in ("deposited", "notified"):
                parcel.status = "preadvised"
                parcel.deposited_at = None
                parcel.updated_at = time.time()
                session.add(ParcelEvent(parcel_id=parcel.id, status="preadvised", at=at,
                                        source=f"{source} deposit_void"))

    @staticmethod
    def _comp_effect(comp: Compartment, body: dict, rx: float) -> None:
        """Move the compartment row as the event says, by the one mirror the gateway uses too."""
        changes = mirror(body, {"st": comp.state, "door": comp.door, "occ": comp.occ, "ref": comp.ref})
        if not changes:
            return
        for key, value in changes.items():
            setattr(comp, "state" if key == "st" else key, value)
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
        ctx = self._ctx(session)
        found = ctx.parcels.get(ref)
        if found is None and ref not in ctx.absent:
            row = session.execute(ParcelRow.select().where(Parcel.ref == ref)).first()
            found = ctx.adopt(ParcelRow, row) if row is not None else None
        if found is not None:
            ctx.parcels[ref] = found
            return found
        now = time.time()
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        table = Parcel.__table__
        row = session.execute(dialect.insert(table).values(
            ref=ref, station_id=station_id, locker_id=locker_id, compartment=c, status="preadvised",
            direction="inbound", fee_cents=0, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["ref"]).returning(*table.columns)).first()
        if row is None:
            # another transaction created it between our look-up and the insert
            row = session.execute(ParcelRow.select().where(Parcel.ref == ref)).one()
        parcel = ctx.parcels[ref] = ctx.adopt(ParcelRow, row)
        ctx.absent.discard(ref)
        return parcel

    @staticmethod
    def _advance(session: Session, parcel: Parcel, status: str, at: float, source: str) -> None:
        """Record `status` in the timeline; the parcel status itself only ever moves forward."""
        advance(session, parcel, status, at, source)

    def _live_codes(self, session: Session, station_id: str, phone: str) -> list[PickupCode]:
        ctx = self._ctx(session)
        key = (station_id, phone)
        if key not in ctx.codes:
            ctx.codes[key] = [ctx.adopt(CodeRow, row) for row in session.execute(CodeRow.select().where(
                PickupCode.station_id == station_id, PickupCode.phone == phone, PickupCode.used.is_(False)))]
        return ctx.codes[key]

    def _statuses(self, session: Session, refs: list[str]) -> dict[str, str]:
        ctx = self._ctx(session)
        out = {r: ctx.parcels[r].status for r in refs if r in ctx.parcels}
        rest = [r for r in refs if r not in out]
        if rest:
            out.update(session.execute(select(Parcel.ref, Parcel.status).where(one_of(session, Parcel.ref, rest))).all())
        return out

    def _use_codes(self, session: Session, station_id: str, ref: str, phone: str | None = None) -> None:
        if phone:
            codes = [c for c in self._live_codes(session, station_id, phone) if not c.used]
        else:
            ctx = self._ctx(session)
            codes = [c for c in (ctx.adopt(CodeRow, row) for row in session.execute(CodeRow.select().where(
                PickupCode.station_id == station_id, PickupCode.used.is_(False)))) if not c.used]
        for code in codes:
            if ref not in code.refs:
                continue
            if all(s in _DONE_STATUSES for s in self._statuses(session, list(code.refs)).values()):
                code.used = True

    def _own_parcel(self, session: Session, station: Station, ref: str, locker_id: str | None,
                    c: int | None, rx: float) -> tuple[Parcel, bool]:
        ctx = self._ctx(session)
        existed = (ref in ctx.parcels and ref not in ctx.stubbed) or (
            ref not in ctx.absent and ref not in ctx.parcels and
            session.scalar(select(Parcel.id).where(Parcel.ref == ref)) is not None)
        parcel = self._get_or_stub(session, station.id, ref, locker_id, c, rx)
        if parcel.station_id != station.id:
            raise ItemRejected(K.E_BAD_FIELD, f"parcel {ref} belongs to another station")
        return parcel, not existed

    def _adopt_preadvice(self, session: Session, station_id: str, body: dict) -> None:
        """A carrier's pre-advised parcel takes the gateway's ref when the courier brings it to the locker."""
        ctx = self._ctx(session)
        if not body.get("waybill") or body["ref"] in ctx.parcels or (
                body["ref"] not in ctx.absent and session.scalar(select(Parcel.id).where(Parcel.ref == body["ref"]))):
            return
        key = (body["waybill"].strip(), (body.get("carrier") or "").strip().upper())
        if ctx.preadvised is not None:
            pre = ctx.preadvised.pop(key, None)
        else:
            row = session.execute(ParcelRow.select().where(
                Parcel.station_id == station_id, Parcel.waybill == key[0], Parcel.carrier == key[1],
                Parcel.status == "preadvised", Parcel.locker_id.is_(None)).limit(1)).first()
            pre = ctx.adopt(ParcelRow, row) if row is not None else None
        if pre is not None:
            ctx.parcels.pop(pre.ref, None)
            ctx.absent.discard(body["ref"])
            pre.ref = body["ref"]
            # written now: a later look-up of the old ref in this batch must not find this parcel
            ctx.write(session, keep_new=True)
            ctx.parcels[pre.ref] = pre

    def _parcel_record(self, session: Session, station: Station, item: Item) -> None:
        body = item.body
        locker = self._locker(session, station.id, body["locker"])
        if self._comp(session, locker, body["c"]) is None:
            raise ItemRejected(K.E_NO_SUCH_COMPARTMENT, f"locker {locker.id} has no compartment {body['c']}")
        self._adopt_preadvice(session, station.id, body)
        parcel, created = self._own_parcel(session, station, body["ref"], locker.id, body["c"], item.rx)
        parcel.locker_id, parcel.compartment = locker.id, body["c"]
        for name in ("waybill", "carrier", "phone", "size"):
            if body.get(name) is not None:
                setattr(parcel, name, body[name].strip())
        ctx = self._ctx(session)
        if parcel.carrier and parcel.carrier.upper() in ctx.carriers:
            parcel.carrier = parcel.carrier.upper()
        if parcel.phone and parcel.phone not in ctx.recipients:
            ctx.recipients[parcel.phone] = session.execute(select(Recipient.phone, Recipient.consent).where(
                Recipient.phone == parcel.phone)).first()
        recipient = ctx.recipients.get(parcel.phone) if parcel.phone else None
        if recipient is not None and recipient.consent == "refused":
            # the gateway checks consent before it opens a door; this catches a gateway that did not
            self.counters.inc("deposits_without_consent")
            log.warning("%s: parcel %s asked a compartment for %s, who refused locker delivery", station.id,
                        parcel.ref, parcel.phone)
        parcel.updated_at = time.time()
        if created or not session.scalar(select(ParcelEvent.id).where(ParcelEvent.parcel_id == parcel.id,
                                                                      ParcelEvent.status == "preadvised")):
            row = {"parcel_id": parcel.id, "status": "preadvised", "at": item.rx, "source": "gw/parcel"}
            buffered = session.info.get(ROWS)
            if buffered is not None:
                buffered["parcel_events"].append(row)
            else:
                session.add(ParcelEvent(**row))

    def _keep_code(self, session: Session, station_id: str, body: dict, ref: str, locker_id: str | None) -> None:
        """One live code per recipient per station: the same code gains the parcel, a new one supersedes."""
        live = [c for c in self._live_codes(session, station_id, body["phone"]) if not c.used]
        for code in live:
            if code.code == body["code"]:
                if ref not in code.refs:
                    code.refs = [*code.refs, ref]
                code.exp = max(code.exp or 0, body.get("exp_ts") or 0) or None
                return
        carried: list[str] = []
        for code in live:
            code.used = True
            carried += [r for r in code.refs if r not in carried]
            self.counters.inc("codes_superseded")
        statuses = self._statuses(session, carried) if carried else {}
        refs = [r for r in carried if statuses.get(r) in ("deposited", "notified", "overdue") and r != ref] + [ref]
        code = CodeRow.fresh(station_id=station_id, phone=body["phone"], code=body["code"], refs=refs,
                             exp=body.get("exp_ts"), used=False, created_at=time.time(), locker_id=locker_id,
                             origin="gateway")
        self._ctx(session).fresh.append(code)
        self._live_codes(session, station_id, body["phone"]).append(code)

    def _code_record(self, session: Session, station: Station, item: Item) -> None:
        body = item.body
        locker_id = body.get("locker")
        if locker_id is not None:
            self._locker(session, station.id, locker_id)
        parcel, _ = self._own_parcel(session, station, body["ref"], locker_id, None, item.rx)
        if parcel.phone is None:
            parcel.phone = body["phone"]
        locker_id = locker_id or parcel.locker_id or "?"
        self._keep_code(session, station.id, body, parcel.ref, locker_id)
        self._advance(session, parcel, "notified", item.rx, f"gw/{item.boot}/{item.seq}")
        carrier = self._ctx(session).carriers.get(parcel.carrier) if parcel.carrier else None
        message = self.sms.pickup(carrier=carrier.name_zh if carrier else parcel.carrier, station=station.name,
                                  locker=locker_id, c=parcel.compartment, code=body["code"])
        row = queued(body["phone"], message, ref=parcel.ref)
        buffered = session.info.get(ROWS)
        if buffered is not None:
            buffered["notifications"].append(row)
        else:
            session.add(Notification(**row))

    # ---- station records (gw_tele, outbound, handover, fault_report) ---------------------------

    def _gw_tele(self, session: Session, station: Station, item: Item) -> None:
        """Latest gateway health on the station (newest rx wins) plus a point series in the telemetry store."""
        body = item.body
        values = {"at": item.rx, "outbox_depth": body["outbox_depth"], "oldest_unsent_s": body.get("oldest_unsent_s"),
                  "uplink": body["uplink"], "lockers_online": body["lockers_online"],
                  "lockers_total": body["lockers_total"], "cpu_temp": body.get("cpu_temp"), "up_s": body["up_s"],
                  "counters": dict(body.get("counters") or {})}
        held = session.get(GatewayHealth, station.id)
        if held is None:
            session.add(GatewayHealth(station_id=station.id, **values))
            session.flush()
        elif item.rx >= held.at:
            for k, v in values.items():
                setattr(held, k, v)
        else:
            # an older report replayed late still goes into the history, not over the latest values
            self.counters.inc("stale_gw_tele")
        lag = body.get("oldest_unsent_s")
        for measurement, value in (("gw_outbox", body["outbox_depth"]), ("gw_lag", lag),
                                   ("gw_uplink", 1.0 if body["uplink"] == "up" else 0.0)):
            if value is not None:
                self.telemetry.record_point(session, TelemetryPointSample(
                    measurement=measurement, station_id=station.id, locker_id=None, c=None, at=item.rx,
                    value=float(value)))

    def _outbound(self, session: Session, station: Station, item: Item) -> None:
        """A parcel sent from the village (寄件): direction outbound, fee with its reason, produce for statistics."""
        body = item.body
        ctx = self._ctx(session)
        ref = body["ref"]
        existing = ctx.parcels.get(ref) if ref in ctx.parcels else (
            None if ref in ctx.absent else session.scalar(select(Parcel.id).where(Parcel.ref == ref)))
        if existing is not None:
            raise ItemRejected(K.E_BAD_FIELD, f"ref {ref} is already used by another parcel")
        carrier = body["carrier"].strip()
        if carrier.upper() in ctx.carriers:
            carrier = carrier.upper()
        produce = (body.get("produce") or "").strip()
        now = time.time()
        parcel = ParcelRow.fresh(
            ref=ref, station_id=station.id, direction="outbound", carrier=carrier, phone=body["sender_phone"],
            sender_name=body["sender_name"].strip(), dest=body["dest"].strip(), weight_g=body["weight_g"],
            fee_cents=body["fee_cents"], fee_reason=(body.get("fee_reason") or "").strip() or None,
            produce=bool(produce), produce_name=produce or None, status="taken_in", reminders=0, created_at=item.rx,
            updated_at=now)
        # stored at once: its timeline rows need its id
        write_rows(session, [parcel], keep_new=True)
        parcel = ctx.parcels[ref] = ctx.adopt(ParcelRow, parcel.values())
        ctx.absent.discard(ref)
        if body["fee_cents"]:
            self.counters.inc("outbound_fees_recorded")
        self._advance(session, parcel, "taken_in", item.rx, f"gw/{item.boot}/{item.seq} outbound")

    def _handover(self, session: Session, station: Station, item: Item) -> None:
        """Door-to-door delivery by the village agent: delivered_door in the timeline, with who and when."""
        body = item.body
        parcel, _ = self._own_parcel(session, station, body["ref"], None, None, item.rx)
        if parcel.direction == "outbound":
            raise ItemRejected(K.E_BAD_FIELD, f"parcel {parcel.ref} is outbound; only inbound parcels are handed over")
        # kept on a stub either way; worth a look when neither a parcel record nor a deposit came first
        if parcel.waybill is None and parcel.phone is None and parcel.deposited_at is None:
            self.counters.inc("handover_unknown_parcel")
            log.warning("%s: handover of parcel %s the cloud had no record of", station.id, parcel.ref)
        self._advance(session, parcel, "delivered_door", float(body["at"]),
                      f"{body['how']} by {body['by']}"[:64])
        self._use_codes(session, station.id, parcel.ref, parcel.phone)

    def _fault_report(self, session: Session, station: Station, item: Item) -> None:
        """A villager's fault report becomes an alarm the maintenance dashboard shows until acknowledged."""
        body = item.body
        locker = self._locker(session, station.id, body["locker"])
        c = body.get("c")
        if c is not None and self._comp(session, locker, c) is None:
            raise ItemRejected(K.E_NO_SUCH_COMPARTMENT, f"locker {locker.id} has no compartment {c}")
        session.add(Alarm(station_id=station.id, locker_id=locker.id, c=c, kind=K.FAULT_REPORT_KIND,
                          at=float(body["at"]), acked=False, phone=body.get("phone") or None,
                          text=body["text"].strip()))
        self.counters.inc("fault_reports")


def advance(session: Session, parcel: Parcel, status: str, at: float, source: str) -> None:
    """Record `status` in the parcel's timeline (status only moves forward) and queue carrier webhooks."""
    if K.PARCEL_RANK[status] > K.PARCEL_RANK[parcel.status]:
        parcel.status = status
    parcel.updated_at = time.time()
    row = {"parcel_id": parcel.id, "status": status, "at": at, "source": source}
    buffered = session.info.get(ROWS)
    if buffered is not None:
        buffered["parcel_events"].append(row)
    else:
        session.add(ParcelEvent(**row))
    enqueue_status(session, parcel, status, at)
