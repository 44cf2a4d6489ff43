"""Server-rendered pages (Jinja2): overview, SMS outbox, parcel timeline. Chinese first, `?lang=en`."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from jincun.phone import MOBILE_BODY, PHONE_BODY

from . import crud
from .auth import STAFF_READ, Principal, staff_page
from .deps import ServicesDep
from .errors import NotFound
from jincun.i18n import pick_lang, translator
from .wording import (duration, fmt_date, fmt_time, locker_label, op_label, place, source_label, step_label,
                      wait_range)
from .models import Station
from .storage import SessionDep

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
TEMPLATES.env.globals["phone_pattern"] = PHONE_BODY  # the one phone rule, for the pages' phone inputs
TEMPLATES.env.globals["mobile_pattern"] = MOBILE_BODY  # a mobile number, for the villager's SMS login
router = APIRouter(include_in_schema=False)


def with_lang(target: str, lang: str) -> str:
    """A local address with its `lang` set to `lang` (Chinese: none), every other query parameter kept."""
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lang"]
    if lang == "en":
        query.append(("lang", "en"))
    return parts.path + (f"?{urlencode(query)}" if query else "")


def _render(request: Request, name: str, services, status_code: int = 200, **ctx) -> HTMLResponse:
    lang = pick_lang(request.query_params.get("lang"))
    here = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    return TEMPLATES.TemplateResponse(request, name, {
        "lang": lang, "t": translator(lang), "fmt_time": fmt_time, "fmt_date": fmt_date, "now": time.time(),
        "dur": lambda s: duration(s, lang), "place": lambda lk, c=None: place(lk, c, lang),
        "locker_label": lambda lk: locker_label(lk, lang), "op_name": lambda op: op_label(op, lang),
        "source": lambda src: source_label(src, lang), "step": lambda st: step_label(st, lang),
        "wait_label": lambda lo, hi: wait_range(lo, hi, lang),
        "q": "?lang=en" if lang == "en" else "", "other_q": "" if lang == "en" else "?lang=en",
        # the language switch keeps the page's query (by=, next=, q=, page=...)
        "switch_href": with_lang(here, "zh" if lang == "en" else "en"),
        "refresh": services.settings.page_refresh_seconds, "stale_s": services.settings.stale_seconds, **ctx,
    }, status_code=status_code)


def _staff(request: Request, session, services, roles: tuple[str, ...]) -> Principal | Response:
    """The logged-in staff member if their role is one of `roles`, else a redirect to the login page (in the
    page's language, coming back to the page with its query)."""
    who = staff_page(request, session, services, roles)
    if who is None:
        target = quote(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
        lang = "&lang=en" if request.query_params.get("lang") == "en" else ""
        return RedirectResponse(f"/login?next={target}{lang}", status_code=303)
    return who


def _login_unless_demo(request: Request, session, services) -> Response | None:
    """A redirect to the login page for a visitor who is not staff, except in demo mode (the pages are open)."""
    if services.settings.demo:
        return None
    who = _staff(request, session, services, STAFF_READ)
    return who if isinstance(who, Response) else None


PAGE_SIZE = 20  # stations on one page of / and /ops


def search_terms(request: Request) -> tuple[str, int]:
    """The page's search text (`q=`, up to 64 characters) and page number (`page=`, from 1)."""
    q = (request.query_params.get("q") or "").strip()[:64]
    raw = request.query_params.get("page") or "1"
    return q, int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


def pager(request: Request, total: int, page: int, per: int = PAGE_SIZE) -> dict:
    """The page links under a list of `total` rows: previous, next and "page p of n", every other query kept."""
    pages = max(1, -(-total // per))
    page = min(page, pages)
    here = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")

    def link(p: int) -> str:
        parts = urlsplit(here)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "page"] + ([("page", str(p))] if p > 1 else [])
        return parts.path + (f"?{urlencode(query)}" if query else "")

    return {"page": page, "pages": pages, "total": total, "start": (page - 1) * per,
            "prev": link(page - 1) if page > 1 else None, "next": link(page + 1) if page < pages else None}


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    """The stations (searched with `q=`, 20 a page with `page=`), their lockers and compartment grids, and the
    recent parcels (staff; open to all in demo mode)."""
    if (login := _login_unless_demo(request, session, services)) is not None:
        return login
    q, page = search_terms(request)
    ids = crud.find_stations(session, q=q)
    pg = pager(request, len(ids), page)
    shown = ids[pg["start"]:pg["start"] + PAGE_SIZE]
    return _render(request, "overview.html", services, stations=crud.list_stations(session, ids=shown),
                   parcels=crud.list_parcels(session, limit=20), carriers=crud.carrier_names(session),
                   names=dict(session.execute(select(Station.id, Station.name)).all()), search=q, pager=pg)


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
