"""Run the Alembic migrations: programmatically, from `jincun cloud migrate`, or with `alembic -c cloud/alembic.ini`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at our migrations and bound to `engine`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision`."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to `revision` ("base" drops everything)."""
    command.downgrade(alembic_config(engine), revision)


def current(engine: Engine) -> None:
    """Print the schema's revision in the database."""
    command.current(alembic_config(engine), verbose=False)


def history(engine: Engine) -> None:
    """Print every revision, newest first, marking the database's."""
    command.history(alembic_config(engine), indicate_current=True)
