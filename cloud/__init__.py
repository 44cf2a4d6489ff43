"""jincun cloud: county-level service that receives station batches and shows parcels, lockers and SMS."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings


def serve(host: str, port: int, settings: "Settings | None" = None) -> None:
    """Run the cloud with uvicorn in one worker (blocks until stopped)."""
    import logging

    import uvicorn

    from .app import create_app
    from .settings import Settings

    settings = settings or Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, workers=1, log_level=settings.log_level.lower())
