"""The batch being applied: its session, station, services, and the rows it looks up and changes.

One `BatchContext` is made per ingest batch and handed to every domain effect. It holds what had passed
through hidden `session.info` keys before: the batch's row cache, the rows it only inserts (timeline and
notifications, written together at the end of a one-pass batch) and the carriers' webhook clients.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy.orm import Session

from .. import constants as K
from ..counters import Counters
from ..parcels import advance, void_deposit
from ..protocol import Item
from ..rows import CodeRow, CompartmentRow, LockerRow, ParcelRow, PlainRow, write_rows
from ..settings import Settings
from ..sms_text import Style
from ..telemetry import TelemetryPointSample, TelemetrySample, TelemetryStore

Recipient = namedtuple("Recipient", "phone consent door_help")
Carrier = namedtuple("Carrier", "code name_zh")


@dataclass(slots=True)
class StationRef:
    """What the effects read of the station, read once: an ORM attribute read costs on every item."""

    id: str
    name: str


@dataclass(frozen=True)
class BatchKeys:
    """What a batch's look-ups are keyed by."""

    refs: set[str]
    waybills: set[str]
    phones: set[str]
    # the refs pickups and handovers name: their recipients' codes are used up
    pickup_refs: list[str]

    @classmethod
    def of(cls, items: list[Item]) -> BatchKeys:
        records = [it.body for it in items if it.kind in K.GATEWAY_KINDS]
        return cls(refs={it.body["ref"] for it in items if isinstance(it.body.get("ref"), str)},
                   waybills={b["waybill"].strip() for b in records if isinstance(b.get("waybill"), str)},
                   phones={b["phone"] for b in records if isinstance(b.get("phone"), str)},
                   pickup_refs=[ref for it in items if it.kind in ("evt", "handover")
                                and isinstance(ref := it.body.get("ref"), str)])


@dataclass
class BatchContext:
    """One batch: who sends it, the services its effects use, and its rows as plain rows (one object per
    table row, however often it is read)."""

    session: Session
    station: StationRef
    counters: Counters
    telemetry: TelemetryStore
    sms: Style
    settings: Settings
    # ---- the batch's cache (emptied by `clear`) ----
    lockers: dict[str, Any] = field(default_factory=dict)
    comps: dict[tuple[str, int], Any] = field(default_factory=dict)
    # lockers whose compartments are all in `comps`
    loaded: set[str] = field(default_factory=set)
    parcels: dict[str, Any] = field(default_factory=dict)
    codes: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    recipients: dict[str, Any] = field(default_factory=dict)
    carriers: dict[str, Any] = field(default_factory=dict)
    # refs the look-ups found no parcel for, and refs of parcels this batch made as stubs
    absent: set[str] = field(default_factory=set)
    stubbed: set[str] = field(default_factory=set)
    preadvised: dict[tuple[str, str], Any] | None = None
    # ids drawn for the refs the batch names that no parcel holds yet (PostgreSQL), used for its stubs
    parcel_ids: dict[str, int] = field(default_factory=dict)
    # every row read (by table and primary key) and every row made, so one write finds all changes
    held: dict[tuple, PlainRow] = field(default_factory=dict)
    fresh: list[PlainRow] = field(default_factory=list)
    # the carriers' API clients with a status webhook, by carrier (filled when first needed)
    clients: dict[Any, list] = field(default_factory=dict)
    # rows a one-pass batch only inserts, written together at its end (None: each is added as it comes)
    buffered: dict[str, list[dict[str, Any]]] | None = None
    # the telemetry store's buffer for a one-pass batch (TelemetryStore.begin_batch)
    samples: Any = None

    _CACHE = ("lockers", "comps", "loaded", "parcels", "codes", "recipients", "carriers", "absent", "stubbed",
              "preadvised", "parcel_ids", "held", "fresh", "clients")

    def clear(self) -> None:
        """Forget every row held (after a rollback they may be gone or changed)."""
        defaults = {f.name: f for f in fields(self)}
        for name in self._CACHE:
            f = defaults[name]
            setattr(self, name, f.default_factory() if callable(f.default_factory) else f.default)

    def add(self, table: str, row: dict[str, Any], model) -> None:
        """A row the batch only inserts: buffered in a one-pass batch, else added to the session."""
        if self.buffered is not None:
            self.buffered[table].append(row)
        else:
            self.session.add(model(**row))

    def advance(self, parcel: Any, status: str, at: float, source: str) -> None:
        """Move a parcel by the state machine (cloud/parcels.py) within this batch."""
        advance(self.session, parcel, status, at, source, clients=self.clients,
                rows=self.buffered["parcel_events"] if self.buffered is not None else None)

    def void_deposit(self, parcel: Any, at: float, source: str) -> None:
        void_deposit(self.session, parcel, at, source,
                     rows=self.buffered["parcel_events"] if self.buffered is not None else None)

    def record(self, sample: TelemetrySample) -> None:
        self.telemetry.record(self.session, sample, batch=self.samples)

    def record_point(self, point: TelemetryPointSample) -> None:
        self.telemetry.record_point(self.session, point, batch=self.samples)

    def adopt(self, cls: type[PlainRow], values) -> Any:
        """The batch's object for a row read from the database (the one already held, if any)."""
        row = cls.loaded(values)
        key = (cls, *(getattr(row, k) for k in cls.keys))
        held = self.held.get(key)
        if held is not None:
            return held
        self.held[key] = row
        return row

    def fill(self, keys: BatchKeys, *, lockers, comps, parcels, preadvised, recipients, codes, carriers) -> None:
        """Take the rows the batch's look-ups found (each as values in its plain row's `cols` order)."""
        station_id = self.station.id
        for values in lockers:
            lk = self.adopt(LockerRow, values)
            self.lockers[lk.id] = lk
        for values in comps:
            comp = self.adopt(CompartmentRow, values)
            self.comps[(comp.locker_id, comp.n)] = comp
        self.loaded = set(self.lockers)
        for values in parcels:
            parcel = self.adopt(ParcelRow, values)
            self.parcels[parcel.ref] = parcel
        self.absent = keys.refs - set(self.parcels)
        if keys.waybills:
            self.preadvised = {(p.waybill, p.carrier): p for p in (self.adopt(ParcelRow, v) for v in preadvised)}
        if keys.phones:
            found = {phone: Recipient(phone, consent, bool(door)) for phone, consent, door in recipients}
            self.recipients = {ph: found.get(ph) for ph in keys.phones}
        # the look-ups read the codes of these phones whole: none found means none live
        picked = {p.phone for ref in keys.pickup_refs if (p := self.parcels.get(ref)) is not None and p.phone}
        for ph in keys.phones | picked:
            self.codes[(station_id, ph)] = []
        for values in codes:
            code = self.adopt(CodeRow, values)
            self.codes.setdefault((station_id, code.phone), []).append(code)
        self.carriers = {code: Carrier(code, name) for code, name in carriers}

    def forget(self, row: PlainRow) -> None:
        """Drop a written row whose table row SQL changed since: the next read loads it afresh."""
        self.held.pop((type(row), *(getattr(row, k) for k in row.keys)), None)

    def write(self, *, keep_new: bool) -> None:
        """Write the changes of every row held or made; with `keep_new` new rows stay usable afterwards."""
        write_rows(self.session, [*self.held.values(), *self.fresh], keep_new=keep_new)
        if keep_new:
            for row in self.fresh:
                self.held[(type(row), *(getattr(row, k) for k in row.keys))] = row
        self.fresh = []
