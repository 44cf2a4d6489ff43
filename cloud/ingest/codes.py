"""Pickup codes in the ingest: code records, one live code per recipient per station, and
codes used up once every parcel they open is done."""

from __future__ import annotations

import time

from ..models import Notification, PickupCode
from ..parcels import DONE, WAITING
from ..protocol import Item
from ..rows import CodeRow
from ..sms import queued
from .context import BatchContext
from .find import live_codes, locker, own_parcel, statuses


def use_codes(b: BatchContext, ref: str, phone: str | None = None) -> None:
    """Parcel `ref` is done: a code that opens it is used up once every parcel it opens is done."""
    if phone:
        found = [c for c in live_codes(b, phone) if not c.used]
    else:
        found = [c for c in (b.adopt(CodeRow, row) for row in b.session.execute(CodeRow.select().where(
            PickupCode.station_id == b.station.id, PickupCode.used.is_(False)))) if not c.used]
    for code in found:
        if ref not in code.refs:
            continue
        if all(s in DONE for s in statuses(b, list(code.refs)).values()):
            code.used = True


def _keep_code(b: BatchContext, body: dict, ref: str, locker_id: str | None) -> None:
    """One live code per recipient per station (docs/architecture.md, "Rules written once"): the same code gains
    the parcel, whichever locker of the station it is in (the gateway gives a recipient one code at all of
    them); a new one supersedes."""
    live = [c for c in live_codes(b, body["phone"]) if not c.used]
    for code in live:
        if code.code == body["code"]:
            if ref not in code.refs:
                code.refs = [*code.refs, ref]
            code.exp = max(code.exp or 0, body.get("exp_ts") or 0) or None
            return
    carried: list[str] = []
    for code in live:
        code.used = True
        carried += [r for r in code.refs if r not in carried]
        b.counters.inc("codes_superseded")
    held = statuses(b, carried) if carried else {}
    refs = [r for r in carried if held.get(r) in WAITING and r != ref] + [ref]
    code = CodeRow.fresh(station_id=b.station.id, phone=body["phone"], code=body["code"], refs=refs,
                         exp=body.get("exp_ts"), used=False, created_at=time.time(), locker_id=locker_id,
                         origin="gateway")
    b.fresh.append(code)
    live_codes(b, body["phone"]).append(code)


def code_record(b: BatchContext, item: Item) -> None:
    """The gateway gave a recipient a pickup code: keep it, mark the parcel notified, queue the SMS."""
    body = item.body
    locker_id = body.get("locker")
    if locker_id is not None:
        locker(b, locker_id)
    parcel, _ = own_parcel(b, body["ref"], locker_id, None)
    if parcel.phone is None:
        parcel.phone = body["phone"]
    locker_id = locker_id or parcel.locker_id or "?"
    _keep_code(b, body, parcel.ref, locker_id)
    b.advance(parcel, "notified", item.rx, f"gw/{item.boot}/{item.seq}")
    carrier = b.carriers.get(parcel.carrier) if parcel.carrier else None
    message = b.sms.pickup(carrier=carrier.name_zh if carrier else parcel.carrier, station=b.station.name,
                           locker=locker_id, c=parcel.compartment, code=body["code"])
    b.add("notifications", queued(body["phone"], message, ref=parcel.ref), Notification)
