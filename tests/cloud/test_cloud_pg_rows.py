"""storage.pg_rows: driver SQL inside the session's transaction and savepoints, with SQLAlchemy's errors."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError

from cloud.storage import make_engine, make_sessionmaker, pg_rows


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
