"""Monthly partitions of the PostgreSQL `events` table (SQLite keeps one plain table)."""

from __future__ import annotations

import calendar
import logging
import time
from typing import TypedDict

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("jincun.cloud.partitions")

# partitions live in their own schema so the public schema shows only the parent table
PARTS_SCHEMA = "events_parts"
# the advisory lock that serialises partition changes between workers
LOCK_KEY = 724001


# (start, end, yyyymm) of the month last asked about: nearly every item of a batch falls in it
_last_month: tuple[float, float, int] = (0.0, 0.0, 0)


def month_of(ts: float) -> int:
    """yyyymm of a Unix time in UTC: the partition key of an event."""
    global _last_month
    start, end, month = _last_month
    if start <= ts < end:
        return month
    t = time.gmtime(ts)
    month = t.tm_year * 100 + t.tm_mon
    nxt = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    _last_month = (float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))),
                   float(calendar.timegm((*nxt, 1, 0, 0, 0))), month)
    return month


def shift_month(month: int, n: int) -> int:
    """The yyyymm `n` months after `month` (before it when n < 0)."""
    y, m = divmod(month // 100 * 12 + month % 100 - 1 + n, 12)
    return y * 100 + m + 1


def create_month_partitions(conn: Connection, *, back: int, ahead: int, now: float | None = None) -> int:
    """Create missing monthly partitions around `now`; returns how many were created."""
    current = month_of(now or time.time())
    existing = set(conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'")).scalars())
    made = 0
    for n in range(-back, ahead + 1):
        lo = shift_month(current, n)
        name = f"events_{lo}"
        if name in existing:
            continue
        has_default = "events_default" in existing
        if has_default and conn.execute(text(
                f"SELECT 1 FROM {PARTS_SCHEMA}.events_default WHERE month = :m LIMIT 1"), {"m": lo}).first():
            # rows of that month already sit in the default partition; leave them there
            log.warning("month %s has rows in the default partition; no partition created", lo)
            continue
        conn.execute(text(f"CREATE TABLE {PARTS_SCHEMA}.{name} PARTITION OF events "
                          f"FOR VALUES FROM ({lo}) TO ({shift_month(lo, 1)})"))
        made += 1
    return made


def ensure_partitions(engine: Engine, *, ahead: int = 3) -> int:
    """Create the coming months' partitions (PostgreSQL only; called at start-up)."""
    if engine.dialect.name != "postgresql":
        return 0
    with engine.begin() as conn:
        conn.execute(text(f"SELECT pg_advisory_xact_lock({LOCK_KEY})"))
        return create_month_partitions(conn, back=0, ahead=ahead)


def drop_month_partitions(conn: Connection, *, retention: int, now: float | None = None) -> list[int]:
    """Detach and drop the monthly partitions older than the current month and the `retention` months
    before it, and delete those months' rows from the default partition; returns the months dropped."""
    oldest_kept = shift_month(month_of(now or time.time()), -retention)
    names = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'")).scalars().all()
    dropped = []
    for name in sorted(names):
        suffix = name.removeprefix("events_")
        if not suffix.isdigit() or int(suffix) >= oldest_kept:
            continue
        # a plain DETACH (not CONCURRENTLY, which a table with a default partition cannot use) holds an
        # exclusive lock on `events` for a moment; the caller's lock_timeout bounds the wait for it
        conn.execute(text(f"ALTER TABLE events DETACH PARTITION {PARTS_SCHEMA}.{name}"))
        conn.execute(text(f"DROP TABLE {PARTS_SCHEMA}.{name}"))
        dropped.append(int(suffix))
    if "events_default" in names:
        conn.execute(text(f"DELETE FROM {PARTS_SCHEMA}.events_default WHERE month < :m"), {"m": oldest_kept})
    return dropped


class PartitionChanges(TypedDict):
    """What one maintenance run did: how many partitions it created, and the months it dropped."""

    created: int
    dropped: list[int]


def maintain_partitions(engine: Engine, *, ahead: int, retention: int, now: float | None = None,
                        lock_timeout_ms: int = 5000) -> PartitionChanges:
    """The periodic job (PostgreSQL only): create the coming `ahead` months' partitions, detach and drop
    the ones past `retention` months. One transaction, under the same advisory lock as start-up."""
    if engine.dialect.name != "postgresql":
        return {"created": 0, "dropped": []}
    with engine.begin() as conn:
        conn.execute(text(f"SELECT pg_advisory_xact_lock({LOCK_KEY})"))
        # waiting behind a long transaction for the lock on `events` would hold up every ingest queued
        # behind it: give up instead and try again at the next run
        conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
        made = create_month_partitions(conn, back=0, ahead=ahead, now=now)
        dropped = drop_month_partitions(conn, retention=retention, now=now)
    for month in dropped:
        log.info("dropped events partition %s (past %d months' retention)", month, retention)
    return {"created": made, "dropped": dropped}
