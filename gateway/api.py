"""Local HTTP API of the station gateway (couriers' terminal, maintenance, health)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from jincun import httpedge
from jincun.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from jincun.metrics import Metrics, TimedRequests

from .errors import UnknownParcel, Unstorable
from .terminal import create_router

if TYPE_CHECKING:
    from .services import HttpServices


BODY_MAX = 16 * 1024  # every request body of the station's API (the largest, an outbound intake, is < 1 KB)


def create_app(gw: HttpServices) -> FastAPI:
    """The FastAPI app bound to one running gateway's services (`gw` holds those, not the `Gateway`)."""
    app = FastAPI(title="jincun station gateway", docs_url=None, redoc_url=None)
    httpedge.install(app, default=BODY_MAX, counters=gw.counters)
    # the terminal's routes include POST /api/v1/deposits: a deposit needs a logged-in courier everywhere
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

    @app.get("/api/v1/deposits/{ref}")
    async def get_deposit(ref: str) -> dict:
        try:
            p = await gw.deposits.get(ref)
        except UnknownParcel:
            raise HTTPException(404, {"error": "unknown_parcel"}) from None
        # 'keypad': booked for a courier's keypad PIN, not opened yet (deposits.py)
        state = p["state"] if p["state"] in ("opening", "void", "keypad") else "deposited"
        return {"ref": p["ref"], "state": state, "locker": p["locker"], "c": p["c"]}

    @app.get("/api/v1/lockers")
    async def lockers() -> dict:
        return {"station": gw.cfg.station, "lockers": gw.link.view()}

    @app.get("/health")
    async def health() -> dict:
        return await gw.health()

    return app
