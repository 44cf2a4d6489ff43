"""The FastAPI app factory: settings, database, migrations, services and routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import anyio
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from jincun import __version__, httpedge, logmask
from jincun.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from jincun.metrics import Metrics, TimedRequests

from . import constants as K
from . import alerts, lifecycle, lookups, migrate
from .auth import allow
from .partitions import ensure_partitions, maintain_partitions
from .ratelimit import acquire_lease
from .counters import Counters
from .deps import Services
from .ingest import Ingestor
from .pages import router as pages_router
from .pages_admin import router as admin_pages_router
from .pages_ops import router as ops_pages_router
from .pages_charges import router as charge_pages_router
from .routes_api import admin as admin_router
from .routes_api import read as read_router
from .routes_api import router as api_router
from .routes_carrier import router as carrier_router
from .routes_staff import router as staff_router
from .routes_gateway import router as gateway_router
from .routes_enroll import router as enroll_router
from .routes_alerts import router as alerts_router
from .settings import Settings
from .sms import HttpNotifier, deliver_pending_logged, make_notifier
from .storage import make_engine, make_sessionmaker
from .telemetry import SqlTelemetryStore, TelemetryStore
from .webhooks import deliver_due_logged

log = logging.getLogger("jincun.cloud")
STATIC = Path(__file__).resolve().parent / "static"


async def _sms_retry_loop(services: Services) -> None:
    """Send what is still queued (carrier was down, or a process stopped before sending)."""
    while True:
        await anyio.to_thread.run_sync(deliver_pending_logged, services.sessionmaker, services.notifier,
                                       services.counters)
        await asyncio.sleep(services.settings.sms_retry_seconds)


async def _webhook_loop(services: Services) -> None:
    """Send due carrier webhooks; rows are claimed with SKIP LOCKED, so every worker may run this."""
    s = services.settings
    while True:
        await anyio.to_thread.run_sync(lambda: deliver_due_logged(
            services.sessionmaker, services.counters, base=s.webhook_retry_seconds,
            max_attempts=s.webhook_max_attempts))
        await asyncio.sleep(s.webhook_retry_seconds)


GC_THRESHOLDS = (20_000, 20, 50)  # young collections every 20,000 net allocations instead of 700


def _sweep_once(services: Services, holder: str) -> None:
    with services.sessionmaker() as session:
        if not acquire_lease(session, "sweep", holder, ttl=services.settings.sweep_seconds * 2):
            session.commit()
            return
        done = lifecycle.sweep(session, services.settings)
        session.commit()
        told = alerts.sweep(session, services.settings)
        session.commit()
        engine = cast(Engine, session.get_bind())  # the sessionmaker is bound to the engine
    # still under the lease: one worker at a time
    alerts.deliver_posts(services.sessionmaker, services.settings)
    parts = maintain_partitions(engine, ahead=services.settings.events_months_ahead,
                                retention=services.settings.events_retention_months)
    if parts["created"] or parts["dropped"]:
        services.counters.inc("partitions_created", parts["created"])
        services.counters.inc("partitions_dropped", len(parts["dropped"]))
    services.counters.inc("sweeps")
    if told["opened"] or told["closed"]:
        services.counters.inc("alerts_opened", told["opened"])
        services.counters.inc("alerts_closed", told["closed"])
    if done["reminders"] or done["overdue"]:
        log.info("sweep: %d reminders queued, %d parcels overdue", done["reminders"], done["overdue"])
        services.counters.inc("reminders_queued", done["reminders"])
        services.counters.inc("parcels_overdue", done["overdue"])


async def _sweep_loop(services: Services) -> None:
    """Reminders, overdue marking, alerts and the events partitions; a lease in the database lets one worker
    at a time do it."""
    holder = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    while True:
        try:
            await anyio.to_thread.run_sync(_sweep_once, services, holder)
        except SQLAlchemyError as exc:
            services.counters.inc("sweep_errors")
            log.error("sweep failed on the database: %s", exc)
        await asyncio.sleep(services.settings.sweep_seconds)


def make_telemetry(settings: Settings, counters: Counters) -> TelemetryStore:
    """InfluxDB when configured, else the bounded SQL store."""
    if settings.influx_url:
        from .telemetry_influx import InfluxTelemetryStore
        return InfluxTelemetryStore(url=settings.influx_url, token=settings.influx_token, org=settings.influx_org,
                                    bucket=settings.influx_bucket, query_url=settings.influx_query_url,
                                    batch_size=settings.influx_batch_size, flush_ms=settings.influx_flush_ms,
                                    counters=counters)
    return SqlTelemetryStore(retention_days=settings.telemetry_retention_days,
                             max_rows_per_locker=settings.telemetry_max_rows_per_locker, counters=counters)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the cloud app; migrations run to head when it starts."""
    settings = settings or Settings()
    logging.getLogger("jincun").setLevel(settings.log_level)
    if not settings.demo:
        logmask.install()
    engine = make_engine(settings.database_url, pg_options=settings.pg_options)
    counters = Counters()
    telemetry = make_telemetry(settings, counters)
    notifier = make_notifier(settings)
    services = Services(settings=settings, sessionmaker=make_sessionmaker(engine), counters=counters,
                        ingestor=Ingestor(counters=counters, telemetry=telemetry,
                                          dead_letter_max_rows=settings.dead_letter_max_rows,
                                          sms=settings.sms_style, settings=settings),
                        notifier=notifier, reader=lookups.PgReader.for_url(engine.url, options=settings.pg_options))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(migrate.upgrade, engine)
            log.info("database schema at head (%s)", engine.url.get_backend_name())
            made = await anyio.to_thread.run_sync(lambda: ensure_partitions(engine, ahead=settings.events_months_ahead))
            if made:
                log.info("created %d monthly events partitions", made)
        # objects alive after start-up (modules, mappers, compiled caches) are never garbage: keep the
        # collector from re-scanning them, which shortens the pauses seen as tail latency. A batch's items
        # are freed by reference counting; at the default thresholds (a young collection every 700 net
        # allocations) an ingest of 500-item batches ran some 130 collections a second, a tenth of the
        # worker's CPU (measured ad hoc with gc.callbacks)
        if services.reader is not None:
            await services.reader.open()
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        loops = [asyncio.create_task(_sms_retry_loop(services)), asyncio.create_task(_webhook_loop(services)),
                 asyncio.create_task(_sweep_loop(services))]
        try:
            yield
        finally:
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await anyio.to_thread.run_sync(telemetry.close)
            if services.reader is not None:
                await services.reader.close()
            if isinstance(notifier, HttpNotifier):
                notifier.close()
            engine.dispose()

    # Swagger UI comes from fastapi-offline's own copy, served here: a county network may not reach a CDN.
    # ReDoc is off: its page still fetches its maker's logo from their CDN.
    app = FastAPIOffline(title="jincun cloud", version=__version__, lifespan=lifespan, redoc_url=None,
                         favicon_url="/static/favicon.svg")
    app.state.services = services
    for name in ("ingest_applied", "ingest_duplicate", "ingest_rejected"):
        counters.inc(name, 0)  # shown from the start, so a scrape has a first value to take a rate from
    metrics = Metrics("jincun_cloud", counters.snapshot)
    app.add_middleware(TimedRequests, metrics=metrics)

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(allow("admin", "maintenance"))])
    async def _metrics() -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    app.state.engine = engine
    app.state.sessionmaker = services.sessionmaker
    # every body is bounded before it is parsed: an ingest batch and a carrier's manifest may be large
    httpedge.install(app, default=K.MAX_BODY_BYTES, counters=counters, limits={
        K.INGEST_PATH: K.MAX_BATCH_BYTES, f"{K.API_PREFIX}/carrier/manifests": K.MAX_MANIFEST_BYTES},
        own_depth=frozenset({K.INGEST_PATH}))  # the ingest answers a too-deep item alone, per item

    @app.exception_handler(SQLAlchemyError)
    async def _db_down(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        counters.inc("db_errors")
        log.error("database error: %s", exc)
        return JSONResponse({"detail": "database unavailable, try again"}, status_code=503)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def _favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.include_router(gateway_router)
    app.include_router(api_router)
    app.include_router(admin_router)
    app.include_router(read_router)
    app.include_router(staff_router)
    app.include_router(carrier_router)
    app.include_router(enroll_router)
    app.include_router(alerts_router)
    app.include_router(pages_router)
    app.include_router(ops_pages_router)
    app.include_router(admin_pages_router)
    app.include_router(charge_pages_router)
    return app
