"""`jincun cloud station|locker|courier|user add|retire`: the county's staff administration from a shell.

Each command works straight on the cloud's database (JINCUN_DATABASE_URL, brought to the schema's head
first), through the same domain functions as the admin pages and API (cloud/crud.py, cloud/accounts.py), so
the same rules hold and every change is audited, as `cli:$USER`. The last line printed is one JSON object.
Secrets never travel on the command line (where `ps` and the shell's history would keep them): a PIN or
password is asked for at the terminal, or read from standard input, one per line, with `--secrets-stdin`.
A mistake prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from jincun.cli import USAGE_ERROR

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cloud.principal import Principal

STATION_KINDS = ("village_shop", "party_service_centre", "postal_point", "town_station", "district_hub")
ROLES = ("admin", "county_official", "maintenance", "station_agent")


class StaffCliError(Exception):
    """A mistake the user can fix; its message is the one line printed."""


def _asker(args: argparse.Namespace) -> Callable[[str], str]:
    """Ask for a secret: the next line of stdin with --secrets-stdin, else at the terminal, twice."""
    def ask(label: str) -> str:
        if args.secrets_stdin:
            line = sys.stdin.readline()
            if not line:
                raise StaffCliError(f"standard input ended before the {label}")
            return line.rstrip("\r\n")
        first = getpass.getpass(f"{label}: ")
        if getpass.getpass(f"{label} again: ") != first:
            raise StaffCliError(f"the two {label}s differ")
        return first
    return ask


def _pin(ask: Callable[[str], str]) -> str:
    from jincun.pins import PIN_MAX_DIGITS, PIN_MIN_DIGITS, is_pin

    pin = ask(f"terminal PIN ({PIN_MIN_DIGITS}-{PIN_MAX_DIGITS} digits)")
    if not is_pin(pin):
        raise StaffCliError(f"a terminal PIN is {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits")
    return pin


def _validation(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or "input"
        return f"{where}: {str(err.get('msg', '')).removeprefix('Value error, ')}"
    return str(exc)


def _run(work: Callable[[Session, Principal], dict]) -> int:
    """Open the cloud's database, run `work` as the CLI's admin, commit, print its JSON; mistakes exit 2."""
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError

    from cloud import migrate
    from cloud.errors import CommandRefused, Conflict, NotFound
    from cloud.principal import Principal
    from cloud.settings import Settings
    from cloud.storage import make_engine, make_sessionmaker

    url = os.environ.get("JINCUN_DATABASE_URL") or Settings.model_fields["database_url"].default
    who = Principal(name=f"cli:{os.environ.get('USER') or getpass.getuser()}"[:64], role="admin")
    try:
        engine = make_engine(url)
    except Exception as exc:  # noqa: BLE001 - a malformed URL is the user's to fix
        print(f"jincun: error: JINCUN_DATABASE_URL: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        migrate.upgrade(engine)
        with make_sessionmaker(engine)() as session:
            try:
                out = work(session, who)
            except (StaffCliError, ValidationError, NotFound, Conflict) as exc:
                session.rollback()
                print(f"jincun: error: {_validation(exc)}", file=sys.stderr)
                return USAGE_ERROR
            except CommandRefused as exc:
                session.rollback()
                print(f"jincun: error: {exc.detail}", file=sys.stderr)
                return USAGE_ERROR
            session.commit()
    except OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        print(f"jincun: error: database {engine.url.render_as_string(hide_password=True)}: {first}",
              file=sys.stderr)
        return USAGE_ERROR
    finally:
        engine.dispose()
    print(json.dumps(out, ensure_ascii=False))
    return 0


# ---- the commands ----------------------------------------------------------------------------

def station_add(args: argparse.Namespace) -> int:
    """Register a station; its gateway gets its key at enrollment (`jincun cloud enroll-token`)."""
    from cloud import crud
    from cloud.schemas import StationCreate

    def work(session, who) -> dict:
        data = StationCreate(id=args.station, name=args.name, kind=args.kind, village=args.village, town=args.town)
        station = crud.create_station(session, data=data, who=who)
        return {"station": station.id, "name": station.name, "kind": station.kind, "active": True}
    return _run(work)


def station_retire(args: argparse.Namespace) -> int:
    """Retire a station: kept for history, its gateway no longer accepted."""
    from cloud import crud

    def work(session, who) -> dict:
        station = crud.retire_station(session, who, station_id=args.station, reason=args.reason)
        return {"station": station.id, "active": station.active}
    return _run(work)


def locker_add(args: argparse.Namespace) -> int:
    """Register a locker and its compartments under a station."""
    from cloud import crud
    from cloud.schemas import LockerCreate
    from jincun.provision import ProvisionError, parse_comps

    def work(session, who) -> dict:
        try:
            comps = parse_comps(args.comps)
        except ProvisionError as exc:
            raise StaffCliError(f"--comps: {exc}") from None
        data = LockerCreate.model_validate({"id": args.locker, "comps": comps})
        crud.add_locker(session, station_id=args.station, data=data, who=who)
        return {"station": args.station, "locker": args.locker, "comps": [c.model_dump() for c in data.comps],
                "active": True}
    return _run(work)


def locker_retire(args: argparse.Namespace) -> int:
    """Retire a locker: kept for history, left out of the station's enrollment."""
    from cloud import crud

    def work(session, who) -> dict:
        locker = crud.retire_locker(session, who, station_id=args.station, locker_id=args.locker, reason=args.reason)
        return {"station": locker.station_id, "locker": locker.id, "active": locker.active}
    return _run(work)


