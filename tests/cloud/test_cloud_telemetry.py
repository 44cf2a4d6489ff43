"""Telemetry history is bounded by rows per locker and by age."""

from __future__ import annotations

import time

from cloud import migrate
from cloud.counters import Counters
from cloud.telemetry import SqlTelemetryStore, TelemetrySample
from cloud.storage import make_engine, make_sessionmaker


def test_sql_telemetry_store_is_bounded(db_url):
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        counters = Counters()
        store = SqlTelemetryStore(retention_days=1, max_rows_per_locker=10, counters=counters)
        now = time.time()
        with make_sessionmaker(engine)() as session:
            store.record(session, TelemetrySample("s1", "l1", now - 3 * 86400, rssi=-90))   # past retention
            for i in range(25):
                store.record(session, TelemetrySample("s1", "l1", now - 25 + i, rssi=-i, vin=12.0))
            store.record(session, TelemetrySample("s1", "l2", now, rssi=-50))
            session.commit()
            l1 = store.history(session, station_id="s1", locker_id="l1")
            assert [s.rssi for s in l1] == [-i for i in range(15, 25)]
            assert [s.rssi for s in store.history(session, station_id="s1", locker_id="l2")] == [-50]
        assert counters.get("telemetry_pruned") == 16
    finally:
        engine.dispose()
