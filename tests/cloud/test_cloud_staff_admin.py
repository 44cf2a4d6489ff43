"""The admin's staff page and API: stations, lockers, couriers and staff added and retired, audited, and the
station's list of who may log in at its terminal (§5.6)."""

from __future__ import annotations

from cloudkit import OTHER_KEY, PASSWORD, STATION, STATION_KEY, add_user, admin_headers, gw_headers, login

from jincun.pins import verify_pin

COURIER_PIN = "482913"
AGENT_PIN = "246810"


def _staff_list(cloud, key: str = STATION_KEY) -> dict[str, dict]:
    resp = cloud.client.get("/api/v1/gateway/couriers", headers=gw_headers(key))
    assert resp.status_code == 200, resp.text
    return {u["id"]: u for u in resp.json()["users"]}


def _retired_lockers(cloud) -> list[str]:
    return cloud.client.get("/api/v1/gateway/couriers", headers=gw_headers()).json()["retired_lockers"]


def _audit(cloud) -> list[tuple[str, str, str]]:
    rows = cloud.client.get("/api/v1/audit", headers=admin_headers(), params={"limit": 1000}).json()
    return [(r["actor"], r["action"], r["target"]) for r in rows]


def test_admin_page_adds_and_retires_and_the_station_list_follows(cloud):
    c = cloud.client
    add_user(c, "county-admin", "admin")
    admin = login(c, "county-admin")

    def post(path: str, **form) -> str:
        resp = c.post(path, data=form, headers=admin, follow_redirects=False)
        assert resp.status_code == 303, resp.text
        return resp.headers["location"]

    # a station, a locker, a courier for two stations and a station agent with a terminal PIN
    assert "msg=" in post("/admin/stations", id="lz-xicun-03", name="西村便民店", kind="village_shop",
                          village="西村", town="临泽镇")
    assert "msg=" in post("/admin/lockers", station="lz-xicun-03", id="l1", comps="3S,2M,1L")
    assert "msg=" in post("/admin/couriers", carrier="ZTO", name="王师傅", phone="13900000001", pin=COURIER_PIN,
                          stations=f"{STATION}，lz-xicun-03")
    assert "msg=" in post("/admin/users", username="li.agent", display_name="李代办", role="station_agent",
                          station=STATION, password="long-password-1", pin=AGENT_PIN)
    # refusals come back as one line, nothing half-done
    assert "err=" in post("/admin/couriers", carrier="ZTO", name="短", phone="13900000002", pin="1234")
    assert "err=" in post("/admin/couriers", carrier="ZTO", name="重", phone="13900000001", pin=COURIER_PIN)
    assert "err=" in post("/admin/lockers", station="lz-xicun-03", id="l2", comps="3S,2X")
    assert "err=" in post("/admin/users", username="ops.wu", display_name="吴", role="maintenance",
                          password="long-password-2", pin=AGENT_PIN)

    page = c.get("/admin", headers=admin).text
    assert "人员与站点管理" in page and "西村便民店" in page and "王师傅" in page and "李代办" in page
    assert "13900000002" not in page and COURIER_PIN not in page
    en = c.get("/admin?lang=en", headers=admin).text
    assert "Staff and stations" in en and "Add a courier" in en and "Station agent" in en and "Retire the station" in en

    # the station's terminal list: the courier (c<n>) and the agent (a<n>), hashed by the one PIN rule
    people = _staff_list(cloud)
    courier = next(u for u in people.values() if u["role"] == "courier")
    agent = next(u for u in people.values() if u["role"] == "agent")
    assert courier["id"].startswith("c") and courier["name"] == "王师傅" and courier["carrier"] == "ZTO"
    assert agent["id"].startswith("a") and agent["name"] == "李代办"
    assert verify_pin(COURIER_PIN, courier["pin_hash"]) and not verify_pin("000000", courier["pin_hash"])
    assert verify_pin(AGENT_PIN, agent["pin_hash"]) and COURIER_PIN not in courier["pin_hash"]
    assert _staff_list(cloud, OTHER_KEY) == {}, "another station lists neither of them"
    assert c.post("/api/v1/gateway/couriers/verify", json={"phone": "13900000001", "pin": COURIER_PIN},
                  headers=gw_headers()).json()["ok"] is True

    # retiring: the courier leaves the station's list at once, the agent can no longer log in anywhere
    assert "msg=" in post("/admin/couriers/13900000001/retire", reason="离职")
    assert "msg=" in post("/admin/users/li.agent/retire", reason="换人")
    assert _staff_list(cloud) == {}
    assert c.post("/api/v1/gateway/couriers/verify", json={"phone": "13900000001", "pin": COURIER_PIN},
                  headers=gw_headers()).json()["ok"] is False
    assert c.post("/api/v1/auth/login", data={"username": "li.agent", "password": "long-password-1"}).status_code == 401
    assert "err=" in post("/admin/couriers/13900000001/retire", reason="again")
    assert "err=" in post("/admin/users/county-admin/retire", reason="myself")
    page = c.get("/admin", headers=admin).text
    assert 'id="courier-13900000001" data-active="no"' in page and 'id="user-li.agent" data-active="no"' in page

    # the locker and the station retire too, kept for history
    assert "msg=" in post("/admin/lockers/lz-xicun-03/l1/retire", reason="坏了")
    assert "msg=" in post("/admin/stations/lz-xicun-03/retire", reason="关店")
    station = next(s for s in cloud.admin_get("/api/v1/stations") if s["id"] == "lz-xicun-03")
    assert station["active"] is False and station["lockers"][0]["active"] is False

    actions = {(a, t) for actor, a, t in _audit(cloud) if actor == "county-admin"}
    assert {("station_created", "lz-xicun-03"), ("locker_added", "lz-xicun-03/l1"),
            ("courier_added", "ZTO/13900000001"), ("user_created", "li.agent"),
            ("courier_retired", "ZTO/13900000001"), ("user_retired", "li.agent"),
            ("locker_retired", "lz-xicun-03/l1"), ("station_retired", "lz-xicun-03")} <= actions


