"""Fixtures for cloud tests: a running app (lifespan, migrations) on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import time

import pytest
from cloudkit import OTHER, OTHER_KEY, STATION, STATION_KEY, Cloud, TestClient, make_settings, register
from influxkit import start_influx

from cloud.app import create_app


@pytest.fixture
def cloud(db_url):
    """A cloud app on a fresh database with two stations: fengjia (l1, l2) and dongcun (l9)."""
    settings = make_settings(db_url)
    with TestClient(create_app(settings)) as client:
        register(client, STATION, STATION_KEY, "冯家村便民店", {"l1": 6, "l2": 4})
        register(client, OTHER, OTHER_KEY, "东村党群服务中心", {"l9": 4})
        cloud = Cloud(client=client, settings=settings)
        # the sweep runs once at start-up (then every sweep_seconds): let it finish, so that it cannot
        # change parcels in the middle of a test that compares two snapshots
        deadline = time.monotonic() + 15
        while not cloud.counters().get("sweeps") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cloud.counters().get("sweeps"), "the start-up sweep did not run"
        yield cloud


@pytest.fixture
def influx(tmp_path):
    """A real InfluxDB 1.6 (Debian's influxd) on free ports, with the v2-write relay in front of it."""
    if not shutil.which("influxd"):
        pytest.fail("influxd is not installed (apt-get install influxdb)")
    server = start_influx(tmp_path / "influx")
    yield server
    server.stop()
