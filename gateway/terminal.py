"""Station terminal: the local page couriers and the village agent use, working with the cloud unreachable.

Routes live under /api/v1/terminal; the page itself is gateway/terminal_static/index.html at /terminal.
"""


import asyncio
import functools
import hashlib
import hmac
import html
import logging
import secrets
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from jincun.phone import PHONE_BODY, PHONE_OR_EMPTY_PATTERN, PHONE_PATTERN

from . import const as C
from .boardlocker import BoardLocker, KeypadLocked
from .config import TerminalConfig, TerminalUser
from .errors import (CommandRejected, CommandTimeout, LockerError, LockerOffline, NoCompartment, OutboxError,
                     UnknownParcel)
from .stationdb import Record

if TYPE_CHECKING:
    from .services import HttpServices

log = logging.getLogger("jincun.gateway.terminal")

STATIC = Path(__file__).with_name("terminal_static")
PIN_ITERATIONS = 100_000
PIN_FAILS_BEFORE_LOCK = 5
PIN_LOCK_FIRST_S = 60
SESSIONS_MAX = 64


@functools.cache
def terminal_page() -> str:
    """The terminal page, its phone inputs carrying the one phone rule (jincun/phone.py) as their pattern."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    return page.replace("{{phone_pattern}}", html.escape(PHONE_BODY, quote=True))


def hash_pin(pin: str, *, salt: bytes | None = None, iterations: int = PIN_ITERATIONS) -> str:
    """The station.json form of a terminal PIN: pbkdf2_sha256$iterations$salt$hash."""
    salt = salt or secrets.token_bytes(16)
    dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${dk.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    _, it, salt, want = stored.split("$")
    dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(it))
    return hmac.compare_digest(dk.hex(), want)


def fee_cents(cfg: TerminalConfig, carrier: str, weight_g: int, produce: str) -> tuple[int, str]:
    """Outbound fee from the station's table: first kg, each further kg started, a produce discount."""
    rule = cfg.fees.get(carrier) or cfg.fees.get("*")
    if rule is None:
        from .config import FeeRule
        rule = FeeRule()
    kg = max(1, -(-weight_g // 1000))
    fee = rule.first_kg_cents + (kg - 1) * rule.extra_kg_cents
    reason = f"{kg} kg: {rule.first_kg_cents} + {kg - 1} x {rule.extra_kg_cents}"
    if produce and rule.produce_discount_pct:
        fee = fee * (100 - rule.produce_discount_pct) // 100
        reason += f", produce -{rule.produce_discount_pct}%"
    return fee, reason


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


class Sessions:
    """Logged-in terminal users by bearer token, bounded, with a PIN lockout against guessing."""

    def __init__(self, cfg: TerminalConfig, counters) -> None:
        self.cfg = cfg
        self.counters = counters
        self._s: dict[str, tuple[TerminalUser, float]] = {}
        self.fails = 0
        self.locks = 0
        self.locked_until = 0.0

    async def login(self, pin: str) -> tuple[str, TerminalUser]:
        now = time.monotonic()
        if now < self.locked_until:
            self.counters.inc("pin_locked")
            raise HTTPException(429, {"error": "locked", "secs": int(self.locked_until - now) + 1})
        # PBKDF2 over every user takes a while on a Pi: off the event loop
        user = await asyncio.to_thread(
            lambda: next((u for u in self.cfg.users if verify_pin(pin, u.pin_hash)), None))
        now = time.monotonic()
        if user is None:
            self.fails += 1
            self.counters.inc("pin_failures")
            log.warning("wrong terminal PIN (%d in a row)", self.fails)
            if self.fails >= PIN_FAILS_BEFORE_LOCK:
                self.locked_until = now + PIN_LOCK_FIRST_S * 2 ** min(self.locks, 4)
                self.locks += 1
                self.fails = 0
            raise HTTPException(401, {"error": "bad_pin"})
        self.fails = self.locks = 0
        if len(self._s) >= SESSIONS_MAX:
            del self._s[min(self._s, key=lambda k: self._s[k][1])]
        token = secrets.token_urlsafe(24)
        self._s[token] = (user, now + self.cfg.session_s)
        return token, user

    def user(self, token: str | None) -> TerminalUser:
        got = self._s.get(token or "")
        if got is None or got[1] < time.monotonic():
            self._s.pop(token or "", None)
            raise HTTPException(401, {"error": "login"})
        return got[0]

    def logout(self, token: str | None) -> None:
        self._s.pop(token or "", None)


class LoginIn(BaseModel):
    pin: str = Field(pattern=r"^[0-9]{4,8}$")


class TermDepositIn(BaseModel):
    waybill: str = Field(pattern=r"^[A-Za-z0-9-]{6,40}$")
    phone: str = Field(pattern=PHONE_PATTERN)
    size: Literal["S", "M", "L"]
    consent_asked: bool = False


class OutboundIn(BaseModel):
    carrier: str = Field(min_length=1, max_length=32)
    sender_phone: str = Field(pattern=PHONE_PATTERN)
    sender_name: str = Field(min_length=1, max_length=40)
    dest: str = Field(min_length=2, max_length=120)
    weight_g: int = Field(ge=1, le=50_000)
    produce: str = Field("", max_length=40)


class FaultIn(BaseModel):
    locker: str = Field(pattern=C.ID_RE)
    c: int | None = Field(None, ge=C.COMP_MIN, le=C.COMP_MAX)
    phone: str = Field("", pattern=PHONE_OR_EMPTY_PATTERN)
    text: str = Field(min_length=1, max_length=300)


class HandoverIn(BaseModel):
    ref: str = Field(pattern=C.REF_RE)


class PickupIn(BaseModel):
    code: str = Field(pattern=r"^[0-9]{6}$")


def create_router(gw: "HttpServices") -> APIRouter:
    """Terminal routes bound to one running gateway's services (`gw` holds those, not the `Gateway`)."""
    r = APIRouter()
    cfg = gw.cfg.terminal
    sessions = Sessions(cfg, gw.counters)

    def token(authorization: Annotated[str | None, Header()] = None) -> str | None:
        return authorization.removeprefix("Bearer ").strip() if authorization else None

    def courier(tok: Annotated[str | None, Depends(token)]) -> TerminalUser:
        u = sessions.user(tok)
        if u.role != "courier":
            raise HTTPException(403, {"error": "role"})
        return u

    def agent(tok: Annotated[str | None, Depends(token)]) -> TerminalUser:
        u = sessions.user(tok)
        if u.role != "agent":
            raise HTTPException(403, {"error": "role"})
        return u

    async def record(kind: str, body: dict, extra=None) -> None:
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

    @r.get("/terminal/{name}", include_in_schema=False)
    async def asset(name: Literal["app.js", "style.css"]) -> FileResponse:
        return FileResponse(STATIC / name)

    p = "/api/v1/terminal"

    @r.get(f"{p}/info")
    async def info() -> dict:
        return {"station": gw.cfg.station, "name": gw.cfg.name, "carriers": cfg.carriers,
                "uplink": "up" if gw.uplink.up else "down",
                "lockers": [{"id": ls.id, "online": ls.online, "comps": sorted(ls.comps)}
                            for ls in gw.link.lockers.values()],
                "board_pickup": bool(gw.boards)}

    @r.post(f"{p}/login")
    async def login(body: LoginIn) -> dict:
        tok, u = await sessions.login(body.pin)
        log.info("terminal login: %s (%s)", u.id, u.role)
        return {"token": tok, "user": u.id, "name": u.name, "role": u.role, "carrier": u.carrier,
                "scan_n": gw.scanner.n if gw.scanner else 0}

    @r.post(f"{p}/logout")
    async def logout(tok: Annotated[str | None, Depends(token)]) -> dict:
        sessions.logout(tok)
        return {"ok": True}

    @r.get(f"{p}/scans")
    async def scans(after: int = 0, _: TerminalUser = Depends(courier)) -> dict:
        sc = gw.scanner
        return {"scans": sc.since(after) if sc else [], "n": sc.n if sc else 0}

    @r.get(f"{p}/consent/{{phone}}")
    async def consent(phone: str, _: TerminalUser = Depends(courier)) -> dict:
        got = await gw.consent.check(phone)
        return {"consent": got.consent, "door_help": got.door_help, "source": got.source}

    @r.post(f"{p}/deposit", status_code=201)
    async def deposit(body: TermDepositIn, u: TerminalUser = Depends(courier)) -> dict:
        got = await gw.consent.check(body.phone)
        if got.consent == "refused":
            gw.counters.inc("deposits_no_consent")
            raise HTTPException(409, {"error": "consent_refused"})
        how = "recipient"
        if got.consent != "granted":
            if cfg.consent_offline == "refuse" or not body.consent_asked:
                raise HTTPException(409, {"error": "consent_unknown"})
            how = "courier_asked"
        try:
            d = await gw.deposits.request(body.waybill, body.phone, u.carrier or u.name, body.size,
                                          courier=u.id, consent=how)
        except NoCompartment:
            raise HTTPException(409, {"error": "no_compartment"}) from None
        except CommandRejected as exc:
            raise HTTPException(409, {"error": "locker_refused", "detail": exc.err}) from None
        except (LockerOffline, CommandTimeout):
            raise HTTPException(503, {"error": "locker_offline"}) from None
        except OutboxError:
            raise HTTPException(503, {"error": "storage"}) from None
        return d

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
        assist = set(cfg.assist_phones)
        items = [{"ref": w["ref"], "waybill": w["waybill"], "phone": mask_phone(w["phone"]), "carrier": w["carrier"],
                  "locker": w["locker"], "c": w["c"], "since": int(w["updated"]), "door_to_door": w["phone"] in assist}
                 for w in await gw.deposits.waiting(limit=500)]
        return {"parcels": items, "door_to_door": [i for i in items if i["door_to_door"]]}

    @r.post(f"{p}/handover")
    async def handover(body: HandoverIn, u: TerminalUser = Depends(agent)) -> dict:
        try:
            got = await gw.deposits.get(body.ref)
        except UnknownParcel:
            got = None
        if got is None or got["state"] != "deposited":
            raise HTTPException(409, {"error": "not_waiting"})
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

    @r.post(f"{p}/outbound", status_code=201)
    async def outbound(body: OutboundIn, u: TerminalUser = Depends(agent)) -> dict:
        fee, reason = fee_cents(cfg, body.carrier, body.weight_g, body.produce)
        ref = "o-" + secrets.token_hex(6)
        rec = {"ref": ref, "carrier": body.carrier, "sender_phone": body.sender_phone,
               "sender_name": body.sender_name, "dest": body.dest, "weight_g": body.weight_g,
               "fee_cents": fee, "fee_reason": reason, "produce": body.produce}
        await record(C.KIND_OUTBOUND, rec)
        gw.counters.inc("outbound_taken")
        return {**rec, "sender_phone": mask_phone(body.sender_phone), "at": int(time.time()), "by": u.id}

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
        boards: list[BoardLocker] = list(gw.boards.values())
        if not boards:
            raise HTTPException(404, {"error": "no_board_lockers"})
        for b in boards:
            try:
                if b.online and b.vault:
                    opened = await b.try_code(body.code)
                    if opened:
                        return {"locker": b.id, "cs": opened}
            except KeypadLocked as exc:
                raise HTTPException(429, {"error": "locked", "secs": exc.secs}) from None
        if not any(b.vault for b in boards):
            # a wrong code still counts against the lockout when no board holds a code
            try:
                await boards[0].try_code(body.code)
            except KeypadLocked as exc:
                raise HTTPException(429, {"error": "locked", "secs": exc.secs}) from None
        raise HTTPException(404, {"error": "bad_code"})

    return r
