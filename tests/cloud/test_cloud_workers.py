"""Two cloud workers (separate uvicorn processes) on one PostgreSQL: nothing they need is in process memory."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from cloudkit import ADMIN, BOOT, PASSWORD, STATION, STATION_KEY, birth, empty_comps, evt, parcel_record

from simulator.net import free_port, wait_port
from simulator.procs import stop_process

REPO = Path(__file__).resolve().parents[2]


def start_worker(pg_url: str, tmp_path: Path, name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, JINCUN_ADMIN_TOKEN=ADMIN, JINCUN_DATABASE_URL=pg_url, PYTHONPATH=str(REPO),
               JINCUN_LOG_LEVEL="WARNING")
    log = (tmp_path / f"{name}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", f"import cloud; cloud.serve('127.0.0.1', {port})"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_port("127.0.0.1", port, timeout=30)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def workers(pg_url, tmp_path):
    procs = []
    try:
        a = start_worker(pg_url, tmp_path, "a")      # migrates first
        procs.append(a[0])
        b = start_worker(pg_url, tmp_path, "b")
        procs.append(b[0])
        with httpx.Client(base_url=a[1], timeout=30) as ca, httpx.Client(base_url=b[1], timeout=30) as cb:
            yield ca, cb
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            stop_process(p)


ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
GW_H = {"Authorization": f"Bearer {STATION_KEY}"}


def register(client: httpx.Client) -> None:
    assert client.post("/api/v1/admin/stations", headers=ADMIN_H, json={
        "id": STATION, "name": "冯家村便民店", "kind": "village_shop", "api_key": STATION_KEY}).status_code == 201
    assert client.post(f"/api/v1/admin/stations/{STATION}/lockers", headers=ADMIN_H, json={
        "id": "l1", "comps": [{"n": i, "size": "M"} for i in range(1, 7)]}).status_code == 201


def test_replayed_batch_applied_once_across_workers(workers):
    a, b = workers
    register(a)
    items = [parcel_record(1, "p-two", c=2), birth(0, empty_comps(6), item_seq=0),
             evt(1, "door", c=2, open=True), evt(2, "door", c=2, open=False), evt(3, "deposit", c=2, ref="p-two")]
    batch = {"station": STATION, "batch": "b-1", "items": items}
    first = a.post("/api/v1/gateway/ingest", json=batch, headers=GW_H).json()
    assert first["applied"] == 5
    replay = b.post("/api/v1/gateway/ingest", json=batch, headers=GW_H).json()
    assert (replay["applied"], replay["duplicate"]) == (0, 5)
    ledger = b.get("/api/v1/admin/ledger", params={"station": STATION}, headers=ADMIN_H).json()
    assert ledger["events"] == [["l1", BOOT, s] for s in (1, 2, 3)]
    assert ledger["parcel_transitions"] == {"preadvised": 1, "deposited": 1}

    # the same new batch sent to both at once: each item is applied by exactly one of them
    more = {"station": STATION, "batch": "b-2", "items": [evt(s, "door", c=3, open=s % 2 == 0) for s in range(4, 40)]}
    got = []

    def send(client):
        got.append(client.post("/api/v1/gateway/ingest", json=more, headers=GW_H).json())

    threads = [threading.Thread(target=send, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r["applied"] for r in got) == 36 and sum(r["duplicate"] for r in got) == 36
    ledger = a.get("/api/v1/admin/ledger", params={"station": STATION}, headers=ADMIN_H).json()
    assert len(ledger["events"]) == 39


def test_rate_limit_holds_across_workers(workers):
    a, b = workers
    register(a)
    assert a.post("/api/v1/users", headers=ADMIN_H, json={"username": "ops-li", "display_name": "李", "password": PASSWORD,
                                                         "role": "maintenance"}).status_code == 201
    token = b.post("/api/v1/auth/login", data={"username": "ops-li", "password": PASSWORD}).json()["access_token"]
    ops = {"Authorization": f"Bearer {token}"}     # issued by b, honoured by a
    codes = []
    for n, client in zip((1, 2, 3, 4, 5), (a, b, a, b, a)):
        codes.append(client.post("/api/v1/commands", headers=ops, json={
            "station": STATION, "op": "open", "locker": "l1", "c": n, "reason": "test"}).status_code)
    assert codes == [201, 201, 201, 429, 429]
    # the queued commands are visible to the gateway through either worker
    cmds = b.get("/api/v1/gateway/commands", headers=GW_H).json()["commands"]
    assert [c["c"] for c in cmds] == [1, 2, 3]
