"""Applies ingest batches: dedupe by the ledger's unique key, then each item's domain effect.

The orchestration lives here; the storage seam in store.py, the batch's state in context.py, finding its rows
in find.py, and the effects by domain: lockers.py (lockers, compartments), parcels.py (parcel records,
deposits, pickups), codes.py (pickup codes), records.py (the station records).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .. import constants as K
from ..counters import Counters
from ..deadletters import DeadLetters, printable
from ..errors import ItemRejected
from ..models import Notification, ParcelEvent, Station
from ..partitions import month_of
from ..protocol import Batch, Item, item_key, parse_item
from ..settings import Settings
from ..sms_text import Style
from ..storage import bulk_insert, pg_pipeline, transient
from ..telemetry import TelemetryStore
from . import codes, lockers, parcels, records, store
from .context import BatchContext, StationRef

log = logging.getLogger("jincun.cloud.ingest")

# each item kind's domain effect
EFFECTS: dict[str, Callable[[BatchContext, Item], None]] = {
    "birth": lockers.birth, "status": lockers.status, "evt": lockers.evt, "tele": lockers.tele,
    "parcel": parcels.parcel_record, "code": codes.code_record, "gw_tele": records.gw_tele,
    "outbound": records.outbound, "handover": records.handover, "fault_report": records.fault_report,
    "collected": records.collected, "charge": records.charge}


def _echo_key(raw: Any) -> dict[str, Any]:
    """The src/boot/seq of a rejected raw item for its result, as null when unreadable or not UTF-8 text."""
    key = item_key(raw)
    if key is None or printable(key[0]) != key[0] or printable(key[1]) != key[1]:
        return {"src": None, "boot": None, "seq": None}
    return {"src": key[0], "boot": key[1], "seq": key[2]}


class Ingestor:
    """Applies one batch per transaction; every item gets applied, duplicate or rejected."""

    def __init__(self, *, counters: Counters, telemetry: TelemetryStore, dead_letter_max_rows: int,
                 sms: Style, settings: Settings) -> None:
        self.settings = settings
        self.counters = counters
        self.telemetry = telemetry
        self.dead_letters = DeadLetters(counters=counters, max_rows=dead_letter_max_rows)
        self.sms = sms

    def ingest(self, session: Session, *, station: Station, batch: Batch) -> tuple[dict[str, Any], bool]:
        """Apply a decoded batch for `station` in the session's transaction, which must hold no writes yet
        (a failed batch pass rolls it back whole); the caller commits.

        Returns the §5.1 response body and whether SMS were queued (so the caller can send them).
        The whole batch is first tried in one pass (one multi-row dedupe insert, then the effects); if any
        item turns out unusable there, the pass is rolled back and the batch is applied item by item.
        """
        ctx = BatchContext(session=session, station=StationRef(id=station.id, name=station.name),
                           counters=self.counters, telemetry=self.telemetry, sms=self.sms,
                           settings=self.settings)
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
        statuses = self._one_pass(ctx, [p for p in parsed if isinstance(p, Item)])
        if statuses is None:
            store.preload(ctx, [])
        tally = {K.APPLIED: 0, K.DUPLICATE: 0, K.REJECTED: 0}
        notify = False
        fast_iter = iter(statuses) if statuses is not None else None
        for raw, result, entry in zip(batch.items, results, parsed):
            try:
                if isinstance(entry, ItemRejected):
                    raise entry
                status = next(fast_iter) if fast_iter is not None else self._apply_one(ctx, entry)
                notify = notify or (status == K.APPLIED and entry.kind == "code")
            except ItemRejected as exc:
                status = K.REJECTED
                result["error"] = printable(exc.wire)
                self.dead_letters.keep(session, station.id, raw, exc.wire)
            result["status"] = status
            tally[status] += 1
        for status, n in tally.items():
            if n:
                self.counters.inc(f"ingest_{status}", n)
        return {"batch": batch.batch, **tally, "results": results}, notify

    def _one_pass(self, ctx: BatchContext, items: list[Item]) -> list[str] | None:
        """Apply all items in one pass; None (with the transaction rolled back) if any of them needs the per-item
        path."""
        session = ctx.session
        if not items:
            store.preload(ctx, items)
            return []
        keys = [(item.src, item.boot, item.seq, item.kind, month_of(item.rx)) for item in items]
        rows, row_items, first = [], [], {}
        for i, (item, key) in enumerate(zip(items, keys)):
            if key in first:
                continue
            first[key] = i
            rows.append(store.ledger_row(ctx.station.id, item, key[4]))
            row_items.append(item)
        try:
            # no autoflush: lookups within the batch go through the batch's cache, and all row changes are
            # written in one flush at the end, grouped into multi-row statements. No savepoint: the pass is the
            # transaction's first write, so a failed pass rolls back the whole transaction (two round trips
            # fewer a batch, and no subtransaction for every row the pass writes)
            with session.no_autoflush:
                # in the try: a key the driver cannot send (a lone surrogate in a ref) sends the batch item by item
                store.preload(ctx, items)
                ctx.samples = self.telemetry.begin_batch()
                ctx.buffered = {"parcel_events": [], "notifications": []}
                inserted = store.insert_ledger(session, ctx.station.id, rows, row_items)
                fresh = [(inserted is None or key in inserted) and first[key] == i for i, key in enumerate(keys)]
                parcels.stub_parcels(ctx, [it for it, new in zip(items, fresh) if new])
                statuses = []
                for item, new in zip(items, fresh):
                    if new:
                        EFFECTS[item.kind](ctx, item)
                        statuses.append(K.APPLIED)
                    else:
                        statuses.append(K.DUPLICATE)
                # the rows the effects changed, one statement per table instead of one per row, and the rows the
                # batch only inserts (timeline, SMS outbox; neither has a foreign key to the others): all in one
                # pipeline, one round trip instead of one per statement
                buffered, ctx.buffered = ctx.buffered, None
                with pg_pipeline(session):
                    ctx.write(keep_new=False)
                    bulk_insert(session, store.table_of(ParcelEvent), buffered["parcel_events"])
                    bulk_insert(session, store.table_of(Notification), buffered["notifications"])
                # the rare ORM rows (alarms, gateway health, webhook deliveries) and SQL telemetry, which reads
                # its row counts, after the pipeline
                session.flush()
                samples, ctx.samples = ctx.samples, None
                self.telemetry.write_batch(session, samples)
        except Exception as exc:
            if isinstance(exc, DBAPIError) and transient(exc):
                raise
            # an item unusable in any way (rejected, refused by the database, a value the driver cannot send):
            # nothing of this pass remains; the per-item path sorts it out in a new transaction (its rows are
            # dropped with the batch's cache, and read afresh)
            session.rollback()
            ctx.buffered = ctx.samples = None
            self.counters.inc("ingest_slow_batches")
            log.info("batch from %s applied item by item: %s", ctx.station.id, printable(str(exc))[:300])
            return None
        return statuses

    def _apply_one(self, ctx: BatchContext, item: Item) -> str:
        session = ctx.session
        try:
            with session.begin_nested():
                row = store.ledger_row(ctx.station.id, item, month_of(item.rx))
                if store.insert_ledger(session, ctx.station.id, [row], [item]) is not None:
                    return K.DUPLICATE
                EFFECTS[item.kind](ctx, item)
                ctx.write(keep_new=True)
                session.flush()
        except ItemRejected:
            # the savepoint is rolled back by now; cached rows may be stale
            store.preload(ctx, [])
            raise
        except DBAPIError as exc:
            if transient(exc):
                raise
            # validation should keep these out; if one slips through it must not fail the batch
            store.preload(ctx, [])
            log.error("item %s/%s/%s not storable: %s", item.src, item.boot, item.seq, printable(str(exc.orig)))
            self.counters.inc("ingest_storage_rejects")
            raise ItemRejected(K.E_BAD_FIELD, "a value cannot be stored") from exc
        except MemoryError:
            raise  # the cloud's state, not the item's: the batch fails and is sent again
        except Exception as exc:
            # a value the driver cannot send, a nesting too deep to write, or a fault in an effect: the item is
            # dead-lettered, so that it cannot hold back the station's uplink (it would fail again on every retry)
            store.preload(ctx, [])
            log.exception("item %s/%s/%s cannot be applied", item.src, item.boot, item.seq)
            raise self._unusable(exc) from exc
        return K.APPLIED

    def _unusable(self, exc: BaseException) -> ItemRejected:
        """The rejection of an item that failed in a way no check foresaw (counted: each one is worth a look)."""
        self.counters.inc("ingest_unusable_items")
        return ItemRejected(K.E_BAD_FIELD, f"the item cannot be stored or applied ({type(exc).__name__})")
