"""Database engine, sessions and the FastAPI session dependency."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, cast

import orjson
from fastapi import Depends, Request
from sqlalchemy import ColumnElement, CursorResult, Engine, Result, Table, any_, bindparam, create_engine, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker


# libpq options of the cloud's PostgreSQL connections by default (see make_engine; JINCUN_PG_OPTIONS)
PG_OPTIONS = "-c random_page_cost=1.1"


def make_engine(url: str, *, pg_options: str = PG_OPTIONS) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-locking transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # no pre-ping (a round trip per request): a dropped connection fails one request with 503 and is replaced
        # as many pooled connections as the default thread limiter (40) runs threads: under bursts no connection
        # is opened and closed again (overflow), which shows as tail latency
        # random_page_cost 1.1, as PostgreSQL's manual suggests for solid-state storage, for the cloud's
        # connections: at the default 4 (spinning disks) the planner priced the ingest's look-ups by key as
        # dearer than a whole table scan until a table held some ten thousand rows, so a young county's
        # database scanned parcels, codes and compartments in full several times a batch
        connect_args = {"options": pg_options} if parsed.get_backend_name() == "postgresql" and pg_options else {}
        return create_engine(url, pool_size=30, max_overflow=10, pool_recycle=1800, connect_args=connect_args)
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


_PG_CURSORS = "jc_pg_cursors"


def pg_rows(session: Session, sql: str, params: dict[str, Any] | None = None, *, named: bool = False) -> list:
    """Run one PostgreSQL statement (psycopg `%(name)s` parameters) on the session's own connection, inside
    its transaction and savepoints, and return its rows (none for a statement without a result).

    The ingest's hot statements are fixed SQL text run every batch; through `Session.execute` each one also
    paid for the ORM's execution path, a compiled-cache look-up and a result set-up, which together cost the
    worker as much CPU as the driver. Here only the driver runs (it still prepares a statement on the server
    after a few runs). Driver errors come out as SQLAlchemy's (`IntegrityError`, `DataError`, ...), as from
    `session.execute`, so callers handle both paths alike. With `named`, rows have attributes.
    """
    import psycopg
    tx, nested = session.get_transaction(), session.get_nested_transaction()
    held = session.info.get(_PG_CURSORS)
    if held is None or tx is None or held[0] is not tx or held[1] is not nested:
        # the session begins its transaction, or a savepoint it has not begun yet, only when asked for its
        # connection: ask once per (transaction, savepoint); one pair of cursors serves the whole transaction,
        # whose connection cannot change
        conn = session.connection()
        if held is None or held[0] is not session.get_transaction():
            from psycopg.rows import namedtuple_row
            dbapi = conn.connection.driver_connection
            assert dbapi is not None  # the session's connection is open
            held = (None, None, dbapi.cursor(), dbapi.cursor(row_factory=namedtuple_row))
        held = session.info[_PG_CURSORS] = (session.get_transaction(), session.get_nested_transaction(),
                                            held[2], held[3])
    cur = held[3] if named else held[2]
    try:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, params, exc, psycopg.Error, hide_parameters=True,
                                  dialect=session.get_bind().dialect) from exc


@contextmanager
def pg_pipeline(session: Session) -> Iterator[None]:
    """On PostgreSQL, send the statements run within as one pipeline: they go out together and the server's
    answers are read once, at the end, instead of one round trip (a wake-up of the worker and of the server,
    and a wait) per statement. Only for statements whose answer nobody reads before the end (no `RETURNING`,
    no row counts); an error of any of them comes out at the end, as SQLAlchemy's, as from `pg_rows`, and the
    transaction is then failed. Elsewhere the statements run one by one as usual."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    import psycopg
    dbapi = session.connection().connection.driver_connection
    assert dbapi is not None  # the session's connection is open
    try:
        with dbapi.pipeline():
            yield
    except psycopg.Error as exc:
        raise DBAPIError.instance("(pipeline)", None, exc, psycopg.Error, hide_parameters=True,
                                  dialect=session.get_bind().dialect) from exc


_COMPILED: dict[int, tuple[Any, str, dict[str, Any]]] = {}