def courier_add(args: argparse.Namespace) -> int:
    """Register a courier of a carrier with a terminal PIN (stored only hashed) and their stations."""
    from cloud import accounts
    from cloud.schemas import CourierCreate

    def work(session, who) -> dict:
        pin = _pin(_asker(args))
        data = CourierCreate(name=args.name, phone=args.phone, pin=pin, stations=args.station or [])
        courier = accounts.add_courier(session, who, code=args.carrier, data=data)
        return {"courier": courier.id, "terminal_id": f"c{courier.id}", "carrier": courier.carrier_code,
                "name": courier.name, "phone": courier.phone, "stations": courier.stations, "active": True}
    return _run(work)


def courier_retire(args: argparse.Namespace) -> int:
    """Retire a courier: their stations refuse their PIN within a minute while online."""
    from cloud import accounts

    def work(session, who) -> dict:
        courier = accounts.retire_courier(session, who, phone=args.phone, reason=args.reason)
        return {"courier": courier.id, "phone": courier.phone, "active": courier.active}
    return _run(work)


def user_add(args: argparse.Namespace) -> int:
    """Create a staff account: admin, county official, maintenance, or a station agent (with a terminal PIN)."""
    from cloud import accounts
    from cloud.schemas import UserCreate

    def work(session, who) -> dict:
        ask = _asker(args)
        password = ask("password (10 characters or more)")
        pin = _pin(ask) if args.role == "station_agent" else None
        data = UserCreate(username=args.username, display_name=args.name or args.username, password=password,
                          role=args.role, station_id=args.station, pin=pin)
        user = accounts.create_user(session, who, data=data)
        session.flush()
        return {"user": user.username, "role": user.role, "station": user.station_id,
                "terminal_id": f"a{user.id}" if pin else None, "active": True}
    return _run(work)


def user_retire(args: argparse.Namespace) -> int:
    """Retire a staff account: kept for the audit trail, no longer able to log in."""
    from cloud import accounts

    def work(session, who) -> dict:
        user = accounts.retire_user(session, who, username=args.username, reason=args.reason)
        return {"user": user.username, "role": user.role, "active": user.active}
    return _run(work)


