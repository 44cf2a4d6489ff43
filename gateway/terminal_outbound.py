"""The terminal's routes for what leaves the village and what villagers were charged: outbound parcels taken in
with the sender's real name and the agent's inspection, collected by the carrier's courier, and the extra
charges (二次收费) the agent records. Each becomes a station record through the outbox, so it works offline."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, get_args

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from jincun import carriers
from jincun.phone import PHONE_OR_EMPTY_PATTERN, PHONE_PATTERN, mask_phone
from jc import records

from . import const as C
from .config import Carrier, TerminalUser
from .errors import OutboxError, ProtocolError, UnknownParcel
from .outbound import NotCollectable, OutboundBook, fee_cents, id_tail

if TYPE_CHECKING:
    from .services import HttpServices

log = logging.getLogger("jincun.gateway.terminal")

FeeKind = Literal["pickup", "delivery", "remote_surcharge", "storage", "postage", "other"]
assert get_args(FeeKind) == records.FEE_KINDS, "the wire core's list, spelt out for pydantic"


class OutboundIn(BaseModel):
    carrier: Carrier
    sender_phone: str = Field(pattern=PHONE_PATTERN)
    sender_name: str = Field(min_length=1, max_length=records.SENDER_NAME_MAX)
    # the sender's ID number (实名): checked, cut to its last 4 characters, and dropped (no pattern, so a
    # refusal never echoes it)
    sender_id: str = Field("", repr=False)
    inspected: bool = False  # the agent looked inside (验视)
    dest: str = Field(min_length=2, max_length=records.DEST_MAX)
    weight_g: int = Field(ge=1, le=records.WEIGHT_G_MAX)
    produce: str = Field("", max_length=records.PRODUCE_MAX)


class CollectIn(BaseModel):
    waybill: str = Field("", pattern=r"^([A-Za-z0-9-]{6,40})?$")  # the carrier's own waybill, when it has one


class ChargeIn(BaseModel):
    carrier: Carrier
    kind: FeeKind = "other"
    cents: int = Field(ge=1, le=records.FEE_CENTS_MAX)
    waybill: str = Field("", pattern=r"^([A-Za-z0-9-]{6,40})?$")
    phone: str = Field("", pattern=PHONE_OR_EMPTY_PATTERN)
    text: str = Field("", max_length=records.CHARGE_TEXT_MAX)


def add_routes(r: APIRouter, gw: HttpServices, p: str, *, agent: Callable[..., TerminalUser],
               courier: Callable[..., TerminalUser],
               record: Callable[[str, dict], Awaitable[None]]) -> None:
    """Add the outbound and charge routes to the terminal's router (`p` its prefix)."""
    cfg = gw.cfg.terminal
    book = OutboundBook(gw.outbox)

    async def stored(fn: Awaitable) -> object:
        try:
            return await fn
        except ProtocolError as exc:
            raise HTTPException(422, {"error": exc.code, "detail": exc.detail}) from None
        except OutboxError as exc:
            raise HTTPException(503, {"error": "storage", "detail": str(exc)}) from None

    @r.post(f"{p}/outbound", status_code=201)
    async def outbound(body: OutboundIn, u: TerminalUser = Depends(agent)) -> dict:
        """An outbound parcel taken in: the sender's real name and ID (kept as its last 4 characters), the
        agent's inspection, the postage from the station's table."""
        if not body.inspected:
            raise HTTPException(422, {"error": "inspection_required"})
        tail = id_tail(body.sender_id)
        if tail is None:
            gw.counters.inc("outbound_bad_id")
            raise HTTPException(422, {"error": "bad_id"})
        fee, reason = fee_cents(cfg, body.carrier, body.weight_g, body.produce)
        ref = "o-" + secrets.token_hex(6)
        rec = {"ref": ref, "carrier": body.carrier, "sender_phone": body.sender_phone,
               "sender_name": body.sender_name.strip(), "sender_id_tail": tail, "inspected": True, "by": u.id,
               "dest": body.dest, "weight_g": body.weight_g, "fee_cents": fee, "fee_reason": reason,
               "produce": body.produce}
        await stored(book.take_in(rec))
        gw.counters.inc("outbound_taken")
        return {**rec, "sender_phone": mask_phone(body.sender_phone), "carrier_name": carriers.display(body.carrier),
                "at": int(time.time())}

    @r.get(f"{p}/outbound")
    async def outbound_waiting(u: TerminalUser = Depends(courier)) -> dict:
        """What a courier may collect: their carrier's outbound parcels (every one for the station's desk)."""
        items = await book.waiting(u.carrier or None)
        return {"outbound": [{k: it[k] for k in ("ref", "carrier", "dest", "weight_g", "taken")} for it in items]}

    @r.post(f"{p}/outbound/{{ref}}/collect")
    async def collect(ref: str, body: CollectIn, u: TerminalUser = Depends(courier)) -> dict:
        """The carrier's courier takes the parcel away: `collected` (the carrier's webhook fires in the cloud)."""
        if not u.carrier:
            raise HTTPException(403, {"error": "carrier"})
        try:
            got = await stored(book.collect(ref, carrier=u.carrier, by=u.id, waybill=body.waybill or None))
        except UnknownParcel:
            raise HTTPException(404, {"error": "unknown_parcel"}) from None
        except NotCollectable:
            raise HTTPException(409, {"error": "not_collectable"}) from None
        gw.counters.inc("outbound_collected")
        return got  # type: ignore[return-value]

    @r.post(f"{p}/charge", status_code=201)
    async def charge(body: ChargeIn, u: TerminalUser = Depends(agent)) -> dict:
        """An extra charge a villager reports to the agent (二次收费): a `charge` record for the county."""
        rec: dict = {"carrier": body.carrier, "kind": body.kind, "cents": body.cents, "by": u.id,
                     "at": int(time.time())}
        for k in ("waybill", "phone", "text"):
            if getattr(body, k).strip():
                rec[k] = getattr(body, k).strip()
        await record(C.KIND_CHARGE, rec)
        gw.counters.inc("charges_recorded")
        log.info("agent %s recorded a %s charge of %d cents by %s", u.id, body.kind, body.cents, body.carrier)
        return {**rec, "phone": mask_phone(rec["phone"]) if "phone" in rec else ""}
