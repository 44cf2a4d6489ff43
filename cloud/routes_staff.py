"""Staff HTTP API: login, users, carriers and their clients and couriers, recipients, alarms, commands,
parcels' return flow, sign-off flags and county statistics (with CSV/XLSX export)."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request, Response

from . import accounts, auth, commands, crud, guards, lifecycle, lookups, maintenance, recipients, stats
from . import constants as K
from .auth import OPS_VIEW, STAFF_SECURITY, STATS, Principal, allow, authenticate_user, make_token
from .deps import ServicesDep
from .errors import CommandRefused, Conflict, NotFound
from .exports import Sheet
from .models import Alarm, Carrier, Command, Courier, Recipient, User
from .stats_schemas import ROW_MODELS, AuditEntryPublic, CodeResent, FlagResolved, WhoAmI
from .schemas import (AlarmPublic, ApiClientCreate, ApiClientCreated, CarrierCreate, CarrierPublic, CodeLookup,
                      CodeResend, CommandCreate, CommandPublic, CourierCreate, CourierPublic, FlagPublic,
                      GatewayHealthPublic, ParcelPublic,
                      ReasonBody, RecipientPublic, RecipientUpdate, TokenPublic, UserCreate, UserPublic)
from .storage import SessionDep

log = logging.getLogger("jincun.cloud.staff")
router = APIRouter(prefix=K.API_PREFIX)
PhonePath = Annotated[str, Path(pattern=K.PHONE_RE.pattern)]
StationQ = Annotated[str | None, Query(pattern=r"^[a-z0-9-]{1,32}$")]


def _refuse(exc: CommandRefused | Conflict | NotFound) -> HTTPException:
    """The HTTP answer to a refusal of the domain modules."""
    if isinstance(exc, NotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, Conflict):
        return HTTPException(409, str(exc))
    return HTTPException(exc.status_code, exc.detail)


@router.post("/auth/login", response_model=TokenPublic, tags=["auth"])
def login(request: Request, username: Annotated[str, Form(min_length=1, max_length=64)],
          password: Annotated[str, Form(min_length=1, max_length=128)],
          session: SessionDep, services: ServicesDep) -> TokenPublic:
    """Exchange a staff password for a JWT (OAuth2 password form); throttled per name and address (guards)."""
    addr, now = request.client.host if request.client else "?", time.time()
    wait = guards.login_locked(session, username, addr, now)
    if wait:
        session.commit()
        services.counters.inc("login_locked")
        raise HTTPException(429, f"too many failed logins; try again in {wait} s", headers={"Retry-After": str(wait)})
    user = authenticate_user(session, username, password)
    guards.login_result(session, username, addr, user is not None, now)
    session.commit()
    if user is None:
        services.counters.inc("login_failures")
        raise HTTPException(401, "wrong user name or password", headers={"WWW-Authenticate": "Bearer"})
    token = make_token(services.settings.jwt_key, sub=user.username, role=user.role, uid=user.id,
                       minutes=services.settings.jwt_minutes)
    return TokenPublic(access_token=token, role=user.role)


@router.get("/auth/me", response_model=WhoAmI, tags=["auth"])
def me(who: Annotated[Principal, Depends(allow(*K.ROLES))]) -> WhoAmI:
    """Who the credentials belong to."""
    return WhoAmI(name=who.name, role=who.role, station_id=who.station_id, carrier_code=who.carrier_code)


@router.post("/users", status_code=201, response_model=UserPublic, tags=["users"])
def create_user(data: UserCreate, session: SessionDep,
                who: Annotated[Principal, Depends(allow("admin"))]) -> User:
    """Create a staff account (admin only)."""
    try:
        user = accounts.create_user(session, who, data=data)
    except (CommandRefused, Conflict) as exc:
        raise _refuse(exc) from exc
    session.commit()
    return user


@router.get("/users", response_model=list[UserPublic], tags=["users"])
def list_users(session: SessionDep, _who: Annotated[Principal, Depends(allow("admin"))]) -> list:
    """Every staff account, retired ones too (admin only)."""
    return accounts.list_users(session)


@router.post("/users/{username}/retire", response_model=UserPublic, tags=["users"])
def retire_user(username: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{3,64}$")], data: ReasonBody,
                session: SessionDep, who: Annotated[Principal, Depends(allow("admin"))]) -> User:
    """Retire a staff account: kept for the audit trail, no longer able to log in (admin only; audited)."""
    try:
        user = accounts.retire_user(session, who, username=username, reason=data.reason)
    except (CommandRefused, Conflict, NotFound) as exc:
        raise _refuse(exc) from exc
    session.commit()
    return user


@router.get("/carriers", response_model=list[CarrierPublic], tags=["carriers"])
def list_carriers(session: SessionDep, _who: Annotated[Principal, Depends(allow(*K.STAFF_ROLES))]) -> list:
    """Every carrier."""
    return accounts.list_carriers(session)


@router.post("/carriers", status_code=201, response_model=CarrierPublic, tags=["carriers"])
def add_carrier(data: CarrierCreate, session: SessionDep,
                who: Annotated[Principal, Depends(allow("admin"))]) -> Carrier:
    """Add a carrier beyond the seeded ones."""
    try:
        carrier = accounts.add_carrier(session, who, data=data)
    except Conflict as exc:
        raise _refuse(exc) from exc
    session.commit()
    return carrier


@router.post("/carriers/{code}/clients", status_code=201, response_model=ApiClientCreated, tags=["carriers"])
def add_api_client(code: Annotated[str, Path(pattern=r"^[A-Z0-9_]{1,16}$")], data: ApiClientCreate,
                   session: SessionDep, who: Annotated[Principal, Depends(allow("admin"))]) -> ApiClientCreated:
    """Create a carrier API client; the key and webhook secret are shown once."""
    try:
        created = accounts.add_api_client(session, who, code=code, data=data)
    except NotFound as exc:
        raise _refuse(exc) from exc
    session.commit()
    return created


@router.post("/carriers/{code}/couriers", status_code=201, response_model=CourierPublic, tags=["carriers"])
def add_courier(code: Annotated[str, Path(pattern=r"^[A-Z0-9_]{1,16}$")], data: CourierCreate,
                session: SessionDep, who: Annotated[Principal, Depends(allow("admin", "station_agent"))]) -> Courier:
    """Register a courier with a PIN and the stations they may use."""
    try:
        courier = accounts.add_courier(session, who, code=code, data=data)
    except (CommandRefused, Conflict, NotFound) as exc:
        raise _refuse(exc) from exc
    session.commit()
    return courier


@router.get("/couriers", response_model=list[CourierPublic], tags=["carriers"])
def list_couriers(session: SessionDep, _who: Annotated[Principal, Depends(allow("admin"))]) -> list:
    """Every courier, retired ones too (admin only)."""
    return accounts.list_couriers(session)


@router.post("/couriers/{phone}/retire", response_model=CourierPublic, tags=["carriers"])
def retire_courier(phone: PhonePath, data: ReasonBody, session: SessionDep,
                   who: Annotated[Principal, Depends(allow("admin"))]) -> Courier:
    """Retire a courier: their stations refuse their PIN from the next sync (within a minute); audited."""
    try:
        courier = accounts.retire_courier(session, who, phone=phone, reason=data.reason)
    except (Conflict, NotFound) as exc:
        raise _refuse(exc) from exc
    session.commit()
    return courier


@router.get("/recipients/{phone}", response_model=RecipientPublic, tags=["recipients"])
def get_recipient(phone: PhonePath, session: SessionDep,
                  _who: Annotated[Principal, Depends(allow("admin", "station_agent", "maintenance"))]) -> Recipient:
    """A recipient's consent and door-to-door need."""
    try:
        return recipients.get_recipient(session, phone=phone)
    except NotFound as exc:
        raise _refuse(exc) from exc


