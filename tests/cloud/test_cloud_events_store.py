"""The events ledger: whole-batch pass with per-item fallback, and monthly partitions on PostgreSQL."""

from __future__ import annotations

import time

from cloudkit import birth, empty_comps, evt, parcel_record
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
