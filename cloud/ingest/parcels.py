"""Parcels in the ingest: parcel records, the parcel side of locker events, and stubs for parcels an event
names before its record arrives. Status changes go through the state machine in cloud/parcels.py."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select

from jincun.carriers import code_of
from jincun.phone import mask_phone

from .. import constants as K
from .. import recipients
from ..errors import ItemRejected
from ..models import Parcel, ParcelEvent
from ..protocol import Item
from ..rows import ParcelRow
from . import codes
from .context import BatchContext
from .find import carrier, compartment, exists, get_or_stub, locker, own_parcel, recipient
from .store import insert_stubs, stub_values

log = logging.getLogger("jincun.cloud.ingest")

# kinds whose body names an inbound parcel that may arrive before its parcel record
STUB_KINDS = ("evt", "parcel", "code", "handover")


def stub_parcels(b: BatchContext, items: list[Item]) -> None:
    """Make, in one statement, the parcels a one-pass batch names that do not exist yet (as stubs)."""
    stubs: dict[str, dict[str, Any]] = {}
    now = time.time()
    # a parcel record with a waybill may take over a pre-advised parcel: its ref is left to that record
    candidates = b.preadvised or {}
    adopting = {it.body["ref"] for it in items if it.kind == "parcel" and isinstance(it.body.get("waybill"), str)
                and (it.body["waybill"].strip(), code_of(it.body.get("carrier"))) in candidates}
    for it in items:
        ref = it.body.get("ref")
        # an outbound record creates its own parcel (direction outbound), not an inbound stub
        if it.kind not in STUB_KINDS:
            continue
        if not isinstance(ref, str) or ref not in b.absent or ref in stubs or ref in adopting:
            continue
        locker_id = it.src if it.kind == "evt" else it.body.get("locker")
        c = it.body.get("c") if it.kind in ("evt", "parcel") else None
        stubs[ref] = stub_values(b.station.id, ref, locker_id, c, now)
    if not stubs:
        return
    for parcel in insert_stubs(b, stubs):
        b.parcels[parcel.ref] = parcel
        b.absent.discard(parcel.ref)
        b.stubbed.add(parcel.ref)


def on_event(b: BatchContext, lk: Any, comp: Any | None, body: dict, at: float, source: str) -> None:
    """The parcel side of a deposit, pickup or deposit_void event."""
    parcel = get_or_stub(b, body["ref"], lk.id, body["c"])
    if parcel.station_id != b.station.id:
        # the event itself is kept; only another station's parcel is left alone
        b.counters.inc("parcel_ref_conflicts")
        log.error("%s: event names parcel %s of station %s", b.station.id, parcel.ref, parcel.station_id)
        return
    kind = body["type"]
    if kind == "deposit":
        parcel.locker_id, parcel.compartment = lk.id, body["c"]
        if comp is not None and parcel.size is None:
            parcel.size = comp.size
        parcel.deposited_at = at
        b.advance(parcel, "deposited", at, source)
    elif kind == "pickup":
        parcel.picked_up_at = at
        b.advance(parcel, "picked_up", at, source)
        codes.use_codes(b, parcel.ref, parcel.phone)
    else:
        b.void_deposit(parcel, at, source)


def _adopt_preadvice(b: BatchContext, body: dict, code: str | None) -> None:
    """A carrier's pre-advised parcel takes the gateway's ref when the courier brings it to the locker."""
    if not body.get("waybill") or exists(b, body["ref"]):
        return
    key = (body["waybill"].strip(), code or "")
    if b.preadvised is not None:
        pre = b.preadvised.pop(key, None)
    else:
        row = b.session.execute(ParcelRow.select().where(
            Parcel.station_id == b.station.id, Parcel.waybill == key[0], Parcel.carrier == key[1],
            Parcel.status == "preadvised", Parcel.locker_id.is_(None)).limit(1)).first()
        pre = b.adopt(ParcelRow, row) if row is not None else None
    if pre is not None:
        b.parcels.pop(pre.ref, None)
        b.absent.discard(body["ref"])
        pre.ref = body["ref"]
        # written now: a later look-up of the old ref in this batch must not find this parcel
        b.write(keep_new=True)
        b.parcels[pre.ref] = pre


def parcel_record(b: BatchContext, item: Item) -> None:
    """The gateway's record of a parcel given a compartment: waybill, carrier, recipient, size.

    A record with `void` ends a parcel the gateway gave a compartment that no door ever took (a keypad booking
    nobody used in time): it is cancelled as a deposit the locker voided is (`void_deposit`)."""
    body = item.body
    session = b.session
    lk = locker(b, body["locker"])
    if compartment(b, lk, body["c"]) is None:
        raise ItemRejected(K.E_NO_SUCH_COMPARTMENT, f"locker {lk.id} has no compartment {body['c']}")
    if body.get("void"):
        voided, _ = own_parcel(b, body["ref"], lk.id, body["c"])
        b.void_deposit(voided, item.rx, f"gw/{item.boot}/{item.seq} {body['void']}"[:48])
        return
    code = carrier(b, body["carrier"]) if body.get("carrier") is not None else None
    _adopt_preadvice(b, body, code)
    parcel, created = own_parcel(b, body["ref"], lk.id, body["c"])
    parcel.locker_id, parcel.compartment = lk.id, body["c"]
    for name in ("waybill", "phone", "size"):
        if body.get(name) is not None:
            setattr(parcel, name, body[name].strip())
    if code is not None:
        parcel.carrier = code
    who = recipient(b, parcel.phone) if parcel.phone else None
    if who is not None and who.consent == "refused":
        # the gateway checks consent before it opens a door; this catches a gateway that did not
        b.counters.inc("deposits_without_consent")
        log.warning("%s: parcel %s asked a compartment for %s, who refused locker delivery", b.station.id,
                    parcel.ref, mask_phone(parcel.phone))
    if who is not None and who.door_help and parcel.direction == "inbound":
        recipients.parcel_arrived(session, b.settings, phone=parcel.phone, station_id=b.station.id, door_help=True)
    parcel.updated_at = time.time()
    if created or not session.scalar(select(ParcelEvent.id).where(ParcelEvent.parcel_id == parcel.id,
                                                                  ParcelEvent.status == "preadvised")):
        b.add("parcel_events", {"parcel_id": parcel.id, "status": "preadvised", "at": item.rx,
                                "source": "gw/parcel"}, ParcelEvent)
