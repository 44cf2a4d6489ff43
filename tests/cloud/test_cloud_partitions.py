"""The periodic partition job on real PostgreSQL: months created ahead, months past retention detached and
dropped, with the clock moved forward a month at a time instead of waited for."""

from __future__ import annotations

import calendar
import time

import pytest
from cloudkit import STATION, STATION_KEY, Cloud, TestClient, evt, make_settings, register
from sqlalchemy import text

from cloud import migrate
from cloud.app import create_app
from cloud.partitions import PARTS_SCHEMA, maintain_partitions, month_of, shift_month
from cloud.storage import make_engine


def _parts(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'")).scalars())


def _at(month: int) -> float:
    """Noon UTC on the 15th of a yyyymm month."""
    return float(calendar.timegm((month // 100, month % 100, 15, 12, 0, 0)))


def _insert(conn, seq: int, month: int) -> None:
    conn.execute(text("INSERT INTO events (station_id, src, boot, seq, kind, month, rx, body) "
                      "VALUES ('s1', 'l1', 'b', :seq, 'evt', :m, 0, CAST('{}' AS json))"), {"seq": seq, "m": month})


def test_job_creates_ahead_and_drops_past_retention(pg_url):
    engine = make_engine(pg_url)
    try:
        migrate.upgrade(engine)  # 24 months back and 3 ahead of today
        current = month_of(time.time())
        start = shift_month(current, 3)
        first = maintain_partitions(engine, ahead=3, retention=24, now=_at(start))
        assert first == {"created": 3, "dropped": [shift_month(current, k) for k in (-24, -23, -22)]}
        assert f"events_{shift_month(start, 3)}" in _parts(engine)
        old_default, old_part, recent = shift_month(current, -20), shift_month(current, -18), shift_month(start, -1)
        with engine.begin() as conn:
            _insert(conn, 1, old_part)   # in its own partition, which will pass retention
            _insert(conn, 2, recent)     # within retention all along
            # a month with no partition of its own: its rows sit in the default partition
            conn.execute(text(f"DROP TABLE {PARTS_SCHEMA}.events_{old_default}"))
            _insert(conn, 3, old_default)
        with engine.connect() as conn:
            assert conn.execute(text(f"SELECT count(*) FROM {PARTS_SCHEMA}.events_default")).scalar() == 1

        # a year passes, the job running every month, keeping 23 months before the current one
        created, dropped = 0, []
        for n in range(1, 13):
            done = maintain_partitions(engine, ahead=3, retention=23, now=_at(shift_month(start, n)))
            created += done["created"]
            dropped += done["dropped"]
        end = shift_month(start, 12)
        assert created == 12
        assert _parts(engine) == {f"events_{shift_month(end, k)}" for k in range(-23, 4)} | {"events_default"}
        assert dropped == [shift_month(current, k) for k in range(-21, -8) if k != -20]
        with engine.connect() as conn:
            kept = dict(conn.execute(text("SELECT seq, tableoid::regclass::text FROM events")).all())
            left = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = :s AND tablename = :t"),
                                {"s": PARTS_SCHEMA, "t": f"events_{old_part}"}).scalar()
        assert kept == {2: f"{PARTS_SCHEMA}.events_{recent}"}
        assert left == 0, "a detached partition was left behind"
        # again at the same moment: nothing left to do
        assert maintain_partitions(engine, ahead=3, retention=23, now=_at(end)) == {"created": 0, "dropped": []}
    finally:
        engine.dispose()


def test_job_is_a_no_op_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    try:
        migrate.upgrade(engine)
        assert maintain_partitions(engine, ahead=3, retention=24) == {"created": 0, "dropped": []}
    finally:
        engine.dispose()


def test_the_sweep_runs_the_job(pg_url):
    """The cloud's periodic sweep runs the job: with three months' retention the migration's 24 months back
    go at its first run; the current month's events stay."""
    settings = make_settings(pg_url, events_retention_months=3, sweep_seconds=3600)
    with TestClient(create_app(settings)) as client:
        register(client, STATION, STATION_KEY, "冯家村便民店", {"l1": 2})
        cloud = Cloud(client=client, settings=settings)
        now = time.time()
        assert cloud.ingest([evt(1, "door", c=1, open=True, rx=now)]).json()["applied"] == 1
        services = client.app.state.services
        # the sweep loop's first run, at start-up (then every sweep_seconds)
        deadline = time.monotonic() + 15
        while not services.counters.get("sweeps") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert services.counters.get("sweeps") == 1
        current = month_of(now)
        months = {int(n.removeprefix("events_")) for n in _parts(client.app.state.engine) if n != "events_default"}
        assert min(months) == shift_month(current, -3)
        assert services.counters.get("partitions_dropped") == 21
        with client.app.state.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 1


@pytest.mark.parametrize("retention", [2, 241])
def test_retention_is_bounded(retention, tmp_path):
    with pytest.raises(ValueError):
        make_settings(f"sqlite:///{tmp_path}/c.db", events_retention_months=retention)


def test_job_gives_up_behind_a_long_transaction(pg_url):
    """A transaction reading `events` holds the detach off: the job waits at most its lock timeout, fails,
    changes nothing, and succeeds at the next run."""
    from sqlalchemy.exc import OperationalError

    engine = make_engine(pg_url)
    try:
        migrate.upgrade(engine)
        current = month_of(time.time())
        before = _parts(engine)
        with engine.connect() as reader:
            reader.execute(text("SELECT count(*) FROM events"))  # holds a lock on events until it ends
            with pytest.raises(OperationalError, match="lock timeout"):
                maintain_partitions(engine, ahead=3, retention=12, lock_timeout_ms=200, now=_at(current))
            assert _parts(engine) == before
            reader.rollback()
        done = maintain_partitions(engine, ahead=3, retention=12, now=_at(current))
        assert done["dropped"] == [shift_month(current, k) for k in range(-24, -12)]
    finally:
        engine.dispose()
