"""Insider (a station agent or maintainer): pickup-code lookups are limited per person, audited and alarmed."""

import httpx
from seckit import CLOUD_ADMIN

STATION = "lz-fengjia-01"


def staff(http: httpx.Client, name: str, role: str, **extra) -> dict:
    r = http.post("/api/v1/users", json={"username": name, "display_name": name, "password": "pw-" + name * 3,
                                         "role": role, **extra})
    assert r.status_code == 201, r.text
    r = http.post("/api/v1/auth/login", data={"username": name, "password": "pw-" + name * 3})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_code_lookups_are_limited_per_staff_member_audited_and_alarmed(cloud_proc):
    admin = {"Authorization": f"Bearer {CLOUD_ADMIN}"}
    with httpx.Client(base_url=cloud_proc.url, headers=admin, timeout=30) as http:
        r = http.post("/api/v1/admin/stations", json={"id": STATION, "name": "冯家村", "kind": "village_shop",
                                                       "api_key": "fengjia-station-key-0001"})
        assert r.status_code == 201, r.text
        wang = staff(http, "wang", "station_agent", station_id=STATION)
        zhao = staff(http, "zhao", "maintenance")
        codes = [http.post("/api/v1/codes/lookup", headers=wang, json={"station": STATION, "code": f"{i:06d}"}
                           ).status_code for i in range(32)]
        assert codes == [200] * 30 + [429] * 2, "a sweep of the code space stops at 30 an hour"
        r = http.post("/api/v1/codes/lookup", headers=zhao, json={"station": STATION, "code": "123456"})
        assert r.status_code == 200, "another staff member is not held back"
        # the code stays out of the URL: the old GET form is gone
        assert http.get("/api/v1/codes/lookup", headers=wang,
                        params={"station": STATION, "code": "654321"}).status_code == 405
        audit = http.get("/api/v1/audit", params={"limit": 1000}).json()
        alarms = http.get("/api/v1/alarms").json()
        counters = http.get("/api/v1/health").json()["counters"]
    mine = [a for a in audit if a["actor"] == "wang"]
    assert sum(a["action"] == "code_lookup" for a in mine) == 30
    assert sum(a["action"] == "code_lookup_refused" for a in mine) == 2
    assert not any("000031" in str(a) for a in audit), "no code in the audit log"
    (alarm,) = [a for a in alarms if a["kind"] == "code_lookup_limit"]
    assert "wang" in alarm["text"]
    assert counters["code_lookups_refused"] == 2
    assert b"000031" not in cloud_proc.log.read_bytes(), "no code in the access log"
