"""Station terminal: the local page couriers and the village agent use, working with the cloud unreachable.

Routes live under /api/v1/terminal; the page itself is gateway/terminal_static/index.html at /terminal.
"""


import contextlib
import functools
import html
import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from jincun import carriers
from jincun.i18n import LANGS, section
from jincun.phone import PHONE_BODY, PHONE_OR_EMPTY_PATTERN, PHONE_PATTERN, mask_phone
from jc import records

from . import assist
from . import const as C
from . import protocol
from . import returns
from .boardlocker import BoardLocker, KeypadLocked
from .config import Carrier, TerminalUser
from .deposits import KEYPAD_MAX
from .errors import (CommandRejected, CommandTimeout, LockerError, LockerOffline, LockerRetired, NoCompartment,
                     NoFoundParcel, OutboxError, ProtocolError, UnknownParcel)
from .lockout import RateWindows
from .pins import (PIN_ADDR_LOCK, PIN_ITERATIONS, PIN_MIN_DIGITS, PIN_RE, PIN_USER_LOCK,  # noqa: F401 (the
                   SESSIONS_PER_USER, Sessions, hash_pin, verify_pin)  # terminal's names, re-exported)
from .stationdb import Record
from .terminal_outbound import OutboundIn, add_routes, fee_cents  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from .services import HttpServices

log = logging.getLogger("jincun.gateway.terminal")

STATIC = Path(__file__).with_name("terminal_static")
# door-to-door hand-overs per agent: a morning's round is a handful; a script opening door after door is not
HANDOVER_LIMITS = ((5, 60.0), (30, 3600.0))


@functools.cache
def terminal_words() -> dict[str, dict[str, str]]:
    """The terminal's words in both languages, from the one table (jincun/i18n.py): its own `term.` entries
    and the `err.` entries for the error codes its API answers with."""
    return {lang: {**section("err.", lang), **section("term.", lang)} for lang in LANGS}


