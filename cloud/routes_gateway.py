"""HTTP routes the station gateway calls (docs/protocol.md §5)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from . import constants as K
from .crud import station_by_key
from .deps import ServicesDep, bearer
from .errors import BatchRejected
from .models import Station
from .protocol import decode_batch
from .schemas import IngestResponse
from .sms import deliver_pending_logged
from .storage import SessionDep

log = logging.getLogger("jincun.cloud.gateway")
router = APIRouter(tags=["gateway"])


async def raw_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it passes the batch byte limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > K.MAX_BATCH_BYTES:
        raise HTTPException(413, f"batch is over {K.MAX_BATCH_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > K.MAX_BATCH_BYTES:
            raise HTTPException(413, f"batch is over {K.MAX_BATCH_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(K.INGEST_PATH, response_model=IngestResponse)
def ingest(session: SessionDep, services: ServicesDep, background: BackgroundTasks,
           token: Annotated[str, Depends(bearer)], body: Annotated[bytes, Depends(raw_body)]) -> JSONResponse:
    """Apply a batch of outbox items from one station; per-item results as in §5.1."""
    counters = services.counters
    try:
        batch = decode_batch(body)
    except BatchRejected as exc:
        counters.inc("ingest_batches_refused")
        raise HTTPException(exc.status_code, exc.detail) from exc
    try:
        owner = station_by_key(session, api_key=token)
        station = session.get(Station, batch.station)
        if owner is None:
            counters.inc("ingest_auth_failures")
            raise HTTPException(401, "unknown station API key", headers={"WWW-Authenticate": "Bearer"})
        if station is None:
            counters.inc("ingest_auth_failures")
            raise HTTPException(404, f"unknown station {batch.station}")
        if owner.id != station.id:
            counters.inc("ingest_auth_failures")
            raise HTTPException(403, f"this API key belongs to another station, not {batch.station}")
        if not station.active:
            raise HTTPException(403, f"station {station.id} is deactivated")
        response, queued_sms = services.ingestor.ingest(session, station=station, batch=batch)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        counters.inc("ingest_db_errors")
        log.error("ingest of batch %s from %s failed on the database: %s", batch.batch, batch.station, exc)
        raise HTTPException(503, "database unavailable; nothing was applied, send the batch again") from exc
    counters.inc("ingest_batches")
    if queued_sms:
        background.add_task(deliver_pending_logged, services.sessionmaker, services.notifier, counters)
    # returned as built: `error` appears only on rejected items, src/boot/seq always (null if unreadable)
    return JSONResponse(response)
