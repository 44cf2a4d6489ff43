"""Staff pages (login, maintenance dashboard, locker detail, county statistics) and the villager's phone page.

Staff pages use the JWT in an HttpOnly SameSite=Lax cookie, so a form posted from another site carries no
credentials; the phone page uses a separate recipient cookie issued after an SMS one-time code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from jincun.phone import is_mobile

from . import charges, commands, crud, guards, lifecycle, maintenance, recipients, stats
from . import constants as K
from .auth import (OPS_VIEW, RECIPIENT_COOKIE, STAFF_COOKIE, STATS, authenticate_user, make_token, recipient,
                   recipient_phone)
from .deps import ServicesDep
from .errors import CommandRefused, NotFound
from .models import GatewayHealth, Notification, OtpCode
from jincun.i18n import pick_lang, translator
from .pages import PAGE_SIZE, TEMPLATES, _render, _staff, pager, search_terms, with_lang
from .ratelimit import hit
from .schemas import RecipientUpdate
from .sms import queued
from .storage import SessionDep
from .wording import refusal

log = logging.getLogger("jincun.cloud.pages")
router = APIRouter(include_in_schema=False)


def _lang_q(request: Request) -> str:
    return "?lang=en" if request.query_params.get("lang") == "en" else ""


# ---- login -----------------------------------------------------------------------------------

@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, services: ServicesDep) -> HTMLResponse:
    return _render(request, "login.html", services, error=None, next=request.query_params.get("next", "/ops"),
                   username="")


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, session: SessionDep, services: ServicesDep,
                 username: Annotated[str, Form(max_length=64)], password: Annotated[str, Form(max_length=128)],
                 next: Annotated[str, Form(max_length=500)] = "/ops") -> Response:
    addr, now = request.client.host if request.client else "?", time.time()
    if guards.login_locked(session, username, addr, now):
        session.commit()
        services.counters.inc("login_locked")
        return _render(request, "login.html", services, status_code=429, error="too_many", next=next,
                       username=username)
    user = authenticate_user(session, username, password)
    guards.login_result(session, username, addr, user is not None, now)
    session.commit()
    if user is None:
        services.counters.inc("login_failures")
        return _render(request, "login.html", services, status_code=401, error="login_failed", next=next,
                       username=username)
    token = make_token(services.settings.jwt_key, sub=user.username, role=user.role, uid=user.id,
                       minutes=services.settings.jwt_minutes)
    # only local paths, so the login form cannot be used to bounce to another site
    target = next if next.startswith("/") and not next.startswith("//") else "/ops"
    # in the language the person chose on the login page, whatever the page they came from was in
    target = with_lang(target, pick_lang(request.query_params.get("lang")))
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(STAFF_COOKIE, token, httponly=True, samesite="lax", secure=services.settings.cookie_secure,
                    max_age=services.settings.jwt_minutes * 60)
    return resp


@router.post("/logout")
def logout() -> Response:
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(STAFF_COOKIE)
    return resp


# ---- maintenance -----------------------------------------------------------------------------

def locker_health(locker, now: float, stale_after: int) -> str:
    """online, offline or stale: online by status but not heard from for `stale_after` seconds; retired for a
    locker retired in the cloud, whatever it last said (no fault, no alarm)."""
    if not locker.active:
        return "retired"
    if locker.online == "lost":
        return "offline"
    if locker.online == "unknown" or locker.last_seen is None:
        return "unknown"
    return "stale" if now - locker.last_seen > stale_after else "online"


def gateway_state(report: GatewayHealth | None, now: float, stale_after: int) -> str:
    """online, stale (no gateway report for `stale_after` seconds) or unknown (never reported)."""
    if report is None:
        return "unknown"
    return "stale" if now - report.at > stale_after else "online"


# the overview's locker badges use the same rule as the dashboard
TEMPLATES.env.globals["health_of"] = locker_health

# most urgent first: the dashboard lists rows in this order and counts them per state; a retired locker last
LOCKER_STATES = ("offline", "stale", "unknown", "online", "retired")
GATEWAY_STATES = ("stale", "unknown", "online")


def _filters(param: str, states: tuple[str, ...], found: list[str], want: str | None, keep: dict[str, str | None],
             lang_en: bool) -> list[dict]:
    """The chips above a health table: all, then each state with its count; each links to /ops filtered by it
    (keeping the other table's filter and the language)."""
    chips = []
    for state in (None, *states):
        query = {k: v for k, v in keep.items() if v}
        if state:
            query[param] = state
        if lang_en:
            query["lang"] = "en"
        chips.append({"state": state or "all", "count": len(found) if state is None else found.count(state),
                      "href": "/ops" + (f"?{urlencode(query)}" if query else ""), "on": want == state})
    return chips


@router.get("/ops", response_class=HTMLResponse)
def ops(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    who = _staff(request, session, services, OPS_VIEW)
    if isinstance(who, Response):
        return who
    params = request.query_params
    err = params.get("err")
    want = {"health": params.get("health") or None, "gw": params.get("gw") or None}
    for param, states in (("health", LOCKER_STATES), ("gw", GATEWAY_STATES)):
        if want[param] is not None and want[param] not in states:
            err = translator(pick_lang(params.get("lang")))("bad_filter")
            want[param] = None
    search, page = search_terms(request)
    stations = crud.list_stations(session, ids=crud.find_stations(
        session, q=search, only=who.station_id if who.role == "station_agent" else None))
    ids = {s.id for s in stations}
    alarms = [a for a in maintenance.list_alarms(session, who, limit=200) if a.station_id in ids]
    rollouts = maintenance.list_commands(session, who, op="fw_rollout", limit=20)
    now = time.time()
    stale_after = services.settings.stale_seconds
    lockers = sorted(((s, lk, locker_health(lk, now, stale_after)) for s in stations for lk in s.lockers),
                     key=lambda r: (LOCKER_STATES.index(r[2]), r[0].id, r[1].id))
    reports = {g.station_id: g for g in maintenance.gateway_reports(session, who) if g.station_id in ids}
    in_service = maintenance.lockers_in_service(session, list(reports.values()))
    gateways = sorted(((s, reports.get(s.id), gateway_state(reports.get(s.id), now, stale_after))
                       for s in stations), key=lambda r: (GATEWAY_STATES.index(r[2]), r[0].id))
    lang_en = params.get("lang") == "en"
    # 20 stations a page, the most urgent first; both tables show the rows of the stations on the page
    shown_lockers = [r for r in lockers if want["health"] in (None, r[2])]
    shown_gateways = [r for r in gateways if want["gw"] in (None, r[2])]
    worst: dict[str, int] = {}
    for s, _, h in (*shown_lockers, *shown_gateways):
        worst[s.id] = min(worst.get(s.id, len(LOCKER_STATES)), LOCKER_STATES.index(h))
    order = sorted(worst, key=lambda sid: (worst[sid], sid))
    pg = pager(request, len(order), page)
    on_page = set(order[pg["start"]:pg["start"] + PAGE_SIZE])
    return _render(request, "ops.html", services, who=who, alarms=alarms, names={s.id: s.name for s in stations},
                   lockers=[r for r in shown_lockers if r[0].id in on_page],
                   gateways=[r for r in shown_gateways if r[0].id in on_page], search=search, pager=pg,
                   stale_min=stale_after // 60, in_service=in_service,
                   locker_chips=_filters("health", LOCKER_STATES, [r[2] for r in lockers], want["health"],
                                         {"gw": want["gw"], "q": search}, lang_en),
                   gateway_chips=_filters("gw", GATEWAY_STATES, [r[2] for r in gateways], want["gw"],
                                          {"health": want["health"], "q": search}, lang_en),
                   rollouts=[r for r in rollouts if r.station_id in ids], msg=params.get("msg"), err=err)


# field, label key, unit key: one health chart each, over every span in CHART_SPANS
CHART_FIELDS = (("rssi", "rssi", "unit_dbm"), ("vin", "voltage", "unit_volt"),
                ("temp", "temperature", "unit_celsius"), ("outbox", "outbox", "unit_events"))
# span name, seconds shown, seconds averaged per point
CHART_SPANS = (("health_24h", 86400, 900), ("health_7d", 7 * 86400, 3 * 3600))


CHART_GAP_S = 2 * 3600  # no sample for this long (or for 4 points' time, if longer) breaks the line


def chart_data(points, *, bucket: float) -> list[list]:
    """[[ms, value], ...] for the chart, with a [ms, None] after a silence, so an outage shows as a gap."""
    out: list[list] = []
    last = None
    gap = max(CHART_GAP_S, 4 * bucket)
    for p in points:
        if last is not None and p.at - last > gap:
            out.append([int((last + bucket) * 1000), None])
        out.append([int(p.at * 1000), p.value])
        last = p.at
    return out


def health_charts(store, session, *, station_id: str, locker_id: str, now: float) -> dict[str, list[dict]]:
    """Every health chart of one locker, per span, read from the telemetry store (SQL or InfluxDB)."""
    charts: dict[str, list[dict]] = {}
    for span_name, span, bucket in CHART_SPANS:
        since = now - span
        charts[span_name] = [
            {"field": field, "label": label, "unit": unit, "since": int(since * 1000), "until": int(now * 1000),
             "points": chart_data(store.series(session, station_id=station_id, locker_id=locker_id, field=field,
                                               since=since, bucket=bucket), bucket=bucket),
             "integer": field == "outbox"}
            for field, label, unit in CHART_FIELDS]
    return charts


@router.get("/ops/{station_id}/{locker_id}", response_class=HTMLResponse)
def locker_page(station_id: str, locker_id: str, request: Request, session: SessionDep,
                services: ServicesDep) -> Response:
    who = _staff(request, session, services, OPS_VIEW)
    if isinstance(who, Response):
        return who
    return _locker_view(request, session, services, who, station_id, locker_id,
                        msg=request.query_params.get("msg"), err=None, form={})


def _locker_view(request: Request, session, services, who, station_id: str, locker_id: str, *,
                 status_code: int = 200, msg: str | None, err: str | None, form: dict) -> Response:
    """The locker page; after a refused command, with the refusal in the page's language and the form as sent."""
    found = [s for s in crud.list_stations(session, station_id=station_id)
             if who.role != "station_agent" or s.id == who.station_id]
    locker = next((lk for s in found for lk in s.lockers if lk.id == locker_id), None)
    if locker is None:
        return _render(request, "ops_locker.html", services, status_code=404, station=None, locker=None,
                       charts={}, who=who, health="unknown", commands=[], form={})
    now = time.time()
    charts = health_charts(services.ingestor.telemetry, session, station_id=station_id, locker_id=locker_id, now=now)
    cmds = maintenance.list_commands(session, who, station=station_id, locker=locker_id, limit=20)
    return _render(request, "ops_locker.html", services, status_code=status_code, station=found[0], locker=locker,
                   charts=charts, who=who, health=locker_health(locker, now, services.settings.stale_seconds),
                   commands=cmds, msg=msg, err=err, form=form, stale_min=services.settings.stale_seconds // 60)


@router.post("/ops/alarms/{alarm_id}/ack")
def ops_ack(alarm_id: int, request: Request, session: SessionDep, services: ServicesDep) -> Response:
    who = _staff(request, session, services, OPS_VIEW)
    if isinstance(who, Response):
        return who
    try:
        maintenance.ack_alarm(session, who, alarm_id=alarm_id)
    except NotFound:
        pass  # another station's alarm, or none: the dashboard shows it no more either way
    else:
        session.commit()
    # back to the dashboard as it was: its search, filters, page and language
    query = request.url.query
    return RedirectResponse("/ops" + (f"?{query}" if query else ""), status_code=303)


@router.post("/ops/{station_id}/{locker_id}/command")
def ops_command(station_id: str, locker_id: str, request: Request, session: SessionDep, services: ServicesDep,
                op: Annotated[str, Form(max_length=16)], c: Annotated[int | None, Form(ge=1, le=32)] = None,
                reason: Annotated[str, Form(max_length=200)] = "") -> Response:
    who = _staff(request, session, services, OPS_VIEW)
    if isinstance(who, Response):
        return who
    back = f"/ops/{station_id}/{locker_id}"
    sep = "&" if _lang_q(request) else "?"
    lang = pick_lang(request.query_params.get("lang"))
    form = {"op": op, "c": c, "reason": reason}
    if op not in ("open", "disable", "enable", "rebirth"):
        return _locker_view(request, session, services, who, station_id, locker_id, status_code=422, msg=None,
                            err=translator(lang)("bad_command"), form=form)
    try:
        cmd = commands.issue(session, services.settings, who, station_id=station_id, op=op, locker=locker_id,
                             c=c if op != "rebirth" else None, reason=reason or None)
    except (CommandRefused, NotFound) as exc:
        session.commit()
        services.counters.inc("commands_refused")
        return _locker_view(request, session, services, who, station_id, locker_id,
                            status_code=getattr(exc, "status_code", 404), msg=None, err=refusal(exc, lang), form=form)
    session.commit()
    return RedirectResponse(f"{back}{_lang_q(request)}{sep}msg={cmd.cmd_id}", status_code=303)


# ---- statistics ------------------------------------------------------------------------------

STATS_PERIODS = (7, 30, 90)  # days the statistics page can cover; 30 by default


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    who = _staff(request, session, services, STATS)
    if isinstance(who, Response):
        return who
    params = request.query_params
    by = params.get("by", "town")
    by = by if by in ("town", "village", "carrier") else "town"
    err = None
    asked = params.get("period", str(STATS_PERIODS[1]))
    if not asked.isdigit() or int(asked) not in STATS_PERIODS:
        err = translator(pick_lang(params.get("lang")))("bad_period").format(
            p="/".join(map(str, STATS_PERIODS)), d=STATS_PERIODS[1])
        asked = str(STATS_PERIODS[1])
    period = int(asked)
    lang_en = params.get("lang") == "en"
    periods = [{"days": n, "on": n == period, "href": "/stats?" + urlencode(
        {"period": n, "by": by, **({"lang": "en"} if lang_en else {})})} for n in STATS_PERIODS]
    vols = stats.volumes(session, by=by, days=period)
    days = sorted({r["day"] for r in vols})
    pivot: dict[str, dict[str, tuple[int, int]]] = {}
    for r in vols:
        pivot.setdefault(r[by], {})[r["day"]] = (r["inbound"], r["outbound"])
    # the page shows the 20 busiest groups; the export has them all
    ranked = sorted(pivot.items(), key=lambda kv: -sum(a + b for a, b in kv[1].values()))[:20]
    times = stats.pickup_times(session, days=period)
    peak = max((r["parcels"] for r in times), default=0) or 1
    return _render(request, "stats.html", services, who=who, summary=stats.summary(session, days=period),
                   coverage=stats.coverage(session), days=days,
                   pivot=ranked, by=by, pickup=times, peak=peak, overdue=stats.overdue(session, days=period),
                   flags=stats.flags(session, limit=50), subsidy=stats.subsidy(session, days=period, limit=20),
                   produce=stats.produce(session, days=period)[:15],
                   fees=_fee_rows(stats.fees(session, days=period)), carriers=crud.carrier_names(session),
                   door=stats.door_help(session, days=period)[:20], dispatch=stats.dispatch(session, days=period),
                   period=period, periods=periods, err=err)


def _fee_rows(rows: list[dict]) -> list[dict]:
    """The page's fee rows: the extra charges on inbound parcels (up to 30), then the 10 largest postage
    totals; the export has them all."""
    return ([r for r in rows if r["direction"] == "inbound"][:30]
            + [r for r in rows if r["direction"] != "inbound"][:10])


# ---- phone page ------------------------------------------------------------------------------

def _otp_hash(services, phone: str, code: str) -> str:
    return hmac.new(services.settings.jwt_key.encode(), f"otp:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


@router.get("/m", response_class=HTMLResponse)
def phone_home(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    phone = recipient_phone(request, services)
    if phone is None:
        return _render(request, "phone_login.html", services, phone="", sent=False, error=None)
    return _phone_page(request, session, services, phone, msg=request.query_params.get("msg"))


def _phone_page(request: Request, session: SessionDep, services: ServicesDep, phone: str, *,
                msg: str | None = None, err: str | None = None, status_code: int = 200) -> Response:
    """The villager's page; after a refused change, with the refusal in the page's language."""
    return _render(request, "phone.html", services, status_code=status_code, phone=phone,
                   **recipients.phone_view(session, phone=phone), msg=msg, err=err,
                   carriers=crud.carrier_names(session), keep_days=services.settings.overdue_days,
                   my_charges=charges.of_phone(session, phone=phone), fee_kinds=charges.VILLAGER_KINDS)


@router.post("/m/otp", response_class=HTMLResponse)
def phone_otp(request: Request, session: SessionDep, services: ServicesDep,
              phone: Annotated[str, Form(max_length=24)]) -> Response:
    phone = phone.strip()
    if not is_mobile(phone):
        # the typed value stays in the box (escaped by the template), with what a number must look like
        return _render(request, "phone_login.html", services, status_code=422, phone=phone, sent=False,
                       error="phone_invalid")
    if not hit(session, f"otp:{phone}:3600", limit=services.settings.otp_limit_per_hour, window=3600):
        session.commit()
        return _render(request, "phone_login.html", services, status_code=429, phone=phone, sent=False,
                       error="too_many")
    code = f"{secrets.randbelow(10**6):06d}"
    session.add(OtpCode(phone=phone, code_hash=_otp_hash(services, phone, code), attempts=0, used=False,
                        expires_at=time.time() + services.settings.otp_ttl_seconds))
    ttl_minutes = -(-services.settings.otp_ttl_seconds // 60)
    session.add(Notification(**queued(phone, services.settings.sms_style.otp(code=code, minutes=ttl_minutes))))
    session.commit()
    from .sms import deliver_pending_logged
    deliver_pending_logged(services.sessionmaker, services.notifier, services.counters)
    return _render(request, "phone_login.html", services, phone=phone, sent=True, error=None)


@router.post("/m/login", response_class=HTMLResponse)
def phone_login(request: Request, session: SessionDep, services: ServicesDep,
                phone: Annotated[str, Form(max_length=24)], code: Annotated[str, Form(max_length=12)]) -> Response:
    phone = phone.strip()
    otp = session.scalar(select(OtpCode).where(OtpCode.phone == phone, OtpCode.used.is_(False),
                                               OtpCode.expires_at > time.time()).order_by(OtpCode.id.desc()).limit(1))
    ok = otp is not None and otp.attempts < 5 and hmac.compare_digest(otp.code_hash,
                                                                       _otp_hash(services, phone, code.strip()))
    if otp is not None:
        otp.attempts += 1
        otp.used = otp.used or ok or otp.attempts >= 5
    session.commit()
    if not ok:
        services.counters.inc("otp_failures")
        return _render(request, "phone_login.html", services, status_code=401, phone=phone, sent=True,
                       error="code_wrong")
    token = make_token(services.settings.jwt_key, sub=phone, role="recipient", minutes=60 * 24 * 7)
    resp = RedirectResponse(f"/m{_lang_q(request)}", status_code=303)
    resp.set_cookie(RECIPIENT_COOKIE, token, httponly=True, samesite="lax", secure=services.settings.cookie_secure,
                    max_age=7 * 86400)
    return resp


@router.post("/m/consent")
def phone_consent(request: Request, session: SessionDep, services: ServicesDep,
                  consent: Annotated[str, Form(pattern="^(granted|refused)$")]) -> Response:
    who = recipient(request, services)
    if who is None:
        return RedirectResponse("/m", status_code=303)
    recipients.set_recipient(session, who, who.name.removeprefix("recipient-"), RecipientUpdate(consent=consent),
                             services.settings)
    session.commit()
    sep = "&" if _lang_q(request) else "?"
    return RedirectResponse(f"/m{_lang_q(request)}{sep}msg=done", status_code=303)


@router.post("/m/door-help")
def phone_door_help(request: Request, session: SessionDep, services: ServicesDep,
                    door_help: Annotated[str, Form(pattern="^(on|off)$")]) -> Response:
    """Door-to-door help, a setting of its own (apart from the locker consent). A change beyond the hour's limit
    is refused with the page saying so, and the setting stays as the stations have it."""
    who = recipient(request, services)
    if who is None:
        return RedirectResponse("/m", status_code=303)
    phone = who.name.removeprefix("recipient-")
    try:
        recipients.set_recipient(session, who, phone, RecipientUpdate(door_help=door_help == "on"),
                                 services.settings)
    except CommandRefused as exc:
        session.rollback()
        return _phone_page(request, session, services, phone, err=refusal(exc, pick_lang(
            request.query_params.get("lang"))), status_code=exc.status_code)
    session.commit()
    sep = "&" if _lang_q(request) else "?"
    return RedirectResponse(f"/m{_lang_q(request)}{sep}msg=done", status_code=303)


@router.post("/m/code")
def phone_new_code(request: Request, session: SessionDep, services: ServicesDep,
                   station: Annotated[str, Form(max_length=32)]) -> Response:
    who = recipient(request, services)
    if who is None:
        return RedirectResponse("/m", status_code=303)
    phone = who.name.removeprefix("recipient-")
    sep = "&" if _lang_q(request) else "?"
    if not hit(session, f"recode:{phone}:86400", limit=3, window=86400):
        session.commit()
        return RedirectResponse(f"/m{_lang_q(request)}{sep}msg=too_many", status_code=303)
    try:
        lifecycle.replacement_code(session, services.settings, who, station_id=station, phone=phone,
                                   reason="recipient asked on the phone page")
    except (CommandRefused, NotFound):
        session.rollback()
        return RedirectResponse(f"/m{_lang_q(request)}{sep}msg=no_my_parcels", status_code=303)
    session.commit()
    from .sms import deliver_pending_logged
    deliver_pending_logged(services.sessionmaker, services.notifier, services.counters)
    return RedirectResponse(f"/m{_lang_q(request)}{sep}msg=new_code_sent", status_code=303)


@router.post("/m/parcels/{ref}/not-received")
def phone_not_received(ref: str, request: Request, session: SessionDep, services: ServicesDep) -> Response:
    who = recipient(request, services)
    if who is None:
        return RedirectResponse("/m", status_code=303)
    phone = who.name.removeprefix("recipient-")
    parcel = recipients.own_parcel(session, phone=phone, ref=ref)
    sep = "&" if _lang_q(request) else "?"
    if parcel is None:
        return RedirectResponse(f"/m{_lang_q(request)}{sep}msg=no_my_parcels", status_code=303)
    lifecycle.raise_flag(session, parcel, K.FLAG_NOT_RECEIVED, extra={"reported_by": phone,
                                                                      "reported_at": time.time()})
    commands.audit(session, who, "not_received", ref, None)
    session.commit()
    services.counters.inc("signoff_flags")
    return RedirectResponse(f"/m{_lang_q(request)}{sep}msg=reported", status_code=303)


@router.post("/m/logout")
def phone_logout() -> Response:
    resp = RedirectResponse("/m", status_code=303)
    resp.delete_cookie(RECIPIENT_COOKIE)
    return resp