@router.put("/recipients/{phone}", response_model=RecipientPublic, tags=["recipients"])
def put_recipient(phone: PhonePath, data: RecipientUpdate, session: SessionDep, services: ServicesDep,
                  who: Annotated[Principal, Depends(allow("admin", "station_agent"))]) -> Recipient:
    """Record a recipient's name, consent (e.g. signed on paper at the station) or door-to-door need."""
    try:
        rec = recipients.set_recipient(session, who, phone, data, services.settings)
    except CommandRefused as exc:
        session.rollback()
        raise _refuse(exc) from exc
    session.commit()
    return rec


@router.get("/alarms", response_model=list[AlarmPublic], tags=["maintenance"])
def list_alarms(session: SessionDep, who: Annotated[Principal, Depends(allow(*OPS_VIEW))],
                station: StationQ = None, open_only: bool = True,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list:
    """Alarms, newest first (a station agent sees only their station)."""
    return maintenance.list_alarms(session, who, station=station, open_only=open_only, limit=limit)


@router.get("/gateways", response_model=list[GatewayHealthPublic], tags=["maintenance"])
def list_gateways(session: SessionDep, services: ServicesDep,
                  who: Annotated[Principal, Depends(allow(*OPS_VIEW))]) -> list[GatewayHealthPublic]:
    """The latest health each station's gateway reported (a station agent sees only their station)."""
    now = time.time()
    reports = maintenance.gateway_reports(session, who)
    in_service = maintenance.lockers_in_service(session, reports)
    return [GatewayHealthPublic.model_validate(g).model_copy(
        update={"stale": now - g.at > services.settings.stale_seconds,
                "lockers_online": in_service[g.station_id][0], "lockers_total": in_service[g.station_id][1]})
        for g in reports]


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmPublic, tags=["maintenance"])
def ack_alarm(alarm_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep,
              who: Annotated[Principal, Depends(allow(*OPS_VIEW))]) -> Alarm:
    """Acknowledge an alarm (idempotent; audited)."""
    try:
        alarm = maintenance.ack_alarm(session, who, alarm_id=alarm_id)
    except NotFound as exc:
        raise _refuse(exc) from exc
    session.commit()
    return alarm


