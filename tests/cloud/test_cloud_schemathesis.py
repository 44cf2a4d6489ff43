"""Property-based requests from the OpenAPI spec (schemathesis): no route answers 5xx to any input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import schemathesis
from cloudkit import ADMIN, OTHER, OTHER_KEY, STATION, STATION_KEY
from hypothesis import HealthCheck, given, settings

from simulator.net import free_port, wait_port
from simulator.procs import stop_process

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live_cloud(tmp_path_factory):
    """One uvicorn cloud on SQLite for the whole module, with two stations registered."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    env = dict(os.environ, JINCUN_ADMIN_TOKEN=ADMIN, JINCUN_DATABASE_URL=f"sqlite:///{tmp}/c.db",
               PYTHONPATH=str(REPO), JINCUN_LOG_LEVEL="ERROR")
    proc = subprocess.Popen([sys.executable, "-c", f"import cloud; cloud.serve('127.0.0.1', {port})"], cwd=tmp,
                            env=env, stdout=(tmp / "cloud.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        h = {"Authorization": f"Bearer {ADMIN}"}
        for sid, key in ((STATION, STATION_KEY), (OTHER, OTHER_KEY)):
            httpx.post(f"{base}/api/v1/admin/stations", headers=h, json={"id": sid, "name": sid, "api_key": key})
            httpx.post(f"{base}/api/v1/admin/stations/{sid}/lockers", headers=h,
                       json={"id": f"l-{sid[-2:]}", "comps": [{"n": 1, "size": "S"}]})
        yield base
    finally:
        stop_process(proc)


NO_5XX = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))


def run_all(base: str, token: str, path_prefix: str = "") -> list[str]:
    """Send generated cases to every operation (under `path_prefix`); returns the 5xx answers."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    errors: list[str] = []
    ran = calls = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if not op.path.startswith(path_prefix):
            continue
        ran += 1

        @given(case=op.as_strategy())
        @NO_5XX
        def check(case):
            nonlocal calls
            calls += 1
            # the long-poll would wait `wait` seconds; 0 keeps the run bounded and still exercises the route
            params = {"wait": 0} if case.path == "/api/v1/gateway/commands" else None
            resp = case.call(base_url=base, headers={"Authorization": f"Bearer {token}"}, params=params, timeout=30)
            if resp.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path}: {resp.status_code} {resp.text[:200]}")

        check()
    assert ran > 0 and calls >= 2 * ran, (ran, calls)
    return errors


def test_no_server_errors_as_admin(live_cloud):
    assert run_all(live_cloud, ADMIN) == []


def test_no_server_errors_as_gateway(live_cloud):
    assert run_all(live_cloud, STATION_KEY, "/api/v1/gateway/") == []
