"""Database engine, sessions and the FastAPI session dependency."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-locking transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # no pre-ping (a round trip per request): a dropped connection fails one request with 503 and is replaced
        return create_engine(url, pool_size=20, max_overflow=10, pool_recycle=1800)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # take transaction control away from pysqlite so SAVEPOINT and BEGIN IMMEDIATE behave
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # IMMEDIATE takes the write lock up front: two writers queue on busy_timeout instead of
        # one failing with "database is locked" when it upgrades from a read lock
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def get_db(request: Request) -> Iterator[Session]:
    """Yield one session per request; commit is explicit in the handlers."""
    with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


_PG_ARRAY_TYPES = {"INTEGER": "integer", "BIGINT": "bigint", "BIGINTEGER": "bigint", "FLOAT": "double precision", "VARCHAR": "text",
                   "TEXT": "text", "BOOLEAN": "boolean"}


def bulk_insert(session: Session, table: Table, rows: list[dict], *, skip_existing: bool = False) -> None:
    """Insert many rows in one statement without reading anything back.

    On PostgreSQL the rows travel as one array per column through `unnest`, so the SQL text is the same
    for every batch size (nothing to re-parse); elsewhere it is an executemany.
    """
    if not rows:
        return
    cols = list(rows[0].keys())
    if session.get_bind().dialect.name != "postgresql":
        from sqlalchemy.dialects import sqlite
        stmt = sqlite.insert(table)
        session.execute(stmt.on_conflict_do_nothing() if skip_existing else stmt, rows)
        return
    pg_types = {name: _PG_ARRAY_TYPES[{"STRING": "VARCHAR", "DOUBLE": "FLOAT"}.get(
        type(table.c[name].type).__name__.upper(), type(table.c[name].type).__name__.upper())] for name in cols}
    casts = ", ".join(f"CAST(:{name} AS {pg_types[name]}[])" for name in cols)
    sql = text(f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT * FROM unnest({casts})"
               + (" ON CONFLICT DO NOTHING" if skip_existing else ""))
    params = {}
    for name in cols:
        values = [r[name] for r in rows]
        if pg_types[name] == "double precision":
            # one element type per array: psycopg refuses lists mixing int and float
            values = [None if v is None else float(v) for v in values]
        params[name] = values
    session.execute(sql, params)
