"""HTTP routes the station gateway calls (docs/protocol.md §5)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from jincun.pins import verify_pin

from . import commands, ratelimit, recipients
from . import constants as K
from .accounts import station_staff
from .auth import station_caller
from .crud import key_and_station, retired_lockers
from .deps import ServicesDep, bearer
from .errors import BatchRejected, NotFound
from .models import Courier, Parcel
from .protocol import decode_batch
from .schemas import (CommandAck, CommandAckResult, CommandsPage, ConsentPublic, CourierCheck, CourierLogin,
                      IngestResponse, PreadviceCarriers, StaffList)
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
def ingest(services: ServicesDep, background: BackgroundTasks, token: Annotated[str, Depends(bearer)],
           body: Annotated[bytes, Depends(raw_body)]) -> Response:
    """Apply a batch of outbox items from one station; per-item results as in §5.1."""
    counters = services.counters
    try:
        batch = decode_batch(body)
    except BatchRejected as exc:
        counters.inc("ingest_batches_refused")
        raise HTTPException(exc.status_code, exc.detail) from exc
    except RecursionError as exc:
        # only a batch that the fast parser refuses for another reason reaches the stdlib one, which stops
        # at Python's recursion limit: a bad request, not a fault of the cloud
        counters.inc("ingest_batches_refused")
        raise HTTPException(400, "batch nests deeper than the cloud reads") from exc
    # the session is opened here, in the endpoint's own worker thread, not by a generator dependency (which
    # costs two more thread hops a batch), and only for a batch that decoded
    with services.sessionmaker() as session:
        try:
            owner, station = key_and_station(session, api_key=token, station_id=batch.station)
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
        background.add_task(services.sms_gate.run, services.sessionmaker, services.notifier, counters)
    # returned as built: `error` appears only on rejected items, src/boot/seq always (null if unreadable)
    try:
        return Response(orjson.dumps(response), media_type="application/json")
    except orjson.JSONEncodeError:
        # a key echoed from a raw item that orjson cannot write (an integer beyond 64 bits)
        return JSONResponse(response)


def _poll_once(factory, services, token: str, after: int) -> tuple[str, list[dict]]:
    with factory() as session:
        station = station_caller(session, services, token)
        return station.id, commands.pending(session, station_id=station.id, after=after)


@router.get(f"{K.API_PREFIX}/gateway/commands", response_model=CommandsPage, tags=["gateway"])
async def poll_commands(services: ServicesDep, token: Annotated[str, Depends(bearer)],
                        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                        wait: Annotated[float, Query(ge=0, le=K.MAX_WAIT_SECONDS)] = 0) -> CommandsPage:
    """Long-poll for commands with a cursor above `after` (§5.2); every poll reads the database."""
    deadline = time.monotonic() + wait
    factory = services.sessionmaker
    while True:
        try:
            _, cmds = await anyio.to_thread.run_sync(_poll_once, factory, services, token, after)
        except SQLAlchemyError as exc:
            services.counters.inc("commands_db_errors")
            log.error("command poll failed on the database: %s", exc)
            raise HTTPException(503, "database unavailable, poll again") from exc
        if cmds or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(K.POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
    return CommandsPage(commands=cmds, cursor=cmds[-1]["cursor"] if cmds else after)


@router.post(f"{K.API_PREFIX}/gateway/commands/{{cmd_id}}/ack", response_model=CommandAckResult, tags=["gateway"])
def ack_command(cmd_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,24}$")], data: CommandAck,
                session: SessionDep, services: ServicesDep,
                token: Annotated[str, Depends(bearer)]) -> CommandAckResult:
    """Record the station's result for a command (§5.3); a repeated ack changes nothing."""
    station = station_caller(session, services, token)
    try:
        cmd = commands.acknowledge(session, station_id=station.id, cmd_id=cmd_id, ok=data.ok, err=data.err,
                                   at=data.at)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    session.commit()
    services.counters.inc("command_acks")
    return CommandAckResult(id=cmd.cmd_id, status=cmd.status, ok=bool(cmd.ack_ok), err=cmd.ack_err)


@router.get(f"{K.API_PREFIX}/gateway/recipients/{{phone}}/consent", response_model=ConsentPublic, tags=["gateway"])
def recipient_consent(phone: Annotated[str, Path(pattern=K.PHONE_RE.pattern)], session: SessionDep,
                      services: ServicesDep, token: Annotated[str, Depends(bearer)]) -> ConsentPublic:
    """Whether a recipient consented to locker delivery; the gateway asks before it opens a deposit door."""
    station_caller(session, services, token)
    return recipients.consent_of(session, phone=phone)


@router.get(f"{K.API_PREFIX}/gateway/preadvice/{{waybill}}", response_model=PreadviceCarriers, tags=["gateway"])
def preadvice(waybill: Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,64}$")], session: SessionDep,
              services: ServicesDep, token: Annotated[str, Depends(bearer)]) -> PreadviceCarriers:
    """Which carriers pre-advised a waybill to this station (parcels not in a locker yet): a deposit by the
    station's desk, which has no carrier of its own, takes the carrier from here (§5.7)."""
    station = station_caller(session, services, token)
    found = session.scalars(select(Parcel.carrier).where(
        Parcel.station_id == station.id, Parcel.waybill == waybill, Parcel.status == "preadvised",
        Parcel.locker_id.is_(None)).distinct()).all()
    return PreadviceCarriers(waybill=waybill, carriers=sorted(c for c in found if c))


@router.post(f"{K.API_PREFIX}/gateway/couriers/verify", response_model=CourierCheck, tags=["gateway"])
def verify_courier(data: CourierLogin, session: SessionDep, services: ServicesDep,
                   token: Annotated[str, Depends(bearer)]) -> CourierCheck:
    """Check a courier's PIN at this station (rate-limited per courier phone, in the database)."""
    station = station_caller(session, services, token)
    if not ratelimit.hit(session, f"pin:{data.phone}:600", limit=5, window=600):
        session.commit()
        raise HTTPException(429, "too many PIN attempts; wait 10 minutes")
    courier = session.scalar(select(Courier).where(Courier.phone == data.phone, Courier.active.is_(True)))
    ok = courier is not None and verify_pin(data.pin, courier.pin_hash) and station.id in courier.stations
    session.commit()
    if not ok or courier is None:
        services.counters.inc("courier_pin_failures")
        return CourierCheck(ok=False, carrier=None, name=None)
    return CourierCheck(ok=True, carrier=courier.carrier_code, name=courier.name)


@router.get(f"{K.API_PREFIX}/gateway/couriers", response_model=StaffList, tags=["gateway"])
def station_couriers(session: SessionDep, services: ServicesDep, token: Annotated[str, Depends(bearer)]) -> StaffList:
    """Who may log in at this station's terminal, with PIN hashes for the offline check, and which of its lockers
    are retired (§5.6); the gateway fetches it every `terminal.staff_sync_s` and replaces its cached copy."""
    station = station_caller(session, services, token)
    services.counters.inc("staff_lists")
    return StaffList(users=station_staff(session, station.id), retired_lockers=retired_lockers(session, station.id))
