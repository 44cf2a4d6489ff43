"""Admin API, read API auth, seeding and settings."""

from __future__ import annotations

import pytest
from cloudkit import ADMIN, STATION, admin_headers, empty_comps, birth
from pydantic import ValidationError

from cloud.seed import seed_station
from cloud.settings import Settings


def test_admin_and_read_routes_need_the_admin_token(cloud):
    for path in ("/api/v1/stations", "/api/v1/parcels", "/api/v1/notifications",
                 f"/api/v1/admin/ledger?station={STATION}"):
        assert cloud.client.get(path).status_code == 401
        assert cloud.client.get(path, headers={"Authorization": "Bearer fengjia-station-key-0001"}).status_code == 403
    resp = cloud.client.post("/api/v1/admin/stations", json={"id": "x", "name": "x", "api_key": "k" * 20},
                             headers={"Authorization": "Bearer wrong-token-wrong-token"})
    assert resp.status_code == 401


def test_station_and_locker_registration(cloud):
    stations = cloud.admin_get("/api/v1/stations")
    fengjia = next(s for s in stations if s["id"] == STATION)
    assert (fengjia["name"], fengjia["village"], fengjia["town"], fengjia["kind"]) == \
        ("冯家村便民店", "冯家村", "临泽镇", "village_shop")
    assert [lk["id"] for lk in fengjia["lockers"]] == ["l1", "l2"]
    assert [c["n"] for c in fengjia["lockers"][0]["compartments"]] == [1, 2, 3, 4, 5, 6]
    assert fengjia["lockers"][0]["online"] == "unknown"
    assert "api_key" not in fengjia and "api_key_hash" not in fengjia

    post = cloud.client.post
    dup = post("/api/v1/admin/stations", headers=admin_headers(),
               json={"id": STATION, "name": "again", "api_key": "another-key-0123456789"})
    assert dup.status_code == 409
    reused = post("/api/v1/admin/stations", headers=admin_headers(),
                  json={"id": "lz-new-01", "name": "新站", "api_key": "fengjia-station-key-0001"})
    assert reused.status_code == 409 and "in use" in reused.json()["detail"]
    bad_kind = post("/api/v1/admin/stations", headers=admin_headers(),
                    json={"id": "lz-new-01", "name": "新站", "kind": "castle", "api_key": "k" * 20})
    assert bad_kind.status_code == 422
    no_station = post("/api/v1/admin/stations/lz-none/lockers", headers=admin_headers(),
                      json={"id": "l1", "comps": [{"n": 1, "size": "S"}]})
    assert no_station.status_code == 404
    again = post(f"/api/v1/admin/stations/{STATION}/lockers", headers=admin_headers(),
                 json={"id": "l1", "comps": [{"n": 1, "size": "S"}]})
    assert again.status_code == 409
    bad_size = post(f"/api/v1/admin/stations/{STATION}/lockers", headers=admin_headers(),
                    json={"id": "l3", "comps": [{"n": 1, "size": "XL"}]})
    assert bad_size.status_code == 422
    created = post(f"/api/v1/admin/stations/{STATION}/lockers", headers=admin_headers(),
                   json={"id": "l3", "comps": [{"n": 1, "size": "L"}, {"n": 2, "size": "M"}]})
    assert created.status_code == 201
    assert [c["size"] for c in created.json()["compartments"]] == ["L", "M"]
    # the new locker can report at once
    assert cloud.ingest([birth(0, empty_comps(2), src="l3")]).json()["applied"] == 1


def test_seed_station_is_idempotent(cloud):
    factory = cloud.client.app.state.sessionmaker
    lockers = [{"id": "l1", "comps": [{"n": 1, "size": "S"}, {"n": 2, "size": "M"}]}]
    for _ in range(2):
        with factory() as session:
            seed_station(session, station_id="lz-demo-01", name="演示站", api_key="demo-station-key-000",
                         lockers=lockers, village="演示村", town="演示镇")
    demo = [s for s in cloud.admin_get("/api/v1/stations") if s["id"] == "lz-demo-01"]
    assert len(demo) == 1 and demo[0]["village"] == "演示村"
    assert [c["n"] for c in demo[0]["lockers"][0]["compartments"]] == [1, 2]
    resp = cloud.ingest([birth(0, empty_comps(2))], station="lz-demo-01", key="demo-station-key-000")
    assert resp.status_code == 200 and resp.json()["applied"] == 1


def test_settings_validation(monkeypatch):
    monkeypatch.delenv("JINCUN_ADMIN_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="ADMIN_TOKEN"):
        Settings()
    with pytest.raises(ValidationError):
        Settings(admin_token="short")
    with pytest.raises(ValidationError, match="SMS_HTTP_URL"):
        Settings(admin_token=ADMIN, sms_adapter="http")
    demo = Settings(demo=True)
    assert demo.admin_token and len(demo.admin_token) >= 16
    assert Settings(demo=True).admin_token != demo.admin_token
    monkeypatch.setenv("JINCUN_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("JINCUN_DATABASE_URL", "sqlite:///x.db")
    env = Settings()
    assert (env.admin_token, env.database_url, env.sms_adapter) == (ADMIN, "sqlite:///x.db", "log")
