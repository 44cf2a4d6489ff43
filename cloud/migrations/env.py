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
    engine = make_engine(os.environ.get("JINCUN_DATABASE_URL") or config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
