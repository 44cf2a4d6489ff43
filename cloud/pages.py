"""Server-rendered pages (Jinja2): overview, SMS outbox, parcel timeline. Chinese first, `?lang=en`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from jincun.phone import PHONE_BODY

from . import crud
from .auth import STAFF_READ, Principal, staff_page
from .deps import ServicesDep
from .errors import NotFound
from .i18n import pick_lang, translator
from .models import Station
from .storage import SessionDep

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
TEMPLATES.env.globals["phone_pattern"] = PHONE_BODY  # the one phone rule, for the pages' phone inputs
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


def _staff(request: Request, session, services, roles: tuple[str, ...]) -> Principal | Response:
    """The logged-in staff member if their role is one of `roles`, else a redirect to the login page."""
    who = staff_page(request, session, services, roles)
    if who is None:
        target = quote(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"/login?next={target}", status_code=303)
    return who


def _login_unless_demo(request: Request, session, services) -> Response | None:
    """A redirect to the login page for a visitor who is not staff, except in demo mode (the pages are open)."""
    if services.settings.demo:
        return None
    who = _staff(request, session, services, STAFF_READ)
    return who if isinstance(who, Response) else None


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    """All stations, lockers, compartment grid and recent parcels (staff; open to all in demo mode)."""
    if (login := _login_unless_demo(request, session, services)) is not None:
        return login
    return _render(request, "overview.html", services, stations=crud.list_stations(session),
                   parcels=crud.list_parcels(session, limit=20), carriers=crud.carrier_names(session))


@router.get("/sms", response_class=HTMLResponse)
def sms(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    """The SMS outbox, newest first: it holds pickup codes, so staff only (open to all in demo mode)."""
    if (login := _login_unless_demo(request, session, services)) is not None:
        return login
    return _render(request, "sms.html", services, messages=crud.list_notifications(session, limit=200))


@router.get("/parcels/{ref}", response_class=HTMLResponse)
def parcel(ref: str, request: Request, session: SessionDep, services: ServicesDep) -> HTMLResponse:
    """One parcel's timeline."""
    try:
        found = crud.get_parcel(session, ref=ref)
    except NotFound:
        return _render(request, "parcel.html", services, status_code=404, parcel=None, ref=ref, carriers={})
    station = session.get(Station, found.station_id) if found.station_id else None
    return _render(request, "parcel.html", services, parcel=found, ref=ref, carriers=crud.carrier_names(session),
                   station_name=station.name if station else None)
