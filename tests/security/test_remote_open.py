"""Insider operator (or a stolen admin login minting operators): no mass remote open, and the county hears of it."""

import time

import httpx
import pytest
from seckit import CLOUD_ADMIN

COUNTY_CAP, SPREAD_CAP, DUTY = 6, 2, "13900000000"
STATIONS = [f"st-{i}" for i in range(1, 6)]


@pytest.fixture
def cloud_env() -> dict:
    return {"JINCUN_COUNTY_OPEN_LIMIT_PER_HOUR": str(COUNTY_CAP),
            "JINCUN_OPERATOR_STATION_LIMIT_PER_HOUR": str(SPREAD_CAP), "JINCUN_DUTY_PHONE": DUTY,
            # the alert sweep tells the duty phone (cloud/alerts.py): often, so the test need not wait long
            "JINCUN_SWEEP_SECONDS": "0.5"}


def operator(http: httpx.Client, name: str, headers: dict | None = None) -> httpx.Response:
    return http.post("/api/v1/users", headers=headers, json={
        "username": name, "display_name": name, "password": f"pw-{name}-long-enough", "role": "maintenance"})


def token(http: httpx.Client, name: str) -> dict:
    r = http.post("/api/v1/auth/login", data={"username": name, "password": f"pw-{name}-long-enough"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def open_at(http: httpx.Client, who: dict, station: str, c: int = 1) -> int:
    return http.post("/api/v1/commands", headers=who, json={
        "station": station, "op": "open", "locker": "l1", "c": c, "reason": "villager locked out"}).status_code


def test_county_cap_and_station_spread_cap_hold_and_raise_alarms(cloud_proc):
    admin = {"Authorization": f"Bearer {CLOUD_ADMIN}"}
    with httpx.Client(base_url=cloud_proc.url, headers=admin, timeout=30) as http:
        for st in STATIONS:
            assert http.post("/api/v1/admin/stations", json={"id": st, "name": st, "kind": "village_shop",
                                                             "api_key": f"{st}-key-8fJ2kLq9Zx"}).status_code == 201
            assert http.post(f"/api/v1/admin/stations/{st}/lockers", json={
                "id": "l1", "comps": [{"n": n, "size": "M"} for n in range(1, 5)]}).status_code == 201
        for name in ("op1", "op2", "op3", "op4"):
            assert operator(http, name).status_code == 201
        ops = {name: token(http, name) for name in ("op1", "op2", "op3", "op4")}
        # only the admin makes operators
        assert operator(http, "op5", ops["op1"]).status_code == 403

        # one operator, door after door at station after station: the third station is refused
        assert [open_at(http, ops["op1"], st) for st in STATIONS[:3]] == [201, 201, 429]
        # freshly made operators add up against the county's hourly cap
        got = [open_at(http, ops["op2"], STATIONS[2]), open_at(http, ops["op2"], STATIONS[3]),
               open_at(http, ops["op3"], STATIONS[4]), open_at(http, ops["op3"], STATIONS[0], 2),
               open_at(http, ops["op4"], STATIONS[1], 2)]
        assert got == [201, 201, 201, 201, 429], "the county allows 6 remote opens an hour"
        assert open_at(http, admin, STATIONS[3], 3) == 429, "the cap is the county's, whoever asks"

        alarms = [a for a in http.get("/api/v1/alarms").json() if a["kind"] == "remote_open_limit"]
        # each alarm is an episode at its station, told to the duty phone once by the sweep
        deadline = time.monotonic() + 20
        while True:
            sms = http.get("/api/v1/notifications", params={"phone": DUTY}).json()
            if len(sms) >= len(alarms) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        audit = http.get("/api/v1/audit", params={"limit": 1000}).json()
        queued = http.get("/api/v1/commands", params={"op": "open"}).json()
    assert len(queued) == COUNTY_CAP
    assert any("op1" in a["text"] and "operator-stations" in a["text"] for a in alarms)
    assert any("op4" in a["text"] and "county" in a["text"] for a in alarms)
    assert len(sms) == len(alarms) >= 2 and all("远程开柜超限" in n["text"] for n in sms)
    refused = [a for a in audit if a["action"] == "open_refused"]
    assert len(refused) == 3
    assert {a["target"] for a in audit if a["action"] == "user_created"} == {"op1", "op2", "op3", "op4"}
