"""Reminders at 24 h and 48 h, overdue after N days, then the return flow; the sweep is idempotent."""

from __future__ import annotations

import time

from cloudkit import STATION, add_user, birth, code_record, empty_comps, evt, gw_headers, login, parcel_record

from cloud import lifecycle


def test_reminders_overdue_and_return(cloud):
    c = cloud.client
    t0 = time.time()
    resp = cloud.ingest([parcel_record(1, "p-late", c=2), birth(0, empty_comps(6), item_seq=0),
                         evt(1, "deposit", c=2, ref="p-late", ts=int(t0)), code_record(2, "p-late", "246810")])
    assert resp.json()["applied"] == 4
    settings, factory = cloud.settings, c.app.state.sessionmaker

    def sweep(at: float) -> dict:
        with factory() as session:
            done = lifecycle.sweep(session, settings, now=at)
            session.commit()
        return done

    assert sweep(t0 + 23 * 3600) == {"reminders": 0, "overdue": 0, "never_delivered": 0}
    assert sweep(t0 + 25 * 3600) == {"reminders": 1, "overdue": 0, "never_delivered": 0}
    assert sweep(t0 + 26 * 3600) == {"reminders": 0, "overdue": 0, "never_delivered": 0}     # not twice
    assert sweep(t0 + 49 * 3600) == {"reminders": 1, "overdue": 0, "never_delivered": 0}
    texts = [n["text"] for n in cloud.admin_get("/api/v1/notifications", phone="13800138000")]
    assert sum("已放24小时" in t for t in texts) == 1 and sum("已放48小时" in t for t in texts) == 1
    assert sweep(t0 + settings.overdue_days * 86400 + 60) == {"reminders": 0, "overdue": 1, "never_delivered": 0}
    parcel = cloud.admin_get("/api/v1/parcels/p-late")
    assert parcel["status"] == "overdue"
    assert [e["status"] for e in parcel["timeline"]][-1] == "overdue"
    # the return flow starts: the villager is told, and the station gets the parcel back through its locker
    texts = [n["text"] for n in cloud.admin_get("/api/v1/notifications", phone="13800138000")]
    assert sum("已退回快递公司" in t for t in texts) == 1
    cmds = c.get("/api/v1/gateway/commands", params={"after": 0, "wait": 0}, headers=gw_headers()).json()
    returns = [k for k in cmds["commands"] if k["op"] == "return"]
    assert [(k["locker"], k["c"], k["ref"]) for k in returns] == [("l1", 2, "p-late")]

    add_user(c, "agent-zhao", "station_agent", station_id=STATION)
    agent = login(c, "agent-zhao")
    resp = c.post("/api/v1/parcels/p-late/return", json={"reason": "courier took it back"}, headers=agent)
    assert resp.status_code == 200 and resp.json()["status"] == "returned"
    again = c.post("/api/v1/parcels/p-late/return", json={"reason": "again"}, headers=agent)
    assert again.status_code == 409
    assert c.post("/api/v1/parcels/p-none/return", json={"reason": "x"}, headers=agent).status_code == 404
    # a late pickup event does not move a returned parcel back
    cloud.ingest([evt(2, "pickup", c=2, ref="p-late")])
    assert cloud.admin_get("/api/v1/parcels/p-late")["status"] == "returned"


def test_sweep_lease_lets_one_worker_at_a_time(cloud):
    from cloud.ratelimit import acquire_lease
    factory = cloud.client.app.state.sessionmaker
    with factory() as s:
        assert acquire_lease(s, "job", "a", ttl=60, now=1000)
        s.commit()
    with factory() as s:
        assert not acquire_lease(s, "job", "b", ttl=60, now=1030)
        assert acquire_lease(s, "job", "a", ttl=60, now=1030)        # the holder renews
        s.commit()
    with factory() as s:
        assert acquire_lease(s, "job", "b", ttl=60, now=1100)        # expired: taken over
        s.commit()


def test_door_delivery(cloud):
    c = cloud.client
    cloud.ingest([parcel_record(1, "p-door", c=2), birth(0, empty_comps(6), item_seq=0)])
    add_user(c, "agent-zhao", "station_agent", station_id=STATION)
    add_user(c, "agent-other", "station_agent", station_id="lz-dongcun-02")
    other = login(c, "agent-other")
    assert c.post("/api/v1/parcels/p-door/door", json={"reason": "elderly"}, headers=other).status_code == 403
    agent = login(c, "agent-zhao")
    resp = c.post("/api/v1/parcels/p-door/door", json={"reason": "elderly, lives alone"}, headers=agent)
    assert resp.status_code == 200 and resp.json()["status"] == "delivered_door"
    assert c.post("/api/v1/parcels/p-door/door", json={"reason": "again"}, headers=agent).status_code == 409