@functools.cache
def terminal_page() -> str:
    """The terminal page, its phone inputs carrying the one phone rule (jincun/phone.py) as their pattern and
    its words from the one table, in the page itself, so it needs no second request and works offline."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    words = json.dumps(terminal_words(), ensure_ascii=False).replace("</", "<\\/")
    return page.replace("{{phone_pattern}}", html.escape(PHONE_BODY, quote=True)).replace("{{words}}", words)


class LoginIn(BaseModel):
    user: str = Field(pattern=C.ID_RE)
    pin: str = Field(pattern=PIN_RE)


class TermDepositIn(BaseModel):
    waybill: str = Field(pattern=r"^[A-Za-z0-9-]{6,40}$")
    phone: str = Field(pattern=PHONE_PATTERN)
    size: Literal["S", "M", "L"]
    consent_asked: bool = False
    carrier: Carrier | None = None  # the carrier the desk picked (a courier's own is theirs)


class KeypadParcelIn(BaseModel):
    waybill: str = Field(pattern=r"^[A-Za-z0-9-]{6,40}$")
    phone: str = Field(pattern=PHONE_PATTERN)
    size: Literal["S", "M", "L"]
    consent_asked: bool = False
    carrier: Carrier | None = None


class KeypadIn(BaseModel):
    """A courier's parcels for the locker's keypad: one PIN opens their compartments, in one locker."""

    parcels: list[KeypadParcelIn] = Field(min_length=1, max_length=KEYPAD_MAX)
    locker: str | None = Field(None, pattern=C.ID_RE)


class FoundIn(BaseModel):
    locker: str = Field(pattern=C.ID_RE)
    c: int = Field(ge=C.COMP_MIN, le=C.COMP_MAX)
    waybill: str = Field(pattern=r"^[A-Za-z0-9-]{6,40}$")
    phone: str = Field(pattern=PHONE_PATTERN)
    carrier: Carrier
    consent_asked: bool = False


class DepositIn(BaseModel):
    """A deposit through the station's machine API (a courier's app or a scanner desk): same rules."""

    waybill: str = Field(pattern=r"^[A-Za-z0-9-]{1,40}$")
    phone: str = Field(pattern=PHONE_PATTERN)
    carrier: Carrier | None = None
    size: Literal["S", "M", "L"]
    locker: str | None = Field(None, pattern=C.ID_RE)
    consent_asked: bool = False


class FaultIn(BaseModel):
    locker: str = Field(pattern=C.ID_RE)
    c: int | None = Field(None, ge=C.COMP_MIN, le=C.COMP_MAX)
    phone: str = Field("", pattern=PHONE_OR_EMPTY_PATTERN)
    text: str = Field(min_length=1, max_length=records.FAULT_TEXT_MAX)


class HandoverIn(BaseModel):
    ref: str = Field(pattern=C.REF_RE)


class PickupIn(BaseModel):
    code: str = Field(pattern=r"^[0-9]{6}$")


@contextlib.contextmanager
def door_errors() -> Iterator[None]:
    """The answer a courier or agent gets when a door cannot be opened for them, one rule for every route."""
    try:
        yield
    except NoCompartment:
        raise HTTPException(409, {"error": "no_compartment"}) from None
    except LockerRetired as exc:
        raise HTTPException(409, {"error": "locker_retired", "locker": str(exc)}) from None
    except NoFoundParcel:
        raise HTTPException(409, {"error": "not_found_parcel"}) from None
    except CommandRejected as exc:
        raise HTTPException(409, {"error": "locker_refused", "detail": exc.err}) from None
    except (LockerOffline, CommandTimeout):
        raise HTTPException(503, {"error": "locker_offline"}) from None
    except OutboxError:
        raise HTTPException(503, {"error": "storage"}) from None
    except LockerError:
        raise HTTPException(404, {"error": "unknown_locker"}) from None


def create_router(gw: "HttpServices") -> APIRouter:
    """Terminal routes bound to one running gateway's services (`gw` holds those, not the `Gateway`)."""
    r = APIRouter()
    cfg = gw.cfg.terminal
    sessions = gw.sessions

    def token(authorization: Annotated[str | None, Header()] = None) -> str | None:
        return authorization.removeprefix("Bearer ").strip() if authorization else None

    def courier(tok: Annotated[str | None, Depends(token)]) -> TerminalUser:
        u = sessions.user(tok)
        if u.role != "courier":
            raise HTTPException(403, {"error": "role"})
        return u

    def staff(tok: Annotated[str | None, Depends(token)]) -> TerminalUser:
        return sessions.user(tok)  # any logged-in user: couriers and agents both scan waybills

    def agent(tok: Annotated[str | None, Depends(token)]) -> TerminalUser:
        u = sessions.user(tok)
        if u.role != "agent":
            raise HTTPException(403, {"error": "role"})
        return u

    async def record(kind: str, body: dict, extra=None) -> None:
        try:
            protocol.check_record(kind, body)  # the cloud checks with the same table: never a dead letter
        except ProtocolError as exc:
            raise HTTPException(422, {"error": exc.code, "detail": exc.detail}) from None

        def tx(conn: sqlite3.Connection) -> None:
            if extra:
                extra(conn)
            gw.outbox.insert_in_tx(conn, Record(src=C.SRC_GATEWAY, kind=kind, body=body))
        try:
            await gw.outbox.run(tx)
        except OutboxError as exc:
            raise HTTPException(503, {"error": "storage", "detail": str(exc)}) from None

    @r.get("/terminal", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(terminal_page())

    @r.get("/terminal/words.json", include_in_schema=False)
    async def words() -> dict:
        return terminal_words()

    @r.get("/terminal/{name}", include_in_schema=False)
    async def asset(name: Literal["app.js", "style.css"]) -> FileResponse:
        return FileResponse(STATIC / name)

    p = "/api/v1/terminal"

    @r.get(f"{p}/info")
    async def info() -> dict:
        return {"station": gw.cfg.station, "name": gw.cfg.name,
                "carriers": [{"code": c, "zh": carriers.display(c), "en": carriers.display(c, "en")}
                             for c in cfg.carriers],
                "uplink": "up" if gw.uplink.up else "down",
                "lockers": [{"id": ls.id, "online": ls.online, "retired": ls.retired, "comps": sorted(ls.comps)}
                            for ls in gw.link.lockers.values()],
                "board_pickup": bool(gw.boards),
                "users": [{"id": u.id, "name": u.name, "role": u.role} for u in sessions.users.values()]}

    @r.post(f"{p}/login")
    async def login(body: LoginIn, request: Request) -> dict:
        tok, u = await sessions.login(body.user, body.pin, request.client.host if request.client else "?")
        log.info("terminal login: %s (%s)", u.id, u.role)
        return {"token": tok, "user": u.id, "name": u.name, "role": u.role, "carrier": u.carrier,
                "scan_n": gw.scanner.n if gw.scanner else 0}

    @r.post(f"{p}/logout")
    async def logout(tok: Annotated[str | None, Depends(token)]) -> dict:
        await sessions.logout(tok)
        return {"ok": True}

    @r.get(f"{p}/scans")
    async def scans(after: int = 0, _: TerminalUser = Depends(staff)) -> dict:
        sc = gw.scanner
        return {"scans": sc.since(after) if sc else [], "n": sc.n if sc else 0}

    @r.get(f"{p}/consent/{{phone}}")
    async def consent(phone: str, _: TerminalUser = Depends(courier)) -> dict:
        got = await gw.consent.check(phone)
        return {"consent": got.consent, "door_help": got.door_help, "source": got.source}

    async def consent_how(phone: str, asked: bool) -> str:
        """How the recipient's consent to locker delivery is known; 409 when it is refused or unknown."""
        got = await gw.consent.check(phone)
        if got.consent == "refused":
            gw.counters.inc("deposits_no_consent")
            raise HTTPException(409, {"error": "consent_refused"})
        if got.consent == "granted":
            return "recipient"
        if cfg.consent_offline == "refuse" or not asked:
            raise HTTPException(409, {"error": "consent_unknown"})
        return "courier_asked"

    async def carrier_of(u: TerminalUser, waybill: str, picked: str | None) -> str:
        """The carrier a deposit records, always a carrier code: a courier's own; for a user with none (the
        station's desk) the one picked at the terminal, of the station's carriers, else the carrier whose
        manifest pre-advised the waybill. Neither known: refused (409 carrier_needed), never a made-up one."""
        if u.carrier:
            if picked and picked != u.carrier:
                raise HTTPException(403, {"error": "carrier"})
            return u.carrier
        if picked:
            if picked not in cfg.carriers:
                raise HTTPException(422, {"error": "carrier_unknown", "carrier": picked})
            return picked
        pre = await gw.preadvice.carrier(waybill)
        if pre is None:
            gw.counters.inc("deposits_no_carrier")
            raise HTTPException(409, {"error": "carrier_needed", "waybill": waybill})
        return pre

    async def deposit_as(u: TerminalUser, waybill: str, phone: str, size: str, consent_asked: bool, *,
                         carrier: str | None = None, locker: str | None = None) -> dict:
        """The one deposit rule of both routes: a logged-in courier, the parcel's carrier, the recipient's
        consent, then a door."""
        code = await carrier_of(u, waybill, carrier)
        how = await consent_how(phone, consent_asked)
        with door_errors():
            return await gw.deposits.request(waybill, phone, code, size, locker, courier=u.id, consent=how)

    @r.post(f"{p}/deposit", status_code=201)
    async def deposit(body: TermDepositIn, u: TerminalUser = Depends(courier)) -> dict:
        return await deposit_as(u, body.waybill, body.phone, body.size, body.consent_asked, carrier=body.carrier)

    @r.post("/api/v1/deposits", status_code=201)
    async def api_deposit(body: DepositIn, u: TerminalUser = Depends(courier)) -> dict:
        return await deposit_as(u, body.waybill, body.phone, body.size, body.consent_asked, carrier=body.carrier,
                                locker=body.locker)

    @r.post(f"{p}/keypad", status_code=201)
    async def keypad(body: KeypadIn, u: TerminalUser = Depends(courier)) -> dict:
        """Book compartments for the keypad: the same consent rule per parcel, then a one-time PIN shown once."""
        parcels = [{"waybill": x.waybill, "phone": x.phone, "size": x.size,
                    "carrier": await carrier_of(u, x.waybill, x.carrier),
                    "consent": await consent_how(x.phone, x.consent_asked)} for x in body.parcels]
        with door_errors():
            booked = await gw.deposits.book_keypad(parcels, body.locker, courier=u.id)
        log.info("keypad booking by %s: %d compartments at %s", u.id, len(booked["deposits"]), booked["locker"])
        return booked

    @r.get(f"{p}/deposit/{{ref}}")
    async def deposit_state(ref: str, _: TerminalUser = Depends(courier)) -> dict:
        try:
            got = await gw.deposits.get(ref)
        except UnknownParcel:
            raise HTTPException(404, {"error": "unknown_parcel"}) from None
        return {"ref": got["ref"], "waybill": got["waybill"], "phone": mask_phone(got["phone"]),
                "carrier": got["carrier"], "locker": got["locker"], "c": got["c"], "size": got["size"],
                "state": got["state"], "at": int(got["updated"]), "station": gw.cfg.station}

    @r.get(f"{p}/parcels")
    async def parcels(_: TerminalUser = Depends(agent)) -> dict:
        assist = await door_to_door()
        items = [{"ref": w["ref"], "waybill": w["waybill"], "phone": mask_phone(w["phone"]), "carrier": w["carrier"],
                  "locker": w["locker"], "c": w["c"], "since": int(w["updated"]), "door_to_door": w["phone"] in assist}
                 for w in await gw.deposits.waiting(limit=500)]
        return {"parcels": items, "door_to_door": [i for i in items if i["door_to_door"]]}

    @r.get(f"{p}/found")
    async def found(_: TerminalUser = Depends(agent)) -> dict:
        return {"found": gw.deposits.found()}

    @r.post(f"{p}/found", status_code=201)
    async def adopt(body: FoundIn, u: TerminalUser = Depends(agent)) -> dict:
        """A found parcel: the agent scans its waybill and types the phone; code and SMS go out as for a deposit."""
        how = await consent_how(body.phone, body.consent_asked)
        with door_errors():
            return await gw.deposits.adopt(body.locker, body.c, body.waybill, body.phone, body.carrier,
                                           agent=u.id, consent=how)

    handovers = RateWindows(HANDOVER_LIMITS)

    async def door_to_door() -> set[str]:
        """The station's door-to-door list: station.json's phones and the villagers' own choices (assist.py)."""
        return await assist.phones(gw.outbox, cfg.assist_phones)

    @r.post(f"{p}/handover")
    async def handover(body: HandoverIn, u: TerminalUser = Depends(agent)) -> dict:
        try:
            got = await gw.deposits.get(body.ref)
        except UnknownParcel:
            got = None
        if got is None or got["state"] != "deposited":
            raise HTTPException(409, {"error": "not_waiting"})
        if got["phone"] not in await door_to_door():
            gw.counters.inc("handovers_refused")
            log.warning("agent %s asked to hand over %s, which is not on the door-to-door list", u.id, body.ref)
            raise HTTPException(403, {"error": "not_door_to_door"})
        wait = handovers.take(u.id)
        if wait:
            gw.counters.inc("handovers_rate_limited")
            log.warning("agent %s: hand-over limit reached (%s)", u.id, HANDOVER_LIMITS)
            raise HTTPException(429, {"error": "rate_limited", "secs": wait})
        try:
            ack = await gw.link.send_command(got["locker"], "open", c=got["c"], by=u.id, why="door_to_door")
        except (LockerOffline, CommandTimeout):
            raise HTTPException(503, {"error": "locker_offline"}) from None
        except LockerError as exc:
            raise HTTPException(409, {"error": "locker_refused", "detail": str(exc)}) from None
        if not ack or not ack.get("ok"):
            raise HTTPException(409, {"error": "locker_refused", "detail": (ack or {}).get("err")})
        at = int(time.time())
        mark = functools.partial(gw.deposits.handed_over_in_tx, ref=body.ref, at=at)
        await record(C.KIND_HANDOVER, {"ref": body.ref, "by": u.id, "at": at, "how": "door_to_door"}, mark)
        gw.counters.inc("handovers")
        return {"ref": body.ref, "locker": got["locker"], "c": got["c"], "at": at}

    returns.add_routes(r, gw, courier=courier, record=record, mask=mask_phone)

    @r.post(f"{p}/fault", status_code=201)
    async def fault(body: FaultIn, _: TerminalUser = Depends(agent)) -> dict:
        ls = gw.link.lockers.get(body.locker)
        if ls is None or (body.c is not None and body.c not in ls.comps):
            raise HTTPException(422, {"error": "no_such_compartment"})
        rec = {"locker": body.locker, "c": body.c, "phone": body.phone, "text": body.text, "at": int(time.time())}
        await record(C.KIND_FAULT_REPORT, rec)
        gw.counters.inc("fault_reports")
        return rec

    @r.post(f"{p}/pickup")
    async def pickup(body: PickupIn) -> dict:
        """One code per recipient per station: it opens their compartments on every lock board at once. A wrong
        code counts once, against the station's first board, whose lockout holds code entry for all of them; a
        right code (some board's vault holds it) resets the count on every board, as the terminal is one keypad."""
        boards: list[BoardLocker] = list(gw.boards.values())
        if not boards:
            raise HTTPException(404, {"error": "no_board_lockers"})
        counting = boards[0]
        left = counting.lock_left_s()
        if left:
            gw.counters.inc("board_code_locked")
            raise HTTPException(429, {"error": "locked", "secs": left})
        holding = [b for b in boards if await b.holds(body.code)]
        if not holding:
            try:
                await counting.try_code(body.code)  # the wrong code counts, and may start the lockout
            except KeypadLocked as exc:
                raise HTTPException(429, {"error": "locked", "secs": exc.secs}) from None
            raise HTTPException(404, {"error": "bad_code"})
        for b in boards:
            await b.right_at_station()  # every board was asked: none keeps wrong tries a right code ended
        opened: list[dict] = []
        for b in holding:
            if not b.online:
                continue  # the code stays on an offline board: the next try opens it
            try:
                cs = await b.try_code(body.code)
            except KeypadLocked as exc:
                raise HTTPException(429, {"error": "locked", "secs": exc.secs}) from None
            if cs:
                opened.append({"locker": b.id, "cs": cs})
        if not opened:
            raise HTTPException(503, {"error": "locker_offline"})
        # the first board's fields as before, and every board's compartments in `opened`
        return {"locker": opened[0]["locker"], "cs": opened[0]["cs"], "opened": opened}

    add_routes(r, gw, p, agent=agent, courier=courier, record=record)
    return r
