"""Server-rendered pages (Jinja2): overview, SMS outbox, parcel timeline. Chinese first, `?lang=en`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from . import crud
from .deps import ServicesDep
from .errors import NotFound
from .i18n import pick_lang, translator
from .storage import SessionDep

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
# station staff work on China Standard Time; no DST there
CST = timezone(timedelta(hours=8))
router = APIRouter(include_in_schema=False)


def _fmt_time(ts: float | None) -> str:
    if not ts:
        return "—"
    return datetime.fromtimestamp(ts, CST).strftime("%Y-%m-%d %H:%M:%S")


def _render(request: Request, name: str, services, status_code: int = 200, **ctx) -> HTMLResponse:
    lang = pick_lang(request.query_params.get("lang"))
    return TEMPLATES.TemplateResponse(request, name, {
        "lang": lang, "t": translator(lang), "fmt_time": _fmt_time, "now": time.time(),
        "q": "?lang=en" if lang == "en" else "", "other_q": "" if lang == "en" else "?lang=en",
        "refresh": services.settings.page_refresh_seconds, **ctx,
    }, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep, services: ServicesDep) -> HTMLResponse:
    """All stations, lockers, compartment grid and recent parcels."""
    return _render(request, "overview.html", services, stations=crud.list_stations(session),
                   parcels=crud.list_parcels(session, limit=20), carriers=crud.carrier_names(session))


@router.get("/sms", response_class=HTMLResponse)
def sms(request: Request, session: SessionDep, services: ServicesDep) -> HTMLResponse:
    """The SMS outbox, newest first."""
    return _render(request, "sms.html", services, messages=crud.list_notifications(session, limit=200))


@router.get("/parcels/{ref}", response_class=HTMLResponse)
def parcel(ref: str, request: Request, session: SessionDep, services: ServicesDep) -> HTMLResponse:
    """One parcel's timeline."""
    try:
        found = crud.get_parcel(session, ref=ref)
    except NotFound:
        return _render(request, "parcel.html", services, status_code=404, parcel=None, ref=ref, carriers={})
    return _render(request, "parcel.html", services, parcel=found, ref=ref, carriers=crud.carrier_names(session))
