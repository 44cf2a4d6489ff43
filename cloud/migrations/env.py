"""Alembic environment: uses the engine handed over by cloud.migrate (online mode only)."""

from __future__ import annotations

from alembic import context

from cloud.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    raw = connection.connection.driver_connection if sqlite else None
    if sqlite:
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
        if sqlite:
            raw.execute("PRAGMA foreign_keys=ON")