def test_only_an_admin_reaches_the_page_and_its_forms(cloud):
    c = cloud.client
    add_user(c, "ops-zhao", "maintenance")
    ops = login(c, "ops-zhao", PASSWORD)
    assert c.get("/admin", follow_redirects=False).headers["location"].startswith("/login?next=/admin")
    assert c.get("/admin", headers=ops, follow_redirects=False).status_code == 303
    resp = c.post("/admin/couriers", data={"carrier": "ZTO", "name": "x", "phone": "13900000009", "pin": "123456"},
                  headers=ops, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    assert c.get("/api/v1/couriers", headers=admin_headers()).json() == []
    # the gateway list needs the station's key
    assert c.get("/api/v1/gateway/couriers").status_code == 401
    assert c.get("/api/v1/gateway/couriers", headers=gw_headers("not-a-station-key-000")).status_code == 401


def test_api_retire_routes_and_a_retired_locker_leaves_enrollment(cloud):
    c = cloud.client
    resp = c.post("/api/v1/carriers/YTO/couriers", headers=admin_headers(),
                  json={"name": "赵师傅", "phone": "13900000011", "pin": "771204", "stations": [STATION]})
    assert resp.status_code == 201, resp.text
    assert [u["name"] for u in _staff_list(cloud).values()] == ["赵师傅"]
    resp = c.post("/api/v1/couriers/13900000011/retire", headers=admin_headers(), json={"reason": "调走"})
    assert resp.status_code == 200 and resp.json()["active"] is False
    assert c.post("/api/v1/couriers/13900000011/retire", headers=admin_headers(),
                  json={"reason": "again"}).status_code == 409
    assert _staff_list(cloud) == {}
    assert _retired_lockers(cloud) == []
    resp = c.post(f"/api/v1/admin/stations/{STATION}/lockers/l2/retire", headers=admin_headers(),
                  json={"reason": "撤走"})
    assert resp.status_code == 200 and resp.json()["active"] is False
    # the station's gateway learns it with its next pull of the list, and takes no new deposits into l2
    assert _retired_lockers(cloud) == ["l2"]
    # added again with the same compartments, it is back in service; with others, refused
    same = [{"n": i, "size": "SML"[(i - 1) % 3]} for i in range(1, 5)]
    assert c.post(f"/api/v1/admin/stations/{STATION}/lockers", headers=admin_headers(),
                  json={"id": "l2", "comps": same[:3]}).status_code == 409
    resp = c.post(f"/api/v1/admin/stations/{STATION}/lockers", headers=admin_headers(), json={"id": "l2", "comps": same})
    assert resp.status_code == 201 and resp.json()["active"] is True
    assert _retired_lockers(cloud) == []
    assert ("locker_restored", f"{STATION}/l2") in {(act, t) for _, act, t in _audit(cloud)}
    assert c.post(f"/api/v1/admin/stations/{STATION}/lockers/l2/retire", headers=admin_headers(),
                  json={"reason": "撤走"}).status_code == 200
    token = c.post(f"/api/v1/admin/stations/{STATION}/enroll-token", headers=admin_headers(), json={}).json()["token"]
    enrolled = c.post("/api/v1/enroll", json={"token": token}).json()
    assert [lk["id"] for lk in enrolled["lockers"]] == ["l1"]
    # a retired station's gateway is refused
    assert c.post(f"/api/v1/admin/stations/{STATION}/retire", headers=admin_headers(),
                  json={"reason": "关店"}).status_code == 200
    assert c.get("/api/v1/gateway/couriers", headers=gw_headers(enrolled["api_key"])).status_code == 403
