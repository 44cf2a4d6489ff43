"""Local HTTP API of the station gateway (couriers' terminal, maintenance, health)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from jincun.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from jincun.metrics import Metrics, TimedRequests
from jincun.phone import PHONE_PATTERN

from . import const as C
from .errors import (CommandRejected, CommandTimeout, LockerError, LockerOffline, NoCompartment, OutboxError,
                     UnknownParcel, Unstorable)
from .terminal import create_router

if TYPE_CHECKING:
    from .services import HttpServices


class DepositIn(BaseModel):
    waybill: str = Field(min_length=1, max_length=64)
    phone: str = Field(pattern=PHONE_PATTERN)
    carrier: str = Field(min_length=1, max_length=32)
    size: Literal["S", "M", "L"]
    locker: str | None = Field(None, pattern=C.ID_RE)


def create_app(gw: "HttpServices") -> FastAPI:
    """The FastAPI app bound to one running gateway's services (`gw` holds those, not the `Gateway`)."""
    app = FastAPI(title="jincun station gateway", docs_url=None, redoc_url=None)
    app.include_router(create_router(gw))
    metrics = Metrics("jincun_gateway", gw.counters.snapshot)
    app.add_middleware(TimedRequests, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        # open on the station's network like /health: counts only, never a code, phone or waybill
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @app.exception_handler(Unstorable)
    async def unstorable(request: Request, exc: Unstorable) -> JSONResponse:
        # refused by the station database before anything else happened (a door opens only after the write)
        gw.counters.inc("api_unstorable")
        return JSONResponse({"detail": {"error": "bad_text", "detail": str(exc)}}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own answer echoes the input, and one holding a lone surrogate cannot be written as UTF-8:
        # the same answer, with such characters escaped
        text = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=False)
        return Response(text.encode("utf-8", "backslashreplace"), status_code=422, media_type="application/json")

    @app.post("/api/v1/deposits", status_code=201)
    async def new_deposit(req: DepositIn) -> dict:
        try:
            return await gw.deposits.request(req.waybill, req.phone, req.carrier, req.size, req.locker)
        except NoCompartment as exc:
            raise HTTPException(409, {"error": "no_compartment", "detail": str(exc)}) from None
        except CommandRejected as exc:
            raise HTTPException(409, {"error": "locker_refused", "detail": exc.err}) from None
        except (LockerOffline, CommandTimeout) as exc:
            raise HTTPException(503, {"error": "locker_offline", "detail": str(exc)}) from None
        except OutboxError as exc:
            raise HTTPException(503, {"error": "storage", "detail": str(exc)}) from None
        except LockerError as exc:
            raise HTTPException(404, {"error": "unknown_locker", "detail": str(exc)}) from None

    @app.get("/api/v1/deposits/{ref}")
    async def get_deposit(ref: str) -> dict:
        try:
            p = await gw.deposits.get(ref)
        except UnknownParcel:
            raise HTTPException(404, {"error": "unknown_parcel", "detail": ref}) from None
        state = "opening" if p["state"] == "opening" else ("void" if p["state"] == "void" else "deposited")
        return {"ref": p["ref"], "state": state, "locker": p["locker"], "c": p["c"]}

    @app.get("/api/v1/lockers")
    async def lockers() -> dict:
        return {"station": gw.cfg.station, "lockers": gw.link.view()}

    @app.get("/health")
    async def health() -> dict:
        return await gw.health()

    return app
