"""The cloud's side of the journeys (the whole journeys run in tests/journeys/): a door-to-door choice goes to
the station as `assist` (a change beyond the hour's limit is refused, so the station never disagrees), a cancelled deposit leaves the phone page, a pre-advised parcel never deposited is
flagged once, and the sweep's clock moves only in the demo."""

from __future__ import annotations

import asyncio
import re
import time

from cloudkit import (ADMIN, STATION, admin_headers, birth, code_record, empty_comps, evt, gw, gw_headers,
                      parcel_record)
from sqlalchemy import update
from test_cloud_recipients import PHONE, phone_login

from cloud import lifecycle
from cloud.models import RateHit
from cloud.recipients import ASSIST_PER_HOUR
from gateway import assist
from gateway.stationdb import Outbox


def _commands(cloud, op: str) -> list[dict]:
    got = cloud.client.get("/api/v1/gateway/commands", params={"after": 0, "wait": 0}, headers=gw_headers())
    return [k for k in got.json()["commands"] if k["op"] == op]


def test_a_door_to_door_choice_on_the_phone_page_goes_to_the_station(cloud):
    cloud.ingest([parcel_record(1, "p-a", c=2), birth(0, empty_comps(6), item_seq=0), evt(1, "deposit", c=2,
                                                                                          ref="p-a")])
    phone_login(cloud)
    c = cloud.client
    c.post("/m/door-help", data={"door_help": "on"})
    assert [(k["phone"], k["door_help"]) for k in _commands(cloud, "assist")] == [(PHONE, True)]
    c.post("/m/door-help", data={"door_help": "on"})  # unchanged: nothing new to send
    c.post("/m/consent", data={"consent": "granted"})  # the locker consent leaves door-to-door help alone
    assert [k["door_help"] for k in _commands(cloud, "assist")] == [True]
    c.post("/m/door-help", data={"door_help": "off"})
    assert [k["door_help"] for k in _commands(cloud, "assist")] == [True, False]


def _station_list(db, cmds: list[dict]) -> set[str]:
    """The station's door-to-door list after it kept these `assist` commands in its database, in cursor order,
    as its downlink does."""
    async def keep() -> set[str]:
        box = Outbox(db)
        await box.open()
        try:
            for k in cmds:
                await assist.choose(box, k["phone"], k["door_help"], k["issued_at"])
            return await assist.phones(box, [])
        finally:
            await box.close()
    return asyncio.run(keep())


def test_door_to_door_changes_beyond_the_hours_limit_are_refused_so_the_station_agrees(cloud, tmp_path):
    cloud.ingest([parcel_record(1, "p-a", c=2), birth(0, empty_comps(6), item_seq=0), evt(1, "deposit", c=2,
                                                                                          ref="p-a")])
    phone_login(cloud)
    c = cloud.client
    consent_url = f"/api/v1/gateway/recipients/{PHONE}/consent"
    # the hour's changes are made and each goes to the station
    for i in range(ASSIST_PER_HOUR):
        page = c.post("/m/door-help", data={"door_help": "off" if i % 2 else "on"})
        assert page.status_code == 200 and 'id="phone-msg">已完成<' in page.text
    sent = _commands(cloud, "assist")
    assert [k["door_help"] for k in sent] == [i % 2 == 0 for i in range(ASSIST_PER_HOUR)]
    last = sent[-1]["door_help"]
    state = "已开启：包裹会送到家" if last else "未开启"

    # one more is refused: the villager is told, in their language, and the setting stays as it was
    flip = "off" if last else "on"
    page = c.post("/m/door-help", data={"door_help": flip})
    assert page.status_code == 429
    assert f'id="phone-err">送货上门设置一小时内最多更改{ASSIST_PER_HOUR}次，这次没有更改' in page.text
    assert re.search(r"仍是下面显示的设置。请(1 小时|\d+ 分钟)后再试。<", page.text), "when to try again"
    assert f'id="door-help-state">{state}<' in page.text
    page = c.post("/m/door-help?lang=en", data={"door_help": flip})
    assert page.status_code == 429
    assert f"Door-to-door help can be changed at most {ASSIST_PER_HOUR} times an hour" in page.text
    assert re.search(r"Please try again in (1 h|\d+ min)\.<", page.text)
    # staff cannot push it past the limit either
    assert c.put(f"/api/v1/recipients/{PHONE}", json={"door_help": not last},
                 headers=admin_headers()).status_code == 429
    # choosing what is already set is no change: not refused, nothing sent
    assert c.post("/m/door-help", data={"door_help": "on" if last else "off"}).status_code == 200
    assert _commands(cloud, "assist") == sent

    # the station, having kept what the downlink gave it, agrees with the cloud
    db = tmp_path / "station.db"
    assert c.get(consent_url, headers=gw_headers()).json()["door_help"] is last
    assert _station_list(db, sent) == ({PHONE} if last else set())

    # an hour on, the villager may change it again, and the station follows
    with cloud.client.app.state.sessionmaker() as session:
        session.execute(update(RateHit).where(RateHit.key.startswith("assist:")).values(at=RateHit.at - 3601))
        session.commit()
    page = c.post("/m/door-help", data={"door_help": flip})
    assert page.status_code == 200 and 'id="phone-msg">已完成<' in page.text
    now = _commands(cloud, "assist")
    assert len(now) == ASSIST_PER_HOUR + 1 and now[-1]["door_help"] is (not last)
    assert c.get(consent_url, headers=gw_headers()).json()["door_help"] is (not last)
    assert _station_list(db, now[-1:]) == (set() if last else {PHONE})