def add_parsers(c: argparse._SubParsersAction) -> None:
    """The `station`, `locker`, `courier` and `user` groups under `jincun cloud`."""
    env = "works on JINCUN_DATABASE_URL; see docs/cloud.md, Staff administration"

    def reason(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reason", required=True, help="why, for the audit log (1-200 characters)")

    def secrets_stdin(p: argparse.ArgumentParser) -> None:
        p.add_argument("--secrets-stdin", action="store_true",
                       help="read the secrets from standard input, one per line, instead of asking")

    st = c.add_parser("station", help="register or retire stations", description=env).add_subparsers(
        dest="verb", required=True)
    p = st.add_parser("add", help="register a station (its gateway enrolls with `jincun cloud enroll-token`)")
    p.add_argument("station", help="the station's id: lowercase letters, digits and -, e.g. lz-fengjia-01")
    p.add_argument("--name", required=True, help="the station's name as villagers know it, e.g. 冯家村便民店")
    p.add_argument("--kind", choices=STATION_KINDS, default="village_shop",
                   help="what kind of point (default: %(default)s)")
    p.add_argument("--village", default=None, help="its administrative village (made if not in the registry)")
    p.add_argument("--town", default=None, help="the village's town (乡镇)")
    p.set_defaults(fn=station_add)
    p = st.add_parser("retire", help="retire a station: kept for history, its gateway no longer accepted")
    p.add_argument("station", help="the station's id")
    reason(p)
    p.set_defaults(fn=station_retire)

    lk = c.add_parser("locker", help="register or retire lockers", description=env).add_subparsers(
        dest="verb", required=True)
    p = lk.add_parser("add", help="register a locker and its compartments under a station")
    p.add_argument("station", help="the station's id")
    p.add_argument("locker", help="the locker's id at the station, e.g. l1")
    p.add_argument("--comps", required=True, metavar="SPEC",
                   help="how many of each size, numbered from 1 in that order, e.g. 6S,4M,2L (as firmware provision)")
    p.set_defaults(fn=locker_add)
    p = lk.add_parser("retire", help="retire a locker: kept for history, left out of enrollment")
    p.add_argument("station", help="the station's id")
    p.add_argument("locker", help="the locker's id")
    reason(p)
    p.set_defaults(fn=locker_retire)

    co = c.add_parser("courier", help="register or retire couriers", description=env).add_subparsers(
        dest="verb", required=True)
    p = co.add_parser("add", help="register a courier; asks for their terminal PIN (stored only hashed)")
    p.add_argument("--carrier", required=True, help="the carrier's code, e.g. ZTO, EMS, SF")
    p.add_argument("--name", required=True, help="the courier's name as the terminal shows it")
    p.add_argument("--phone", required=True, help="the courier's mobile number (one courier per number)")
    p.add_argument("--station", action="append", metavar="ID",
                   help="a station where they deposit; repeat for several")
    secrets_stdin(p)
    p.set_defaults(fn=courier_add)
    p = co.add_parser("retire", help="retire a courier: their stations refuse their PIN within a minute")
    p.add_argument("phone", help="the courier's mobile number")
    reason(p)
    p.set_defaults(fn=courier_retire)

    us = c.add_parser("user", help="create or retire staff accounts", description=env).add_subparsers(
        dest="verb", required=True)
    p = us.add_parser("add", help="create a staff account; asks for its password (and a station agent's PIN)")
    p.add_argument("username", help="the login name: 3-64 letters, digits, '.', '_' or '-'")
    p.add_argument("--role", required=True, choices=ROLES, help="what the account may do")
    p.add_argument("--name", default=None, help="the name the pages show (default: the login name)")
    p.add_argument("--station", default=None, metavar="ID", help="a station agent's station")
    secrets_stdin(p)
    p.set_defaults(fn=user_add)
    p = us.add_parser("retire", help="retire a staff account: kept for the audit trail, no longer able to log in")
    p.add_argument("username", help="the login name")
    reason(p)
    p.set_defaults(fn=user_retire)
