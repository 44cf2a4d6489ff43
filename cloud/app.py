"""The FastAPI app factory: settings, database, migrations, services and routers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError

from . import migrate
from .counters import Counters
from .deps import Services
from .ingest import Ingestor
from .pages import router as pages_router
from .routes_api import admin as admin_router
from .routes_api import router as api_router
from .routes_gateway import router as gateway_router
from .settings import Settings
from .sms import HttpNotifier, deliver_pending_logged, make_notifier
from .storage import make_engine, make_sessionmaker
from .telemetry import SqlTelemetryStore

log = logging.getLogger("jincun.cloud")


async def _sms_retry_loop(services: Services) -> None:
    """Send what is still queued (carrier was down, or a process stopped before sending)."""
    while True:
        await anyio.to_thread.run_sync(deliver_pending_logged, services.sessionmaker, services.notifier,
                                       services.counters)
        await asyncio.sleep(services.settings.sms_retry_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the cloud app; migrations run to head when it starts."""
    settings = settings or Settings()
    logging.getLogger("jincun").setLevel(settings.log_level)
    engine = make_engine(settings.database_url)
    counters = Counters()
    telemetry = SqlTelemetryStore(retention_days=settings.telemetry_retention_days,
                                  max_rows_per_locker=settings.telemetry_max_rows_per_locker, counters=counters)
    notifier = make_notifier(settings)
    services = Services(settings=settings, sessionmaker=make_sessionmaker(engine), counters=counters,
                        ingestor=Ingestor(counters=counters, telemetry=telemetry,
                                          dead_letter_max_rows=settings.dead_letter_max_rows),
                        notifier=notifier)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(migrate.upgrade, engine)
            log.info("database schema at head (%s)", engine.url.get_backend_name())
        retry = asyncio.create_task(_sms_retry_loop(services))
        try:
            yield
        finally:
            retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retry
            if isinstance(notifier, HttpNotifier):
                notifier.close()
            engine.dispose()

    app = FastAPI(title="jincun cloud", version="0.1.0", lifespan=lifespan)
    app.state.services = services
    app.state.engine = engine
    app.state.sessionmaker = services.sessionmaker
    @app.exception_handler(SQLAlchemyError)
    async def _db_down(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        counters.inc("db_errors")
        log.error("database error: %s", exc)
        return JSONResponse({"detail": "database unavailable, try again"}, status_code=503)

    app.mount("/static", StaticFiles(directory=str(Path(__file__).resolve().parent / "static")), name="static")
    app.include_router(gateway_router)
    app.include_router(api_router)
    app.include_router(admin_router)
    app.include_router(pages_router)
    return app
