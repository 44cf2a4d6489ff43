"""Alembic environment (online mode only): the engine handed over by cloud.migrate, or one made from the URL.

Run by hand, `alembic -c cloud/alembic.ini upgrade head` takes the database from JINCUN_DATABASE_URL (or
sqlalchemy.url in the ini file), with the same engine settings as the service.
"""

from __future__ import annotations

from alembic import context

import os

from cloud.models import Base
from cloud.storage import make_engine

config = context.config
if config.config_file_name is not None:  # run by hand with an ini file: its logging section applies
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)
engine = config.attributes.get("engine")
if engine is None:
    url = os.environ.get("JINCUN_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: set JINCUN_DATABASE_URL (or sqlalchemy.url in the ini file)")
    engine = make_engine(url)

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    raw = connection.connection.driver_connection if sqlite else None
    if raw is not None:
        # a batch migration copies a table, drops the original and renames the copy; with foreign keys
        # enforced, dropping a table that other rows refer to fails. They are off for the migration (the
        # pragma is ignored inside a transaction, so it is sent before one begins) and checked at its end
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows without their parent rows: {broken[:5]}")
        connection.commit()
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")