def test_a_cancelled_deposit_leaves_the_phone_page(cloud):
    cloud.ingest([parcel_record(1, "p-a", c=2), parcel_record(2, "p-v", c=3, waybill="SF5550001111", carrier="SF"),
                  birth(0, empty_comps(6), item_seq=0), evt(1, "deposit", c=2, ref="p-a"),
                  evt(2, "deposit_void", c=3, ref="p-v"), code_record(3, "p-a", "482913")])
    assert cloud.admin_get("/api/v1/parcels/p-v")["status"] == "cancelled"
    phone_login(cloud)
    page = cloud.client.get("/m").text
    assert "YT7788990011" in page and "482913" in page
    assert "SF5550001111" not in page and "已预报" not in page


def test_an_expired_keypad_booking_is_cancelled_like_a_voided_deposit(cloud):
    """The gateway booked a compartment for the keypad and nobody typed the PIN in time: its parcel record with
    `void` cancels the parcel, which leaves the phone page and is never flagged as never delivered."""
    cloud.ingest([parcel_record(1, "p-kp", c=4, waybill="ZT5550007777", carrier="ZTO"),
                  birth(0, empty_comps(6), item_seq=0),
                  gw(2, "parcel", {"ref": "p-kp", "locker": "l1", "c": 4, "void": "keypad_expired"})])
    got = cloud.admin_get("/api/v1/parcels/p-kp")
    assert got["status"] == "cancelled"
    assert [e["status"] for e in got["timeline"]][-1] == "cancelled"
    phone_login(cloud)
    assert "ZT5550007777" not in cloud.client.get("/m").text
    with cloud.client.app.state.sessionmaker() as session:
        done = lifecycle.sweep(session, cloud.settings, now=time.time() + 49 * 3600)
        session.commit()
    assert done["never_delivered"] == 0
    # a void of any other reason is not taken
    bad = cloud.ingest([gw(3, "parcel", {"ref": "p-kp", "locker": "l1", "c": 4, "void": "bored"})])
    assert bad.json()["rejected"] == 1 and cloud.admin_get("/api/v1/parcels/p-kp")["status"] == "cancelled"


def test_never_delivered_is_flagged_once_after_48_hours(cloud):
    c = cloud.client
    key = c.post("/api/v1/carriers/YTO/clients", json={"name": "yto"}, headers=admin_headers()).json()["api_key"]
    r = c.post("/api/v1/carrier/manifests", headers={"Authorization": f"Bearer {key}"}, json={
        "manifest_id": "m-9", "parcels": [{"waybill": "YT5550009999", "station": STATION, "phone": PHONE}]})
    assert r.status_code == 200
    settings, factory = cloud.settings, c.app.state.sessionmaker
    t0 = time.time()

    def sweep(hours: float) -> int:
        with factory() as session:
            done = lifecycle.sweep(session, settings, now=t0 + hours * 3600)
            session.commit()
        return done["never_delivered"]

    assert (sweep(47), sweep(49), sweep(60)) == (0, 1, 0)
    flags = c.get("/api/v1/stats/flags", headers=admin_headers()).json()
    assert [(f["waybill"], f["kind"]) for f in flags] == [("YT5550009999", "never_delivered")]


def test_the_sweeps_clock_moves_only_in_the_demo(cloud):
    c = cloud.client
    assert ADMIN and c.post("/api/v1/admin/sweep", headers=admin_headers()).status_code == 200
    refused = c.post("/api/v1/admin/sweep", params={"at": time.time() + 86400}, headers=admin_headers())
    assert refused.status_code == 403
    assert c.post("/api/v1/admin/sweep", headers=gw_headers()).status_code in (401, 403)


def test_a_cancelled_deposit_of_a_preadvised_parcel_is_still_owed(cloud):
    """The carrier's manifest said the parcel comes; a deposit the locker never saw leaves it pre-advised, in no
    locker, so the never-delivered sweep still flags it."""
    c = cloud.client
    key = c.post("/api/v1/carriers/YTO/clients", json={"name": "yto"}, headers=admin_headers()).json()["api_key"]
    c.post("/api/v1/carrier/manifests", headers={"Authorization": f"Bearer {key}"}, json={
        "manifest_id": "m-10", "parcels": [{"waybill": "YT5550008888", "station": STATION, "phone": PHONE}]})
    cloud.ingest([parcel_record(1, "p-try", c=3, waybill="YT5550008888"), birth(0, empty_comps(6), item_seq=0),
                  evt(1, "deposit_void", c=3, ref="p-try")])
    got = cloud.admin_get("/api/v1/parcels", waybill="YT5550008888")
    assert [(p["status"], p["locker_id"]) for p in got] == [("preadvised", None)]
    with c.app.state.sessionmaker() as session:
        done = lifecycle.sweep(session, cloud.settings, now=time.time() + 49 * 3600)
        session.commit()
    assert done["never_delivered"] == 1
