"""InfluxDB adapter of the TelemetryStore port: writes through influxdb-client's batching write API,
reads history in InfluxQL over /query (served by InfluxDB 1.x, 2.x and 3.x alike)."""

from __future__ import annotations

import logging
import time

import httpx
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import WriteOptions
from sqlalchemy.orm import Session

from .counters import Counters
from .errors import CloudError
from .telemetry import FIELDS, SERIES_FIELDS, SeriesPoint, TelemetryPointSample, TelemetrySample

log = logging.getLogger("jincun.cloud.influx")

HEALTH = "locker_health"


class TelemetryUnavailable(CloudError):
    """The telemetry server did not answer a history query."""


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# line protocol: in tag values a backslash, comma, equals sign or space is escaped, line breaks are written
# as escapes; station and locker ids seldom need any of it, so the escaped form is remembered per value
_TAG_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r",
                              "\t": "\\t"})
_TAGS: dict[str, str] = {}


def _tag(value: str) -> str:
    found = _TAGS.get(value)
    if found is None:
        if len(_TAGS) > 100_000:
            _TAGS.clear()
        found = _TAGS[value] = value.translate(_TAG_ESCAPES)
    return found


class InfluxTelemetryStore:
    """Points are queued in the client's background batcher, so ingest never waits for InfluxDB.

    Points are written as line protocol text built here (the client's point objects cost over ten
    times more per point), and an ingest batch's lines go to the batcher as one record.

    A point carries its own timestamp and tags, so a replayed write overwrites the same point instead of
    adding one: the store stays exactly-once in effect even if a batch is retried.
    """

    def __init__(self, *, url: str, token: str, org: str, bucket: str, query_url: str | None,
                 batch_size: int, flush_ms: int, counters: Counters) -> None:
        self.bucket, self.org, self.counters = bucket, org, counters
        self.db, _, rp = bucket.partition("/")
        self.rp = rp or "autogen"
        self._client = InfluxDBClient(url=url, token=token or "", org=org)
        self._write = self._client.write_api(
            write_options=WriteOptions(batch_size=batch_size, flush_interval=flush_ms, retry_interval=1000,
                                       max_retries=5, max_retry_delay=30_000),
            success_callback=self._ok, error_callback=self._failed, retry_callback=self._retry)
        self._query = httpx.Client(base_url=(query_url or url).rstrip("/"), timeout=10.0,
                                   headers={"Authorization": f"Token {token}"} if token else {})

    def _ok(self, _conf, data) -> None:
        self.counters.inc("influx_points_written", data.count(b"\n") + 1 if isinstance(data, bytes) else 1)

    def _failed(self, _conf, _data, exc) -> None:
        self.counters.inc("influx_write_errors")
        log.error("InfluxDB write failed after retries: %s", exc)

    def _retry(self, _conf, _data, exc) -> None:
        self.counters.inc("influx_write_retries")
        log.warning("InfluxDB write retried: %s", exc)

    def _line(self, line: str, batch: list[str] | None) -> None:
        buf = batch
        if buf is not None:
            buf.append(line)
        else:
            self._write.write(bucket=self.bucket, org=self.org, record=line.encode("utf-8"),
                              write_precision=WritePrecision.MS)  # type: ignore[arg-type]  # its constants are str, its hint the class

    def record(self, session: Session, sample: TelemetrySample, *, batch: list[str] | None = None) -> None:
        # fields as floats, as the history and series queries read them
        fields = ",".join(f"{name}={float(value)!r}" for name in FIELDS
                          if (value := getattr(sample, name)) is not None)
        if fields:
            self._line(f"{HEALTH},locker={_tag(sample.locker_id)},station={_tag(sample.station_id)} "
                       f"{fields} {int(sample.at * 1000)}", batch)

    def record_point(self, session: Session, point: TelemetryPointSample, *,
                     batch: list[str] | None = None) -> None:
        tags = f",c={point.c}" if point.c is not None else ""
        if point.locker_id is not None:
            tags += f",locker={_tag(point.locker_id)}"
        tags += f",station={_tag(point.station_id)}"
        self._line(f"{point.measurement}{tags} value={float(point.value)!r} {int(point.at * 1000)}", batch)

    @staticmethod
    def begin_batch() -> list[str]:
        """A buffer for the batch's lines: the writer then takes them as one record instead of one per point."""
        return []

    def write_batch(self, session: Session, batch: list[str]) -> None:
        """Queue the batch's lines in the writer (it sends them in the background)."""
        lines = batch
        if lines:
            self._write.write(bucket=self.bucket, org=self.org, record="\n".join(lines).encode("utf-8"),
                              write_precision=WritePrecision.MS)  # type: ignore[arg-type]  # its constants are str, its hint the class

    def flush(self) -> None:
        """Send what the batcher holds now."""
        self._write.flush()

    def influxql(self, q: str) -> list[dict]:
        """Run one InfluxQL query; returns the series of the first statement."""
        try:
            resp = self._query.get("/query", params={"db": self.db, "rp": self.rp, "q": q, "epoch": "s"})
        except httpx.HTTPError as exc:
            self.counters.inc("influx_query_errors")
            raise TelemetryUnavailable(f"InfluxDB unreachable: {exc}") from exc
        if resp.status_code != 200:
            self.counters.inc("influx_query_errors")
            raise TelemetryUnavailable(f"InfluxDB answered {resp.status_code}: {resp.text[:200]}")
        result = resp.json().get("results", [{}])[0]
        if "error" in result:
            raise TelemetryUnavailable(f"InfluxQL error: {result['error']}")
        return result.get("series", [])

    def history(self, _session: Session, *, station_id: str, locker_id: str,
                limit: int = 500) -> list[TelemetrySample]:
        cols = ", ".join(f'"{f}"' for f in FIELDS)
        series = self.influxql(f"SELECT {cols} FROM {HEALTH} WHERE station = {_quote(station_id)} "
                               f"AND locker = {_quote(locker_id)} ORDER BY time DESC LIMIT {int(limit)}")
        out = []
        for s in series:
            names = s["columns"]
            for row in s["values"]:
                rec = dict(zip(names, row))
                out.append(TelemetrySample(
                    station_id=station_id, locker_id=locker_id, at=float(rec["time"]),
                    **{f: (int(rec[f]) if f in ("rssi", "heap", "outbox", "up") and rec.get(f) is not None
                           else rec.get(f)) for f in FIELDS}))
        return list(reversed(out))

    def series(self, _session: Session, *, station_id: str, locker_id: str, field: str, since: float,
               bucket: float) -> list[SeriesPoint]:
        if field not in SERIES_FIELDS:
            raise ValueError(f"no series for {field}")
        q = (f'SELECT mean("{field}") FROM {HEALTH} WHERE station = {_quote(station_id)} AND '
             f"locker = {_quote(locker_id)} AND time >= {int(since)}s GROUP BY time({int(bucket)}s) fill(none)")
        return [SeriesPoint(at=float(t), value=round(v, 3)) for s in self.influxql(q) for t, v in s["values"]
                if v is not None]

    def close(self) -> None:
        """Flush pending points and close both clients."""
        self._write.close()
        self._client.close()
        self._query.close()


def wait_flushed(store: InfluxTelemetryStore, timeout: float = 10.0) -> None:
    """Flush and give the batcher a moment (used by the benchmark and tests)."""
    store.flush()
    time.sleep(min(timeout, 0.2))
