"""The ledger: every event every simulated controller produced, against what reached the cloud.

Produced events come from each controller's ledger file (written by the simulated board at the moment
the firmware creates the event, outside the flash, so a power cut does not erase it). The cloud side is
read from the cloud's own database while the run goes on, which gives each event the time it was first
seen there. Counts: lost (produced, never in the cloud), duplicates (an event key held twice, or a parcel
status transition applied twice), late (reached the cloud more than late_s after it was produced with no
scheduled fault to explain it), delayed_by_faults, and unexpected (in the cloud, produced by nobody).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("jincun.sim.ledger")
READ_CHUNK = 50_000


class LedgerError(RuntimeError):
    """The cloud database could not be read."""


@dataclass
class Window:
    """A scheduled fault that may hold events back: which stations (None = all), real start and end."""

    kind: str
    stations: set[str] | None
    start: float
    end: float

    def covers(self, station: str, produced: float, seen: float, grace: float) -> bool:
        if self.stations is not None and station not in self.stations:
            return False
        return produced <= self.end + grace and seen >= self.start


@dataclass
class Ledger:
    db_url: str
    late_s: float = 30.0
    produced: dict[tuple, tuple[float, str, str]] = field(default_factory=dict)  # key -> (at, type, kind)
    seen: dict[tuple, float] = field(default_factory=dict)
    unexpected: set[tuple] = field(default_factory=set)
    last_id: int = 0
    bad_lines: int = 0
    offsets: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        url = self.db_url
        self.engine = create_engine(url, pool_pre_ping=True)

    def close(self) -> None:
        self.engine.dispose()

    # ---- producers -------------------------------------------------------------------------------------
    def read_producers(self, files: dict[str, tuple[str, Path]]) -> None:
        """files: locker -> (station, ledger path). Reads what each file gained since the last call."""
        for locker, (station, path) in files.items():
            try:
                with path.open("rb") as f:
                    f.seek(self.offsets.get(locker, 0))
                    data = f.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            self.offsets[locker] = self.offsets.get(locker, 0) + end
            for line in data[:end].decode("utf-8", "replace").splitlines():
                try:
                    e = json.loads(line)
                    key = (station, locker, e["boot"], int(e["seq"]))
                except (ValueError, KeyError, TypeError):
                    self.bad_lines += 1  # a torn last line of a host killed mid-write
                    continue
                if key not in self.produced:
                    self.produced[key] = (float(e.get("at", 0)), e.get("type", ""), e.get("kind", ""))

    # ---- cloud -------------------------------------------------------------------------------------------
    def poll_cloud(self, now: float | None = None) -> int:
        """Read events the cloud stored since the last poll; returns how many were new."""
        now = now or time.time()
        n = 0
        try:
            with self.engine.connect() as conn:
                while True:
                    rows = conn.execute(text(
                        "SELECT id, station_id, src, boot, seq FROM events WHERE kind='evt' AND id > :last "
                        "ORDER BY id LIMIT :lim"), {"last": self.last_id, "lim": READ_CHUNK}).all()
                    for r in rows:
                        key = (r[1], r[2], r[3], int(r[4]))
                        self.seen.setdefault(key, now)
                        self.last_id = max(self.last_id, r[0])
                    n += len(rows)
                    if len(rows) < READ_CHUNK:
                        return n
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot read the cloud database: {exc}") from exc

    def duplicates(self) -> dict[str, int]:
        """Event keys held twice, and parcel status transitions applied twice."""
        try:
            with self.engine.connect() as conn:
                keys = conn.execute(text(
                    "SELECT count(*) FROM (SELECT station_id, src, boot, seq FROM events WHERE kind='evt' "
                    "GROUP BY station_id, src, boot, seq HAVING count(*) > 1) d")).scalar_one()
                rows = conn.execute(text("SELECT parcel_id, status FROM parcel_events ORDER BY parcel_id, id")).all()
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot read the cloud database: {exc}") from exc
        again = 0
        prev: tuple | None = None
        picked: dict[int, int] = {}
        for pid, status in rows:
            if prev == (pid, status):
                again += 1
            if status == "picked_up":
                picked[pid] = picked.get(pid, 0) + 1
            prev = (pid, status)
        again += sum(n - 1 for n in picked.values() if n > 1)
        return {"event_keys": int(keys), "transitions": again}

    def parcel_statuses(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {s: int(n) for s, n in conn.execute(text("SELECT status, count(*) FROM parcels GROUP BY status"))}

    # ---- verdict -----------------------------------------------------------------------------------------
    def pending(self) -> int:
        """Produced events not seen in the cloud yet."""
        return sum(1 for k in self.produced if k not in self.seen)

    def counts(self, windows: Sequence[Window] = (), grace_s: float = 0.0) -> dict:
        lost = late = delayed = 0
        for key, (at, _, _) in self.produced.items():
            seen = self.seen.get(key)
            if seen is None:
                lost += 1
            elif seen - at > self.late_s:
                if any(w.covers(key[0], at, seen, grace_s) for w in windows):
                    delayed += 1
                else:
                    late += 1
        unexpected = sum(1 for k in self.seen if k not in self.produced)
        dup = self.duplicates()
        return {"events_sent": len(self.produced), "events_in_cloud": len(self.produced) - lost, "lost": lost,
                "duplicates": dup["event_keys"] + dup["transitions"], "late": late, "delayed_by_faults": delayed,
                "unexpected": unexpected}

    def catch_up(self, windows: list[Window]) -> list[dict]:
        """For each uplink outage: events produced meanwhile, and how long after the link came back the last
        of them reached the cloud."""
        out = []
        for w in windows:
            if w.kind != "uplink_down":
                continue
            held = [(k, at) for k, (at, _, _) in self.produced.items()
                    if (w.stations is None or k[0] in w.stations) and w.start <= at <= w.end]
            arrivals = [self.seen[k] for k, _ in held if k in self.seen]
            out.append({"stations": sorted(w.stations) if w.stations else "all", "events_held": len(held),
                        "arrived": len(arrivals), "outage_s": round(w.end - w.start, 1),
                        "catch_up_s": round(max(arrivals) - w.end, 1) if arrivals else None})
        return out

    def timeline(self, to_h: Callable[[float], float], start_h: float, windows: list[Window]) -> dict:
        """Per simulated hour (to_h: wall time -> simulated hour): events produced, events reaching the cloud,
        pickups, alarms by kind; and the fault windows."""
        hours: dict[int, dict] = {}

        def slot(at: float) -> dict:
            return hours.setdefault(int(to_h(at)), {"events": 0, "in_cloud": 0, "pickups": 0, "alarms": {}})

        for key, (at, typ, kind) in self.produced.items():
            s = slot(at)
            s["events"] += 1
            if typ == "pickup":
                s["pickups"] += 1
            elif typ == "alarm":
                s["alarms"][kind or "?"] = s["alarms"].get(kind or "?", 0) + 1
            seen = self.seen.get(key)
            if seen is not None:
                slot(seen)["in_cloud"] += 1
        return {"start_h": start_h, "hours": {str(h): hours[h] for h in sorted(hours)},
                "faults": [{"kind": w.kind, "from_h": round(to_h(w.start), 2), "to_h": round(to_h(w.end), 2)}
                           for w in windows]}
