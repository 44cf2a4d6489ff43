"""A PostgreSQL database of its own for a simulated cloud (`database: postgres` in a scenario)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from simulator.ledger import LedgerError

PG_ADMIN_URL = os.environ.get("JINCUN_SIM_PG", "postgresql+psycopg://jincun:jincun@127.0.0.1:5432/postgres")


def _admin(sql: str) -> None:
    eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.exec_driver_sql(sql)
    except SQLAlchemyError as exc:
        raise LedgerError(f"PostgreSQL at {PG_ADMIN_URL.rsplit('@', 1)[-1]} (JINCUN_SIM_PG): {exc}") from None
    finally:
        eng.dispose()


@contextmanager
def fresh_database(prefix: str, keep: bool = False) -> Iterator[str]:
    """A new database for one run, dropped afterwards unless `keep`; yields its SQLAlchemy URL."""
    name = f"jincun_sim_{prefix.replace('-', '_')[:20]}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        if not keep:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
