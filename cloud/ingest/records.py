"""Station records (§5.1): gateway health (gw_tele), parcels sent from the village (outbound), door-to-door
delivery (handover) and villagers' fault reports."""

from __future__ import annotations

import logging
import time

from .. import constants as K
from ..errors import ItemRejected
from ..models import Alarm, Charge, GatewayHealth
from ..parcels import RETURNABLE
from ..protocol import Item
from ..rows import ParcelRow, write_rows
from ..telemetry import TelemetryPointSample
from . import codes
from .context import BatchContext
from .find import carrier as carrier_code
from .find import compartment, exists, locker, own_parcel

log = logging.getLogger("jincun.cloud.ingest")


def gw_tele(b: BatchContext, item: Item) -> None:
    """Latest gateway health on the station (newest rx wins) plus a point series in the telemetry store."""
    body = item.body
    session, station_id = b.session, b.station.id
    values = {"at": item.rx, "outbox_depth": body["outbox_depth"], "oldest_unsent_s": body.get("oldest_unsent_s"),
              "uplink": body["uplink"], "lockers_online": body["lockers_online"],
              "lockers_total": body["lockers_total"], "cpu_temp": body.get("cpu_temp"), "up_s": body["up_s"],
              "counters": dict(body.get("counters") or {})}
    held = session.get(GatewayHealth, station_id)
    if held is None:
        session.add(GatewayHealth(station_id=station_id, **values))
        session.flush()
    elif item.rx >= held.at:
        for k, v in values.items():
            setattr(held, k, v)
    else:
        # an older report replayed late still goes into the history, not over the latest values
        b.counters.inc("stale_gw_tele")
    lag = body.get("oldest_unsent_s")
    for measurement, value in (("gw_outbox", body["outbox_depth"]), ("gw_lag", lag),
                               ("gw_uplink", 1.0 if body["uplink"] == "up" else 0.0)):
        if value is not None:
            b.record_point(TelemetryPointSample(
                measurement=measurement, station_id=station_id, locker_id=None, c=None, at=item.rx,
                value=float(value)))


def outbound(b: BatchContext, item: Item) -> None:
    """A parcel sent from the village (寄件): direction outbound, fee with its reason, produce for statistics."""
    body = item.body
    ref = body["ref"]
    if exists(b, ref):
        raise ItemRejected(K.E_BAD_FIELD, f"ref {ref} is already used by another parcel")
    carrier = carrier_code(b, body["carrier"])
    produce = (body.get("produce") or "").strip()
    parcel = ParcelRow.fresh(
        ref=ref, station_id=b.station.id, direction="outbound", carrier=carrier, phone=body["sender_phone"],
        sender_name=body["sender_name"].strip(), dest=body["dest"].strip(), weight_g=body["weight_g"],
        fee_cents=body["fee_cents"], fee_reason=(body.get("fee_reason") or "").strip() or None,
        fee_kind="postage" if body["fee_cents"] else None, sender_id_tail=body.get("sender_id_tail"),
        produce=bool(produce), produce_name=produce or None, status="taken_in", reminders=0, created_at=item.rx,
        updated_at=time.time())
    # stored at once: its timeline rows need its id
    write_rows(b.session, [parcel], keep_new=True)
    parcel = b.parcels[ref] = b.adopt(ParcelRow, parcel.values())
    b.absent.discard(ref)
    if body["fee_cents"]:
        b.counters.inc("outbound_fees_recorded")
    b.advance(parcel, "taken_in", item.rx, f"gw/{item.boot}/{item.seq} outbound")


def collected(b: BatchContext, item: Item) -> None:
    """The carrier's courier collected an outbound parcel at the station: `collected`, the carrier's webhook,
    the carrier's waybill when the courier gave one."""
    body = item.body
    carrier_code(b, body["carrier"])
    if not exists(b, body["ref"]):
        raise ItemRejected(K.E_BAD_FIELD, f"outbound parcel {body['ref']} is unknown")
    parcel, _ = own_parcel(b, body["ref"], None, None)
    if parcel.direction != "outbound":
        raise ItemRejected(K.E_BAD_FIELD, f"parcel {parcel.ref} is inbound; only outbound parcels are collected")
    if body.get("waybill") and not parcel.waybill:
        parcel.waybill = body["waybill"].strip()
    parcel.collected_at = float(body["at"])
    b.advance(parcel, "collected", float(body["at"]), f"collected by {body['by']}"[:64])


def charge(b: BatchContext, item: Item) -> None:
    """An extra charge (二次收费) the station agent recorded for a villager: a row of the fees statistics."""
    body = item.body
    b.session.add(Charge(station_id=b.station.id, carrier=carrier_code(b, body["carrier"]), kind=body["kind"],
                         cents=body["cents"], parcel_ref=body.get("ref"), waybill=body.get("waybill") or None,
                         phone=body.get("phone") or None, text=(body.get("text") or "").strip() or None,
                         source="agent", by=body["by"], at=float(body["at"])))
    b.counters.inc("charges_recorded")


def handover(b: BatchContext, item: Item) -> None:
    """A parcel that left its locker by hand: door-to-door delivery by the village agent (delivered_door), or an
    overdue parcel its carrier's courier took back (returned); the timeline keeps who and when."""
    body = item.body
    parcel, _ = own_parcel(b, body["ref"], None, None)
    if parcel.direction == "outbound":
        raise ItemRejected(K.E_BAD_FIELD, f"parcel {parcel.ref} is outbound; only inbound parcels are handed over")
    # kept on a stub either way; worth a look when neither a parcel record nor a deposit came first
    if parcel.waybill is None and parcel.phone is None and parcel.deposited_at is None:
        b.counters.inc("handover_unknown_parcel")
        log.warning("%s: handover of parcel %s the cloud had no record of", b.station.id, parcel.ref)
    if body["how"] == "return":
        # the carrier's courier took an overdue parcel back at the terminal: the return flow is closed
        if parcel.status not in RETURNABLE:
            b.counters.inc("return_not_overdue")
            log.warning("%s: parcel %s taken back while %s", b.station.id, parcel.ref, parcel.status)
        parcel.returned_at = float(body["at"])
        b.advance(parcel, "returned", float(body["at"]), f"return by {body['by']}"[:64])
    else:
        b.advance(parcel, "delivered_door", float(body["at"]), f"{body['how']} by {body['by']}"[:64])
    codes.use_codes(b, parcel.ref, parcel.phone)


def fault_report(b: BatchContext, item: Item) -> None:
    """A villager's fault report becomes an alarm the maintenance dashboard shows until acknowledged."""
    body = item.body
    lk = locker(b, body["locker"])
    c = body.get("c")
    if c is not None and compartment(b, lk, c) is None:
        raise ItemRejected(K.E_NO_SUCH_COMPARTMENT, f"locker {lk.id} has no compartment {c}")
    b.session.add(Alarm(station_id=b.station.id, locker_id=lk.id, c=c, kind=K.FAULT_REPORT_KIND,
                        at=float(body["at"]), acked=False, phone=body.get("phone") or None, text=body["text"].strip()))
    b.counters.inc("fault_reports")
