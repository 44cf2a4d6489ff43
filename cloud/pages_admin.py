"""The county admin's staff page (`/admin`): stations, lockers, couriers and staff accounts, added and retired.

Server-rendered like the other staff pages (Chinese first, `?lang=en`, one column on a phone), admin only.
Each form posts to a route here that calls the same domain functions as the API and `jincun cloud`
(cloud/crud.py, cloud/accounts.py), so the same rules hold and every change is audited; the answer is a
redirect back with a notice or the one-line reason for a refusal. PINs and passwords travel only in form
bodies, never in a URL, and are stored only hashed.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from jincun.provision import ProvisionError, parse_comps

from . import accounts, crud
from .deps import ServicesDep
from .errors import CommandRefused, Conflict, NotFound
from jincun.i18n import pick_lang, translator
from .pages import _render, _staff
from .principal import Principal
from .schemas import CourierCreate, LockerCreate, StationCreate, UserCreate
from .storage import SessionDep

router = APIRouter(include_in_schema=False)
ADMIN_ONLY = ("admin",)
STATION_KINDS = ("village_shop", "party_service_centre", "postal_point", "town_station", "district_hub")
USER_ROLES = ("station_agent", "maintenance", "county_official", "admin")

# this page's strings (Chinese, English); others come from cloud/i18n.py
TEXT: dict[str, tuple[str, str]] = {
    "admin": ("人员与站点管理", "Staff and stations"),
    "stations_h": ("站点", "Stations"),
    "lockers_h": ("快递柜", "Lockers"),
    "couriers_h": ("快递员", "Couriers"),
    "users_h": ("工作人员账号", "Staff accounts"),
    "add_station": ("新增站点", "Add a station"),
    "add_locker": ("新增快递柜", "Add a locker"),
    "add_courier": ("新增快递员", "Add a courier"),
    "add_user": ("新增账号", "Add an account"),
    "retire": ("停用", "Retire"),
    "active": ("在用", "Active"),
    "reason": ("原因", "Reason"),
    "id": ("编号", "Id"),
    "name": ("名称", "Name"),
    "kind": ("类型", "Kind"),
    "village": ("行政村", "Village"),
    "town": ("乡镇", "Town"),
    "comps_spec": ("格口（各尺寸数量，如 6S,4M,2L）", "Compartments (how many of each size, e.g. 6S,4M,2L)"),
    "carrier": ("快递公司", "Carrier"),
    "phone": ("手机号", "Phone"),
    "stations_csv": ("可投递站点（逗号分隔）", "Stations (comma-separated)"),
    "pin": ("终端 PIN（6-12 位数字）", "Terminal PIN (6-12 digits)"),
    "pin_agent": ("终端 PIN（驿站代办员，6-12 位数字）", "Terminal PIN (station agent, 6-12 digits)"),
    "username": ("登录名", "Login name"),
    "display_name": ("姓名", "Name"),
    "password": ("密码（至少 10 位）", "Password (10 characters or more)"),
    "role": ("角色", "Role"),
    "station": ("站点", "Station"),
    "terminal_id": ("终端编号", "Terminal id"),
    "saved": ("已保存", "Saved"),
    "none_yet": ("暂无", "None yet"),
    "village_shop": ("村级便民店", "Village shop"),
    "party_service_centre": ("党群服务中心", "Party service centre"),
    "postal_point": ("邮政网点", "Post office point"),
    "town_station": ("乡镇共配站", "Town co-delivery station"),
    "district_hub": ("区县分拨中心", "District hub"),
    "retire_station": ("停用站点", "Retire the station"),
    "role_station_agent": ("驿站代办员", "Station agent"),
    "role_maintenance": ("运维人员", "Maintenance"),
    "role_county_official": ("县级管理人员", "County official"),
    "role_admin": ("县级管理员", "County admin"),
    "role_courier": ("快递员（旧账号）", "Courier (old account)"),
}


def _t(lang: str):
    base = translator(lang)
    idx = 1 if lang == "en" else 0

    def t(key: str | None) -> str:
        pair = TEXT.get(key or "")
        return pair[idx] if pair else base(key)
    return t


def _back(request: Request, *, msg: str | None = None, err: str | None = None, anchor: str = "") -> Response:
    q = [("lang", "en")] if request.query_params.get("lang") == "en" else []
    if msg:
        q.append(("msg", msg))
    if err:
        q.append(("err", err[:300]))
    query = "&".join(f"{k}={quote(v)}" for k, v in q)
    return RedirectResponse(f"/admin{'?' + query if query else ''}{anchor}", status_code=303)


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return f"{where}: {str(err.get('msg', '')).removeprefix('Value error, ')}"
    if isinstance(exc, CommandRefused):
        return exc.detail
    return str(exc)


def _act(request: Request, session, services, work, *, anchor: str) -> Response:
    """Run one admin change as the logged-in admin: commit and say so, or roll back and say why."""
    who = _staff(request, session, services, ADMIN_ONLY)
    if isinstance(who, Response):
        return who
    try:
        done = work(who)
    except (ValidationError, CommandRefused, Conflict, NotFound) as exc:
        session.rollback()
        return _back(request, err=_problem(exc), anchor=anchor)
    session.commit()
    return _back(request, msg=done, anchor=anchor)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    """Stations with their lockers, couriers and staff accounts, each with its add and retire forms."""
    who = _staff(request, session, services, ADMIN_ONLY)
    if isinstance(who, Response):
        return who
    return _render(request, "admin.html", services, t=_t(pick_lang(request.query_params.get("lang"))), who=who,
                   stations=crud.list_stations(session), couriers=accounts.list_couriers(session),
                   users=accounts.list_users(session), carriers=accounts.list_carriers(session),
                   kinds=STATION_KINDS, roles=USER_ROLES, msg=request.query_params.get("msg"),
                   err=request.query_params.get("err"))


Text = Annotated[str, Form(max_length=200)]
Reason = Annotated[str, Form(min_length=1, max_length=200)]


@router.post("/admin/stations")
def add_station(request: Request, session: SessionDep, services: ServicesDep, id: Text, name: Text,
                kind: Text = "village_shop", village: Text = "", town: Text = "") -> Response:
    def work(who: Principal) -> str:
        data = StationCreate.model_validate({"id": id.strip(), "name": name.strip(), "kind": kind,
                                             "village": village.strip() or None, "town": town.strip() or None})
        return crud.create_station(session, data=data, who=who).id
    return _act(request, session, services, work, anchor="#stations")


@router.post("/admin/stations/{station_id}/retire")
def retire_station(station_id: str, request: Request, session: SessionDep, services: ServicesDep,
                   reason: Reason) -> Response:
    def work(who: Principal) -> str:
        return crud.retire_station(session, who, station_id=station_id, reason=reason).id
    return _act(request, session, services, work, anchor="#stations")


@router.post("/admin/lockers")
def add_locker(request: Request, session: SessionDep, services: ServicesDep, station: Text, id: Text,
               comps: Text) -> Response:
    def work(who: Principal) -> str:
        try:
            numbered = parse_comps(comps.upper())
        except ProvisionError as exc:
            raise CommandRefused(422, str(exc)) from None
        data = LockerCreate.model_validate({"id": id.strip(), "comps": numbered})
        return f"{station}/{crud.add_locker(session, station_id=station, data=data, who=who).id}"
    return _act(request, session, services, work, anchor="#stations")


@router.post("/admin/lockers/{station_id}/{locker_id}/retire")
def retire_locker(station_id: str, locker_id: str, request: Request, session: SessionDep, services: ServicesDep,
                  reason: Reason) -> Response:
    def work(who: Principal) -> str:
        crud.retire_locker(session, who, station_id=station_id, locker_id=locker_id, reason=reason)
        return f"{station_id}/{locker_id}"
    return _act(request, session, services, work, anchor="#stations")


@router.post("/admin/couriers")
def add_courier(request: Request, session: SessionDep, services: ServicesDep, carrier: Text, name: Text,
                phone: Text, pin: Annotated[str, Form(max_length=32)], stations: Text = "") -> Response:
    def work(who: Principal) -> str:
        data = CourierCreate.model_validate({"name": name.strip(), "phone": phone.strip(), "pin": pin,
                                             "stations": [s.strip() for s in stations.replace("，", ",").split(",")
                                                          if s.strip()]})
        courier = accounts.add_courier(session, who, code=carrier, data=data)
        return f"c{courier.id} {courier.name}"
    return _act(request, session, services, work, anchor="#couriers")


@router.post("/admin/couriers/{phone}/retire")
def retire_courier(phone: str, request: Request, session: SessionDep, services: ServicesDep,
                   reason: Reason) -> Response:
    def work(who: Principal) -> str:
        return accounts.retire_courier(session, who, phone=phone, reason=reason).name
    return _act(request, session, services, work, anchor="#couriers")


@router.post("/admin/users")
def add_user(request: Request, session: SessionDep, services: ServicesDep, username: Text, display_name: Text,
             role: Text, password: Annotated[str, Form(max_length=128)], station: Text = "",
             pin: Annotated[str, Form(max_length=32)] = "") -> Response:
    def work(who: Principal) -> str:
        data = UserCreate.model_validate({"username": username.strip(), "display_name": display_name.strip(),
                                          "password": password, "role": role, "station_id": station.strip() or None,
                                          "pin": pin or None})
        user = accounts.create_user(session, who, data=data)
        session.flush()
        return user.username
    return _act(request, session, services, work, anchor="#users")


@router.post("/admin/users/{username}/retire")
def retire_user(username: str, request: Request, session: SessionDep, services: ServicesDep,
                reason: Reason) -> Response:
    def work(who: Principal) -> str:
        return accounts.retire_user(session, who, username=username, reason=reason).username
    return _act(request, session, services, work, anchor="#users")
