"""Finding the batch's rows: lockers, compartments, parcels, codes and recipients, from the batch's cache
first, then from the database (what is read is kept in the cache). The effects in lockers.py, parcels.py,
codes.py and records.py find their rows here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .. import constants as K
from ..errors import ItemRejected
from jincun.carriers import code_of

from ..models import Carrier, Compartment, Locker, Parcel, PickupCode, Recipient
from ..rows import CodeRow, CompartmentRow, LockerRow, ParcelRow
from ..storage import one_of
from .context import BatchContext
from .context import Carrier as CarrierRow
from .store import insert_stub


def locker(b: BatchContext, locker_id: str) -> Any:
    """The station's locker `locker_id` (a plain row); rejects the item for a locker not registered here."""
    station_id = b.station.id
    cached = b.lockers.get(locker_id)
    if cached is not None and cached.station_id == station_id:
        return cached
    session = b.session
    row = session.execute(LockerRow.select().where(Locker.station_id == station_id, Locker.id == locker_id)).first()
    if row is not None:
        found = b.adopt(LockerRow, row)
        b.lockers[found.id] = found
        return found
    elsewhere = session.scalar(select(Locker.station_id).where(Locker.id == locker_id,
                                                               Locker.station_id != station_id).limit(1))
    if elsewhere is not None:
        raise ItemRejected(K.E_LOCKER_OF_OTHER_STATION,
                           f"locker {locker_id} is registered for another station, not {station_id}")
    raise ItemRejected(K.E_UNKNOWN_LOCKER, f"locker {locker_id} is not registered for station {station_id}")


def compartment(b: BatchContext, lk: Any, n: int) -> Any | None:
    """Compartment `n` of a locker (a plain row), or None when the locker has none such."""
    if lk.id in b.loaded:
        return b.comps.get((lk.id, n))
    row = b.session.execute(CompartmentRow.select().where(Compartment.station_id == lk.station_id,
                                                          Compartment.locker_id == lk.id,
                                                          Compartment.n == n)).first()
    if row is None:
        return None
    comp = b.comps[(lk.id, n)] = b.adopt(CompartmentRow, row)
    return comp


def get_or_stub(b: BatchContext, ref: str, locker_id: str | None, c: int | None) -> Any:
    """The parcel `ref`, created as a stub if an event got here before the parcel record."""
    found = b.parcels.get(ref)
    if found is None and ref not in b.absent:
        row = b.session.execute(ParcelRow.select().where(Parcel.ref == ref)).first()
        found = b.adopt(ParcelRow, row) if row is not None else None
    if found is not None:
        b.parcels[ref] = found
        return found
    parcel = b.parcels[ref] = insert_stub(b, ref, locker_id, c)
    b.absent.discard(ref)
    return parcel


def exists(b: BatchContext, ref: str) -> bool:
    """Whether a parcel holds `ref` (one this batch made as a stub counts)."""
    return ref in b.parcels or (ref not in b.absent and
                                b.session.scalar(select(Parcel.id).where(Parcel.ref == ref)) is not None)


def own_parcel(b: BatchContext, ref: str, locker_id: str | None, c: int | None) -> tuple[Any, bool]:
    """The station's parcel `ref` (made if new) and whether it was made now; rejects another station's."""
    existed = exists(b, ref) and ref not in b.stubbed
    parcel = get_or_stub(b, ref, locker_id, c)
    if parcel.station_id != b.station.id:
        raise ItemRejected(K.E_BAD_FIELD, f"parcel {ref} belongs to another station")
    return parcel, not existed


def carrier(b: BatchContext, name: str) -> str:
    """The code of a carrier the cloud has (`中通` from an older gateway is ZTO); rejects the item for any
    other name, so a parcel never gets a carrier that is not one (a desk user's name, a typo)."""
    code = code_of(name)
    if code is not None and code not in b.carriers:
        row = b.session.execute(select(Carrier.code, Carrier.name_zh).where(Carrier.code == code)).first()
        if row is not None:
            b.carriers[code] = CarrierRow(*row)
    if code is None or code not in b.carriers:
        raise ItemRejected(K.E_UNKNOWN_CARRIER, f"carrier {name!r} is not a carrier of the cloud")
    return code


def recipient(b: BatchContext, phone: str) -> Any | None:
    """The recipient of `phone` (phone, consent, door_help), or None when the cloud has none."""
    if phone not in b.recipients:
        b.recipients[phone] = b.session.execute(select(Recipient.phone, Recipient.consent, Recipient.door_help)
                                                .where(Recipient.phone == phone)).first()
    return b.recipients.get(phone)


def live_codes(b: BatchContext, phone: str) -> list[Any]:
    """The station's codes of `phone` not used when the batch read them (check `used` again)."""
    key = (b.station.id, phone)
    if key not in b.codes:
        b.codes[key] = [b.adopt(CodeRow, row) for row in b.session.execute(CodeRow.select().where(
            PickupCode.station_id == b.station.id, PickupCode.phone == phone, PickupCode.used.is_(False)))]
    return b.codes[key]


def statuses(b: BatchContext, refs: list[str]) -> dict[str, str]:
    out = {r: b.parcels[r].status for r in refs if r in b.parcels}
    rest = [r for r in refs if r not in out]
    if rest:
        out.update(b.session.execute(
            select(Parcel.ref, Parcel.status).where(one_of(b.session, Parcel.ref, rest))).all())
    return out