@router.post("/commands", status_code=201, response_model=CommandPublic, tags=["maintenance"])
def send_command(data: CommandCreate, session: SessionDep, services: ServicesDep,
                 who: Annotated[Principal, Depends(allow(*OPS_VIEW))]) -> Command:
    """Queue a downlink command: remote open (role, reason, rate limit, audit), disable/enable, rebirth,
    firmware roll-out or a gateway setting."""
    extra: dict = {}
    if data.op == "fw_rollout":
        if not (data.version and data.url and data.sha256):
            raise HTTPException(422, "fw_rollout needs version, url and sha256")
        extra = {"version": data.version, "url": data.url, "sha256": data.sha256, "lockers": data.lockers or []}
    elif data.op == "config":
        if data.key is None:
            raise HTTPException(422, "config needs key and value")
        extra = {"key": data.key, "value": data.value}
    elif data.op == "rebirth" and not data.locker:
        raise HTTPException(422, "rebirth needs a locker")
    try:
        cmd = commands.issue(session, services.settings, who, station_id=data.station, op=data.op,
                             locker=data.locker, c=data.c, reason=data.reason, extra=extra)
    except (CommandRefused, NotFound) as exc:
        session.commit()  # keep the audit line of a refused open
        services.counters.inc("commands_refused")
        raise _refuse(exc) from exc
    session.commit()
    services.counters.inc(f"commands_{data.op}")
    return cmd


