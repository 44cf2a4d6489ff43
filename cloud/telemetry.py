"""TelemetryStore port and its bounded SQL adapter (an InfluxDB adapter can sit beside it)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .counters import Counters
from .models import Telemetry

FIELDS = ("rssi", "vin", "temp", "heap", "outbox", "up")


@dataclass(frozen=True, slots=True)
class TelemetrySample:
    """Health values of one locker at one time."""

    station_id: str
    locker_id: str
    at: float
    rssi: int | None = None
    vin: float | None = None
    temp: float | None = None
    heap: int | None = None
    outbox: int | None = None
    up: int | None = None


class TelemetryStore(Protocol):
    """Keeps telemetry history; `session` is the ingest transaction (adapters outside SQL ignore it)."""

    def record(self, session: Session, sample: TelemetrySample) -> None: ...

    def history(self, session: Session, *, station_id: str, locker_id: str,
                limit: int = 500) -> list[TelemetrySample]: ...


class SqlTelemetryStore:
    """Telemetry in the `telemetry` table, bounded by age and by rows per locker."""

    def __init__(self, *, retention_days: int, max_rows_per_locker: int, counters: Counters) -> None:
        self.retention = retention_days * 86400
        self.max_rows = max_rows_per_locker
        self.counters = counters

    def record(self, session: Session, sample: TelemetrySample) -> None:
        session.add(Telemetry(station_id=sample.station_id, locker_id=sample.locker_id, at=sample.at,
                              **{k: getattr(sample, k) for k in FIELDS}))
        session.flush()
        self._prune(session, sample.station_id, sample.locker_id)

    def _prune(self, session: Session, station_id: str, locker_id: str) -> None:
        mine = (Telemetry.station_id == station_id) & (Telemetry.locker_id == locker_id)
        dropped = session.execute(delete(Telemetry).where(mine, Telemetry.at < time.time() - self.retention)).rowcount
        count = session.scalar(select(func.count()).select_from(Telemetry).where(mine)) or 0
        if count > self.max_rows:
            cutoff = session.scalar(select(Telemetry.id).where(mine).order_by(Telemetry.id.desc())
                                    .offset(self.max_rows).limit(1))
            if cutoff is not None:
                dropped += session.execute(delete(Telemetry).where(mine, Telemetry.id <= cutoff)).rowcount
        if dropped:
            self.counters.inc("telemetry_pruned", dropped)

    def history(self, session: Session, *, station_id: str, locker_id: str,
                limit: int = 500) -> list[TelemetrySample]:
        rows = session.scalars(select(Telemetry).where(Telemetry.station_id == station_id,
                                                       Telemetry.locker_id == locker_id)
                               .order_by(Telemetry.id.desc()).limit(limit)).all()
        return [TelemetrySample(station_id=r.station_id, locker_id=r.locker_id, at=r.at,
                                **{k: getattr(r, k) for k in FIELDS}) for r in reversed(rows)]
