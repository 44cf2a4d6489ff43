"""jincun cloud: county-level service that receives station batches and shows parcels, lockers and SMS."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings


def serve(host: str, port: int, settings: Settings | None = None, workers: int = 1) -> None:
    """Run the cloud with uvicorn (blocks until stopped).

    With more than one worker, the schema is brought to head once here, before the workers start, and each
    worker builds its app from the same environment with migrations off, so no two workers migrate at once.
    """
    import logging
    import os

    import uvicorn

    from .app import create_app
    from .settings import Settings

    settings = settings or Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    level = settings.log_level.lower()
    if workers <= 1:
        uvicorn.run(create_app(settings), host=host, port=port, workers=1, log_level=level)
        return
    from . import migrate
    from .partitions import ensure_partitions
    from .storage import make_engine

    engine = make_engine(settings.database_url, pg_options=settings.pg_options)
    migrate.upgrade(engine)
    ensure_partitions(engine)
    engine.dispose()
    # the workers read their settings from the environment: hand them the ones this process settled on
    # (a demo's generated admin token among them, so every worker accepts the same one)
    os.environ["JINCUN_ADMIN_TOKEN"] = settings.admin_token or ""
    os.environ["JINCUN_MIGRATE_ON_START"] = "false"
    uvicorn.run("cloud.app:create_app", factory=True, host=host, port=port, workers=workers, log_level=level)