@router.get("/commands", response_model=list[CommandPublic], tags=["maintenance"])
def list_commands(session: SessionDep, who: Annotated[Principal, Depends(allow(*OPS_VIEW))],
                  station: StationQ = None, op: Annotated[str | None, Query(max_length=16)] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list:
    """Commands with their acknowledgement, newest first (firmware roll-out status: op=fw_rollout)."""
    return maintenance.list_commands(session, who, station=station, op=op, limit=limit)


@router.post("/codes/resend", status_code=201, response_model=CodeResent, tags=["parcels"])
def resend_code(data: CodeResend, session: SessionDep, services: ServicesDep,
                who: Annotated[Principal, Depends(allow(*OPS_VIEW))]) -> CodeResent:
    """Issue a replacement pickup code (leaked code, lost SMS); goes down as `code_sync`."""
    try:
        _code, cmds = lifecycle.replacement_code(session, services.settings, who, station_id=data.station,
                                                 phone=data.phone, reason=data.reason)
    except (CommandRefused, NotFound) as exc:
        raise _refuse(exc) from exc
    session.commit()
    return CodeResent(commands=[c.cmd_id for c in cmds])


@router.post("/codes/lookup", response_model=list[ParcelPublic], tags=["parcels"], dependencies=STAFF_SECURITY)
async def lookup_code(request: Request, services: ServicesDep, data: CodeLookup) -> Response:
    """The parcels a live pickup code opens at a station (a villager calling the station with their code).

    The code travels in the body, never in a URL; each staff member has an hourly limit (cloud/guards.py).
    """
    who = await auth.authorize(request, services, OPS_VIEW)
    if who.role == "station_agent" and who.station_id != data.station:
        raise HTTPException(403, "a station agent looks up codes of their own station only")
    if who.name != guards.SERVICE_PRINCIPAL:
        def count() -> bool:
            with services.sessionmaker() as session:
                ok = guards.count_code_lookup(session, services.settings, who, data.station, time.time())
                session.commit()
                return ok
        if not await anyio.to_thread.run_sync(count):
            services.counters.inc("code_lookups_refused")
            raise HTTPException(429, f"at most {services.settings.code_lookup_limit_per_hour} code lookups an hour")
    return lookups.json_response(await lookups.parcels_by_code_any(services, data.station, data.code))


@router.post("/parcels/{ref}/return", response_model=ParcelPublic, tags=["parcels"])
def return_parcel(ref: Annotated[str, Path(pattern=K.REF_RE.pattern)], data: ReasonBody, session: SessionDep,
                  who: Annotated[Principal, Depends(allow("admin", "station_agent", "courier"))]) -> ParcelPublic:
    """Close the return flow of an overdue parcel."""
    try:
        lifecycle.mark_returned(session, who, ref=ref, reason=data.reason)
    except (CommandRefused, NotFound) as exc:
        raise _refuse(exc) from exc
    session.commit()
    return crud.get_parcel(session, ref=ref)


@router.post("/parcels/{ref}/door", response_model=ParcelPublic, tags=["parcels"])
def deliver_to_door(ref: Annotated[str, Path(pattern=K.REF_RE.pattern)], data: ReasonBody, session: SessionDep,
                    who: Annotated[Principal, Depends(allow("admin", "station_agent", "courier"))]) -> ParcelPublic:
    """Record a door-to-door delivery (recipients who need help); audited."""
    try:
        lifecycle.deliver_door(session, who, ref=ref, reason=data.reason)
    except (CommandRefused, NotFound) as exc:
        raise _refuse(exc) from exc
    session.commit()
    return crud.get_parcel(session, ref=ref)


@router.get("/flags", response_model=list[FlagPublic], tags=["statistics"])
def list_flags(session: SessionDep, _who: Annotated[Principal, Depends(allow(*STATS, "maintenance"))]) -> list:
    """Fake sign-off flags with their locker evidence."""
    return [FlagPublic(**{k: v for k, v in r.items() if k != "missing"}) for r in stats.flags(session)]


@router.post("/flags/{flag_id}/resolve", response_model=FlagResolved, tags=["statistics"])
def resolve_flag(flag_id: Annotated[int, Path(ge=1, le=2**31 - 1)], data: ReasonBody, session: SessionDep,
                 who: Annotated[Principal, Depends(allow(*STATS))]) -> FlagResolved:
    """Close a flag after checking it (audited)."""
    try:
        maintenance.resolve_flag(session, who, flag_id=flag_id, reason=data.reason)
    except NotFound as exc:
        raise _refuse(exc) from exc
    session.commit()
    return FlagResolved(id=flag_id, resolved=True)


Table = Literal["coverage", "volumes", "pickup_times", "overdue", "flags", "subsidy", "produce", "fees", "door_help",
                "dispatch"]
By = Literal["village", "town", "carrier"]


def _table_rows(session, name: str, by: str, days: int) -> list[dict]:
    """One county statistics table's rows (the query parameters each table does not take are ignored)."""
    if name == "volumes":
        return stats.table(session, name, by=by, days=days)
    return stats.table(session, name, **({} if name in ("coverage", "flags") else {"days": days}))


def _stats_endpoint(name: str):
    def endpoint(session: SessionDep, _who: Annotated[Principal, Depends(allow(*STATS))], by: By = "town",
                 days: Annotated[int, Query(ge=1, le=366)] = 30) -> list:
        return _table_rows(session, name, by, days)
    endpoint.__doc__ = (getattr(stats, name).__doc__ or "").split("\n\n")[0]
    return endpoint


# one route per table, each with its row model; volumes names only the key `by` chose
for _name, _row in ROW_MODELS.items():
    router.add_api_route(f"/stats/{_name}", _stats_endpoint(_name), methods=["GET"],
                         response_model=list[_row],  # type: ignore[valid-type]  # a model chosen per route
                         response_model_exclude_none=_name == "volumes", tags=["statistics"], name=f"stats_{_name}")


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILE = {"schema": {"type": "string", "format": "binary"}}


@router.get("/stats/{name}/export", tags=["statistics"], response_class=Response,
            responses={200: {"description": "the table as a file", "content": {"text/csv": FILE, XLSX: FILE}}})
def stats_export(name: Table, session: SessionDep, _who: Annotated[Principal, Depends(allow(*STATS))],
                 fmt: Literal["csv", "xlsx"] = "csv", by: By = "town",
                 days: Annotated[int, Query(ge=1, le=366)] = 30, lang: Literal["zh", "en"] = "zh") -> Response:
    """A statistics table as CSV or XLSX, for WPS and Excel: headers in Chinese (`lang=en`: English), carriers
    by name, local dates, shares as percentages, typed cells in XLSX."""
    rows = _table_rows(session, name, by, days)
    sheet = Sheet(name, rows, lang=lang, carriers=crud.carrier_names(session))
    if fmt == "csv":
        return Response(sheet.csv(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return Response(sheet.xlsx(), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})


@router.get("/stats/{name}", include_in_schema=False)
def unknown_table(name: str, _who: Annotated[Principal, Depends(allow(*STATS))]) -> None:
    """A table name that is none of the above (registered after them, so it only sees the others)."""
    raise HTTPException(422, f"unknown statistics table {name!r}; one of: {', '.join(ROW_MODELS)}")


@router.get("/audit", response_model=list[AuditEntryPublic], tags=["users"])
def audit_log(session: SessionDep, _who: Annotated[Principal, Depends(allow("admin"))],
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list:
    """The audit log, newest first."""
    return maintenance.audit_entries(session, limit=limit)
