"""TelemetryStore port and its bounded SQL adapter (the InfluxDB adapter is in telemetry_influx.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .counters import Counters
from .models import Telemetry, TelemetryPoint
from .storage import bulk_insert, rows_touched

FIELDS = ("rssi", "vin", "temp", "heap", "outbox", "up")
SERIES_FIELDS = ("rssi", "vin", "temp", "outbox")
POINT_MEASUREMENTS = ("door", "occupancy", "link")


@dataclass(slots=True)
class TelemetryPointSample:
    """A door (1 open), occupancy (1 occupied) or gateway-link (1 online) point."""

    measurement: str
    station_id: str
    locker_id: str | None
    c: int | None
    at: float
    value: float


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """Mean of one health field over one time bucket."""

    at: float
    value: float


def bucket_means(rows: list[tuple[float, float | None]], *, since: float, bucket: float) -> list[SeriesPoint]:
    """Average (time, value) rows into buckets of `bucket` seconds starting at `since` (empty buckets skipped)."""
    sums: dict[int, list[float]] = {}
    for at, value in rows:
        if value is None or at < since:
            continue
        slot = sums.setdefault(int((at - since) // bucket), [0.0, 0])
        slot[0] += value
        slot[1] += 1
    return [SeriesPoint(at=since + k * bucket, value=round(v[0] / v[1], 3)) for k, v in sorted(sums.items())]


@dataclass(slots=True)
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
    """Keeps telemetry history; `session` is the ingest transaction (adapters outside SQL ignore it).

    An ingest batch collects its samples in the buffer `begin_batch` gives (passed as `batch`) and hands it to
    `write_batch` at its end; a batch rolled back just drops the buffer."""

    def record(self, session: Session, sample: TelemetrySample, *, batch: Any = None) -> None: ...

    def history(self, session: Session, *, station_id: str, locker_id: str,
                limit: int = 500) -> list[TelemetrySample]: ...

    def record_point(self, session: Session, point: TelemetryPointSample, *, batch: Any = None) -> None: ...

    def series(self, session: Session, *, station_id: str, locker_id: str, field: str, since: float,
               bucket: float) -> list[SeriesPoint]: ...

    def close(self) -> None: ...

    def begin_batch(self) -> Any: ...

    def write_batch(self, session: Session, batch: Any) -> None: ...


class SqlTelemetryStore:
    """Telemetry in the `telemetry` table, bounded by age and by rows per locker."""

    def __init__(self, *, retention_days: int, max_rows_per_locker: int, counters: Counters) -> None:
        self.retention = retention_days * 86400
        self.max_rows = max_rows_per_locker
        self.counters = counters
        self._points = 0
        self._slack = max(1, max_rows_per_locker // 10)
        self._since_prune: dict[tuple[str, str], int] = {}

    def record(self, session: Session, sample: TelemetrySample, *, batch: Any = None) -> None:
        row = {"station_id": sample.station_id, "locker_id": sample.locker_id, "at": sample.at,
               **{k: getattr(sample, k) for k in FIELDS}}
        buf = batch
        if buf is not None:
            buf["health"].append(row)
        else:
            session.add(Telemetry(**row))
        # pruning costs three queries: do it every `slack` samples of a locker, so a locker holds at most
        # max_rows + slack rows; the cadence counter is only a schedule, no other worker needs it
        key = (sample.station_id, sample.locker_id)
        n = self._since_prune.get(key, 0) + 1
        if n >= self._slack:
            if buf is not None:
                buf["prune"].add(key)
            else:
                session.flush()
                self._prune(session, sample.station_id, sample.locker_id)
            n = 0
        if len(self._since_prune) > 100_000:
            self._since_prune.clear()
        self._since_prune[key] = n

    @staticmethod
    def begin_batch() -> dict[str, Any]:
        """A buffer for a batch's samples and points until write_batch (one insert per table)."""
        return {"health": [], "points": [], "prune": set()}

    def write_batch(self, session: Session, batch: Any) -> None:
        """Insert what the batch collected, then prune the lockers that are due."""
        buf = batch
        if not buf:
            return
        bulk_insert(session, Telemetry.__table__, buf["health"])
        bulk_insert(session, TelemetryPoint.__table__, buf["points"])
        for station_id, locker_id in sorted(buf["prune"]):
            self._prune(session, station_id, locker_id)
        if buf.get("prune_points"):
            self.prune_points(session)

    def _prune(self, session: Session, station_id: str, locker_id: str) -> None:
        mine = (Telemetry.station_id == station_id) & (Telemetry.locker_id == locker_id)
        dropped = rows_touched(session.execute(
            delete(Telemetry).where(mine, Telemetry.at < time.time() - self.retention)))
        count = session.scalar(select(func.count()).select_from(Telemetry).where(mine)) or 0
        if count > self.max_rows:
            cutoff = session.scalar(select(Telemetry.id).where(mine).order_by(Telemetry.id.desc())
                                    .offset(self.max_rows).limit(1))
            if cutoff is not None:
                dropped += rows_touched(session.execute(delete(Telemetry).where(mine, Telemetry.id <= cutoff)))
        if dropped:
            self.counters.inc("telemetry_pruned", dropped)

    def record_point(self, session: Session, point: TelemetryPointSample, *, batch: Any = None) -> None:
        row = {"measurement": point.measurement, "station_id": point.station_id, "locker_id": point.locker_id,
               "c": point.c, "at": point.at, "value": point.value}
        buf = batch
        if buf is not None:
            buf["points"].append(row)
        else:
            session.add(TelemetryPoint(**row))
        # prune now and then rather than on every point: door points come in bursts
        self._points += 1
        if self._points % 2000 == 0:
            if buf is not None:
                buf["prune_points"] = True
            else:
                self.prune_points(session)

    def prune_points(self, session: Session) -> int:
        """Drop points past retention, and the oldest beyond the row cap."""
        session.flush()
        dropped = rows_touched(session.execute(delete(TelemetryPoint).where(
            TelemetryPoint.at < time.time() - self.retention)))
        cap = self.max_rows * 100
        # ids only grow: while the id span is within the cap, so is the row count, and the index answers the
        # span without counting the whole table
        lo, hi = session.execute(select(func.min(TelemetryPoint.id), func.max(TelemetryPoint.id))).one()
        count = 0
        if hi is not None and hi - lo + 1 > cap:
            count = session.scalar(select(func.count()).select_from(TelemetryPoint)) or 0
        if count > cap:
            cutoff = session.scalar(select(TelemetryPoint.id).order_by(TelemetryPoint.id.desc()).offset(cap).limit(1))
            if cutoff is not None:
                dropped += rows_touched(session.execute(delete(TelemetryPoint).where(TelemetryPoint.id <= cutoff)))
        if dropped:
            self.counters.inc("telemetry_points_pruned", dropped)
        return dropped

    def series(self, session: Session, *, station_id: str, locker_id: str, field: str, since: float,
               bucket: float) -> list[SeriesPoint]:
        if field not in SERIES_FIELDS:
            raise ValueError(f"no series for {field}")
        column = getattr(Telemetry, field)
        rows = session.execute(select(Telemetry.at, column).where(
            Telemetry.station_id == station_id, Telemetry.locker_id == locker_id, Telemetry.at >= since)
            .order_by(Telemetry.at).limit(self.max_rows)).all()
        return bucket_means([(r[0], r[1]) for r in rows], since=since, bucket=bucket)

    def close(self) -> None:
        """Nothing to flush: rows are part of the ingest transaction."""

    def history(self, session: Session, *, station_id: str, locker_id: str,
                limit: int = 500) -> list[TelemetrySample]:
        rows = session.scalars(select(Telemetry).where(Telemetry.station_id == station_id,
                                                       Telemetry.locker_id == locker_id)
                               .order_by(Telemetry.id.desc()).limit(limit)).all()
        return [TelemetrySample(station_id=r.station_id, locker_id=r.locker_id, at=r.at,
                                **{k: getattr(r, k) for k in FIELDS}) for r in reversed(rows)]
