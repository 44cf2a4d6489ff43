"""The station database's versioned schema: a database of every earlier version migrates, and keeps its data."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from gateway import stationdb_migrations as M
from gateway.errors import OutboxError
from gateway.stationdb import Record, StationDB

FIXTURES = Path(__file__).resolve().parent / "stationdb"
GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


def fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("v*.sql"))


def fixture_version(path: Path) -> int:
    return int(re.match(r"v(\d+)_", path.name).group(1))


def build(path: Path, db: Path) -> None:
    """A database file made from a fixture, as a gateway of that version left it."""
    conn = sqlite3.connect(db)
    conn.executescript(path.read_text(encoding="utf-8"))
    conn.close()


def contents(db: Path) -> dict[str, list[tuple]]:
    """Every user table's rows, sorted."""
    conn = sqlite3.connect(db)
    try:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                            "AND name NOT LIKE 'sqlite_%'")]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    finally:
        conn.close()


def schema(db: Path) -> set[tuple]:
    conn = sqlite3.connect(db)
    try:
        return set(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    finally:
        conn.close()


def user_version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


async def fresh_schema(tmp_path: Path) -> set[tuple]:
    db = StationDB(tmp_path / "fresh.db", epoch="00000000")
    await db.open()
    await db.close()
    return schema(tmp_path / "fresh.db")


def test_every_earlier_version_has_a_fixture():
    """A new migration needs a database of the version before it, to be tested from."""
    assert {fixture_version(p) for p in fixtures()} == set(range(M.latest()))


@pytest.mark.parametrize("fixture", fixtures(), ids=lambda p: p.stem)
async def test_a_database_of_an_earlier_version_migrates_and_keeps_its_data(tmp_path, fixture):
    path = tmp_path / "gw.db"
    build(fixture, path)
    assert user_version(path) == fixture_version(fixture)
    before = contents(path)

    # the fixtures' telemetry is older than the bound's three days: keep it, to see that every row survives
    db = StationDB(path, epoch="ffffffff", tele_max_age_s=100 * 365 * 86400)
    await db.open()
    try:
        # the epoch the database was made with holds (a station's numbering never restarts)
        assert db.epoch == dict(before["meta"])["epoch"]
        assert db.schema_version == M.latest()
        held = await db.read_batch(100)
        assert [(r.id, r.src, r.boot, r.seq, r.kind, r.rx) for r in held] == \
            [row[:6] for row in sorted(before["outbox"])]
        # gateway numbering goes on from the stored counter
        rec = Record(src="gw", kind="status", body={"up": True})
        assert await db.append(rec) is True
        assert (rec.boot, rec.seq) == (db.epoch, int(dict(before["meta"])["seq"]) + 1)
        # a table the old database lacked is there and takes rows
        await db.run(lambda conn: conn.execute(
            "INSERT INTO uplink_refused (src, boot, seq, kind, rx, body, status, reason, at) "
            "VALUES ('l9', 'b', 1, 'evt', 1.0, '{}', 422, 'x', 2.0)"))
        # the terminal's sessions (version 5) are kept by the hash of their token
        await db.run(lambda conn: conn.execute(
            "INSERT INTO terminal_sessions (h, user_id, at, exp) VALUES (?, 'c1', 1.0, 2.0)", ("ab" * 32,)))
    finally:
        await db.close()

    assert user_version(path) == M.latest()
    after = contents(path)
    for table, rows in before.items():
        if table == "meta":
            assert dict(after[table])["epoch"] == dict(rows)["epoch"]
            continue
        # every row survives; only the rows written above are new
        assert set(rows) <= set(after[table]), table
    assert schema(path) == await fresh_schema(tmp_path), "a migrated database has exactly a new one's schema"

    # opening again migrates nothing and changes nothing
    again = contents(path)
    db = StationDB(path, tele_max_age_s=100 * 365 * 86400)
    await db.open()
    await db.close()
    assert contents(path) == again and user_version(path) == M.latest()


async def test_a_database_newer_than_the_gateway_is_refused_untouched(tmp_path):
    path = tmp_path / "gw.db"
    build(fixtures()[0], path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {M.latest() + 1}")
    conn.close()
    before = contents(path)
    db = StationDB(path)
    with pytest.raises(OutboxError, match=f"schema version {M.latest() + 1}, newer"):
        await db.open()
    await db.close()
    assert contents(path) == before and user_version(path) == M.latest() + 1


async def test_a_failed_migration_leaves_the_version_before_it(tmp_path, monkeypatch):
    path = tmp_path / "gw.db"
    db = StationDB(path)
    await db.open()
    await db.close()
    head = M.latest()
    # a migration that fails half-way: its first table must not stay behind
    monkeypatch.setattr(M, "MIGRATIONS", [*M.MIGRATIONS, "CREATE TABLE half (x);\nINSERT INTO no_such VALUES (1);"])
    db = StationDB(path)
    with pytest.raises(OutboxError, match="no_such"):
        await db.open()
    await db.close()
    assert user_version(path) == head
    assert "half" not in contents(path)


def test_only_the_migrations_make_tables():
    """One place for the schema: no part of the gateway creates or alters a table itself."""
    ddl = re.compile(r"\b(CREATE|ALTER|DROP)\s+(TABLE|INDEX)\b|\badd_schema\(", re.IGNORECASE)
    found = [f"{p.name}:{n}" for p in sorted(GATEWAY.glob("*.py")) if p.name != "stationdb_migrations.py"
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if ddl.search(line) and not line.lstrip().startswith(("def add_schema", '"""', "#"))]
    assert found == []
