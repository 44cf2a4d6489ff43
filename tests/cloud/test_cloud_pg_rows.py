"""storage.pg_rows: driver SQL inside the session's transaction and savepoints, with SQLAlchemy's errors."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError

from cloud.storage import make_engine, make_sessionmaker, pg_pipeline, pg_rows


@pytest.fixture
def session(pg_url):
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k integer PRIMARY KEY, v text)"))
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def _keys(session) -> list[int]:
    return [r.k for r in session.execute(text("SELECT k FROM t ORDER BY k"))]


def test_rows_named_rows_and_statements_without_rows(session):
    assert pg_rows(session, "INSERT INTO t VALUES (%(k)s, %(v)s)", {"k": 1, "v": "一"}) == []
    assert pg_rows(session, "SELECT k, v FROM t") == [(1, "一")]
    row, = pg_rows(session, "SELECT k, v FROM t WHERE k = ANY(%(ks)s)", {"ks": [1, 2]}, named=True)
    assert (row.k, row.v) == (1, "一")
    # the same transaction as the session's own statements, and a commit ends it for both
    assert _keys(session) == [1]
    session.commit()
    pg_rows(session, "INSERT INTO t VALUES (2, 'b')")
    session.rollback()
    assert _keys(session) == [1]


def test_savepoint_rollback_undoes_driver_writes(session):
    pg_rows(session, "INSERT INTO t VALUES (1, 'kept')")
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            # the savepoint is begun lazily: the first statement inside it is the driver's
            pg_rows(session, "INSERT INTO t VALUES (2, 'undone')")
            pg_rows(session, "INSERT INTO t VALUES (1, 'clash')")
    # the failed savepoint is rolled back; the transaction goes on
    pg_rows(session, "INSERT INTO t VALUES (3, 'after')")
    with session.begin_nested():
        pg_rows(session, "INSERT INTO t VALUES (4, 'released')")
    session.commit()
    assert _keys(session) == [1, 3, 4]


def test_driver_errors_are_sqlalchemy_errors(session):
    with pytest.raises(DataError):
        pg_rows(session, "SELECT CAST(%(x)s AS integer)", {"x": "not a number"})
    session.rollback()
    assert pg_rows(session, "SELECT 1") == [(1,)]


def test_pipeline_writes_together_and_fails_at_its_end(session):
    with pg_pipeline(session):
        pg_rows(session, "INSERT INTO t VALUES (1, 'a')")
        pg_rows(session, "INSERT INTO t VALUES (2, 'b')")
    # written, in the session's transaction, which goes on after the pipeline
    assert _keys(session) == [1, 2]
    session.commit()
    # one bad statement among good ones: the error is SQLAlchemy's, the whole transaction is failed and rolled back
    with pytest.raises(IntegrityError):
        with pg_pipeline(session):
            pg_rows(session, "INSERT INTO t VALUES (3, 'c')")
            pg_rows(session, "INSERT INTO t VALUES (1, 'clash')")
            pg_rows(session, "INSERT INTO t VALUES (4, 'd')")
    session.rollback()
    assert _keys(session) == [1, 2]
    # the connection is usable again, outside any pipeline
    assert pg_rows(session, "SELECT count(*) FROM t") == [(2,)]


def test_connections_plan_with_the_configured_page_cost(pg_url):
    """JINCUN_PG_OPTIONS reaches the engine's and the lookup pool's connections; empty sends none."""
    import asyncio

    from sqlalchemy.engine import make_url

    from cloud.lookups import PgReader
    from cloud.storage import PG_OPTIONS

    async def reader_cost(options: str) -> str:
        reader = PgReader.for_url(make_url(pg_url), options=options)
        await reader.pool.open(wait=True)
        try:
            async with reader.pool.connection() as conn:
                return (await (await conn.execute("SHOW random_page_cost")).fetchone())[0]
        finally:
            await reader.close()

    costs = {}
    for options in (PG_OPTIONS, ""):
        engine = make_engine(pg_url, pg_options=options)
        with engine.connect() as conn:
            server = conn.exec_driver_sql("SHOW random_page_cost").scalar()
        engine.dispose()
        costs[options] = (server, asyncio.run(reader_cost(options)))
    assert costs[PG_OPTIONS] == ("1.1", "1.1")
    # without options, whatever the server itself is set to
    import psycopg
    with psycopg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)) as c:
        own = c.execute("SHOW random_page_cost").fetchone()[0]
    assert costs[""] == (own, own)
