"""The events ledger: whole-batch pass with per-item fallback, and monthly partitions on PostgreSQL."""

from __future__ import annotations

import threading
import time

from cloudkit import STATION, birth, empty_comps, evt, parcel_record
from sqlalchemy import text

from cloud.partitions import month_of


def test_clean_batch_in_one_pass_and_bad_item_falls_back(cloud):
    items = [parcel_record(1, "p-1", c=2), birth(0, empty_comps(6), item_seq=0)]
    items += [evt(s, "door", c=2, open=s % 2 == 1) for s in range(1, 41)]
    assert cloud.ingest(items).json()["applied"] == 42
    assert cloud.counters().get("ingest_slow_batches", 0) == 0
    mixed = [evt(41, "door", c=3, open=True), evt(1, "door", src="l9", c=1, open=True),
             evt(42, "door", c=3, open=False)]
    body = cloud.ingest(mixed).json()
    assert [r["status"] for r in body["results"]] == ["applied", "rejected", "applied"]
    assert cloud.counters()["ingest_slow_batches"] == 1
    # the same key twice in one batch is applied once
    dup = [evt(43, "door", c=4, open=True), evt(43, "door", c=4, open=True)]
    assert [r["status"] for r in cloud.ingest(dup).json()["results"]] == ["applied", "duplicate"]


def test_events_partitioned_by_month_on_postgres(cloud):
    engine = cloud.client.app.state.engine
    now = time.time()
    old = now - 400 * 86400
    resp = cloud.ingest([evt(1, "door", c=1, open=True, rx=now), evt(2, "door", c=1, open=False, rx=old)])
    assert resp.json()["applied"] == 2
    with engine.connect() as conn:
        if engine.dialect.name != "postgresql":
            months = sorted(conn.execute(text("SELECT month FROM events")).scalars())
            assert months == sorted([month_of(now), month_of(old)])
            return
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'events'")).scalar()
        assert kind == "p"
        placed = dict(conn.execute(text("SELECT seq, tableoid::regclass::text FROM events")).all())
    assert placed == {1: f"events_parts.events_{month_of(now)}", 2: f"events_parts.events_{month_of(old)}"}


def test_new_parcel_ref_taken_meanwhile_goes_item_by_item(cloud):
    """The one pass inserts the parcels it creates at its end; when another transaction takes one of their refs
    in the meantime, the pass is undone and the batch applied item by item, onto the other's parcel."""
    engine = cloud.client.app.state.engine
    if engine.dialect.name != "postgresql":
        return  # SQLite runs one writer at a time: no other transaction can come between
    items = [parcel_record(1, "p-race", c=2, waybill="YT5550001"),
             evt(1, "door", c=2, open=True), evt(2, "door", c=2, open=False), evt(3, "deposit", c=2, ref="p-race")]
    now = time.time()
    with engine.connect() as other:
        # another gateway's record of the same ref, not committed yet: the batch does not see it
        other.execute(text("INSERT INTO parcels (ref, station_id, direction, status, fee_cents, produce, reminders, "
                           "created_at, updated_at) VALUES ('p-race', :s, 'inbound', 'preadvised', 0, false, 0, "
                           ":t, :t)"), {"s": STATION, "t": now})
        answer: dict = {}
        sender = threading.Thread(target=lambda: answer.update(cloud.ingest(items).json()))
        sender.start()
        # the batch's insert of p-race waits for this transaction: commit once it does
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # a fresh transaction each time: pg_stat_activity is read once per transaction
            with engine.connect() as probe:
                waiting = probe.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO parcels%'")).scalar()
            if waiting:
                break
            time.sleep(0.02)
        assert waiting, "the batch never waited on the other transaction's ref"
        other.commit()
        sender.join(30)
    assert answer["applied"] == 4 and answer["rejected"] == 0
    assert cloud.counters()["ingest_slow_batches"] == 1
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT waybill, status, locker_id, compartment FROM parcels WHERE ref = 'p-race'")
                            ).all()
    assert rows == [("YT5550001", "deposited", "l1", 2)]