def rows_touched(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE touched (SQLAlchemy types every session.execute result as a plain Result)."""
    return cast(CursorResult[Any], result).rowcount


def fixed_rows(session: Session, stmt, params: dict[str, Any] | None = None, *,
               named: bool = False) -> Sequence[Any]:
    """The rows of a fixed Core statement (a module constant with named bind parameters).

    On PostgreSQL its SQL is compiled once and run by `pg_rows`, with the values of its literal binds; elsewhere
    it goes through `session.execute`. One definition serves both.
    """
    params = params or {}
    if session.get_bind().dialect.name != "postgresql":
        return session.execute(stmt, params).all()
    held = _COMPILED.get(id(stmt))  # the entry holds the statement, so no other object can take its id
    if held is None:
        compiled = stmt.compile(dialect=session.get_bind().dialect)
        held = _COMPILED[id(stmt)] = (stmt, str(compiled),
                                      {k: v for k, v in compiled.params.items() if v is not None})
    return pg_rows(session, held[1], {**held[2], **params} if held[2] else params, named=named)


def pg_sql(stmt) -> str:
    """A Core statement's PostgreSQL text with %(name)s parameters, as psycopg takes it."""
    from sqlalchemy.dialects.postgresql import psycopg
    return str(stmt.compile(dialect=psycopg.dialect()))


def among(column, name: str, *, pg: bool) -> ColumnElement[bool]:
    """`column IN :name` for a list given at execution: as in `one_of`, `= ANY(array)` on PostgreSQL, an
    expanding list elsewhere."""
    if pg:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


_PG_ARRAY_TYPES = {"INTEGER": "integer", "BIGINT": "bigint", "BIGINTEGER": "bigint", "FLOAT": "double precision",
                   "VARCHAR": "text", "TEXT": "text", "BOOLEAN": "boolean", "JSON": "json"}


def _pg_type(table: Table, name: str) -> str:
    kind = type(table.c[name].type).__name__.upper()
    return _PG_ARRAY_TYPES[{"STRING": "VARCHAR", "DOUBLE": "FLOAT"}.get(kind, kind)]


def bulk_insert(session: Session, table: Table, rows: list[dict], *, skip_existing: bool = False) -> None:
    """Insert many rows in one statement without reading anything back.

    On PostgreSQL the rows travel as one JSON document read by `json_to_recordset` (encoded in C by orjson,
    so the cost per row stays out of Python), or, for values orjson cannot write, as one array per column
    through `unnest`; either way the SQL text is the same for every batch size. Elsewhere an executemany.
    """
    if not rows:
        return
    cols = list(rows[0].keys())
    if session.get_bind().dialect.name != "postgresql":
        from sqlalchemy.dialects import sqlite
        stmt = sqlite.insert(table)
        session.execute(stmt.on_conflict_do_nothing() if skip_existing else stmt, rows)
        return
    pg_types = {name: _pg_type(table, name) for name in cols}
    conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
    try:
        doc = orjson.dumps(rows).decode("utf-8")
    except orjson.JSONEncodeError:
        doc = None
    if doc is not None:
        record = ", ".join(f"{name} {pg_types[name]}" for name in cols)
        pg_rows(session, f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT {', '.join(cols)} "
                         f"FROM json_to_recordset(CAST(%(rows)s AS json)) AS u({record}){conflict}", {"rows": doc})
        return
    casts = ", ".join(f"CAST(:{name} AS {pg_types[name]}[])" for name in cols)
    sql = text(f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT * FROM unnest({casts}){conflict}")
    params = {}
    for name in cols:
        values = [r[name] for r in rows]
        if pg_types[name] == "double precision":
            # one element type per array: psycopg refuses lists mixing int and float
            values = [None if v is None else float(v) for v in values]
        params[name] = values
    session.execute(sql, params)


def one_of(session: Session, column, values) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(array)`, one parameter, so the SQL text is the same
    for any count.

    An expanded IN list makes new SQL text for every count of values: the driver parses it afresh each
    time and the server plans it afresh. `= ANY(array)` on an indexed column is looked up in the index, in
    custom and generic plans alike, given the page costs `make_engine` sets (at PostgreSQL's defaults small
    tables were scanned whole). A semi-join on `unnest(array)`, used before, cost ten times as much to plan
    and took a hash join over a whole table scan whenever the table's statistics lagged its growth; measured
    ad hoc on parcels of 8,818 rows with 40 refs: 1.2 ms to plan and 1.2 ms to run, against 0.1 ms and
    0.3 ms.
    """
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


# SQLSTATE classes after which the same work may succeed later: connection exception, transaction rollback
# (deadlock, serialization failure), insufficient resources, operator intervention, system error
_TRANSIENT_STATES = ("08", "40", "53", "57", "58")


def transient(exc: DBAPIError) -> bool:
    """Whether a database error says nothing about the data written: the database is away, busy or short of
    resources, so the work is to be sent again later rather than refused."""
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if state:
        return state[:2] in _TRANSIENT_STATES or state == "55P03"  # 55P03: lock not available
    # SQLite names no state: a locked, busy or unreadable database is an OperationalError, a bad value is not
    return isinstance(exc, OperationalError)
