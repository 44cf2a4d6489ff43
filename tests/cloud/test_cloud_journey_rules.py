"""The cloud's side of the journeys (the whole journeys run in tests/journeys/): a door-to-door choice goes to
the station as `assist` (a change beyond the hour's limit is refused, so the station never disagrees; a choice
made before a parcel came reaches the station it comes to; anyone's change reaches every station of the
villager), a cancelled deposit leaves the phone page, a pre-advised parcel never deposited is
flagged once, and the sweep's clock moves only in the demo."""

from __future__ import annotations

import asyncio
import re
import time

from cloudkit import (ADMIN, OTHER, OTHER_KEY, STATION, STATION_KEY, add_user, admin_headers, birth, code_record,
                      empty_comps, evt, gw, gw_headers, login, parcel_record)
from sqlalchemy import update
from test_cloud_recipients import PHONE, phone_login

from cloud import lifecycle, recipients
from cloud.models import RateHit
from cloud.recipients import ASSIST_PER_HOUR
from gateway import assist
from gateway.stationdb import Outbox


def _commands(cloud, op: str, key: str = STATION_KEY) -> list[dict]:
    got = cloud.client.get("/api/v1/gateway/commands", params={"after": 0, "wait": 0}, headers=gw_headers(key))
    return [k for k in got.json()["commands"] if k["op"] == op]


def _assist(cloud, key: str = STATION_KEY) -> list[tuple[str, bool]]:
    return [(k["phone"], k["door_help"]) for k in _commands(cloud, "assist", key)]


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


def test_a_choice_made_before_any_parcel_reaches_the_station_the_parcel_comes_to(cloud):
    """Door-to-door help chosen with no parcel anywhere: the station a parcel later comes to (the station's own
    parcel record, or a carrier's pre-advice naming it) is sent the choice, once however many parcels follow;
    and a station that held the "yes" hears the "no" even after its parcels were picked up."""
    phone_login(cloud)
    c = cloud.client
    assert c.post("/m/door-help", data={"door_help": "on"}).status_code == 200
    assert _assist(cloud) == [] and _assist(cloud, OTHER_KEY) == []
    # two parcels in one batch: one command
    cloud.ingest([parcel_record(1, "p-a", c=2), parcel_record(2, "p-b", c=3, waybill="YT7788990022"),
                  birth(0, empty_comps(6), item_seq=0), evt(1, "deposit", c=2, ref="p-a"),
                  evt(2, "deposit", c=3, ref="p-b")])
    assert _assist(cloud) == [(PHONE, True)] and _assist(cloud, OTHER_KEY) == []
    cloud.ingest([parcel_record(3, "p-c", c=4, waybill="YT7788990033"), evt(3, "deposit", c=4, ref="p-c")])
    assert _assist(cloud) == [(PHONE, True)]
    # the station took the command: a later parcel queues nothing new either
    first = _commands(cloud, "assist")[0]
    ack = c.post(f"/api/v1/gateway/commands/{first['id']}/ack", headers=gw_headers(), json={"ok": True})
    assert ack.status_code == 200, ack.text
    cloud.ingest([parcel_record(4, "p-d", c=5, waybill="YT7788990044"), evt(4, "deposit", c=5, ref="p-d")])
    assert _assist(cloud) == []
    # a carrier's pre-advice naming the other station, twice
    key = c.post("/api/v1/carriers/YTO/clients", json={"name": "yto"}, headers=admin_headers()).json()["api_key"]
    for n in (1, 2):
        r = c.post("/api/v1/carrier/manifests", headers={"Authorization": f"Bearer {key}"}, json={
            "manifest_id": f"m-d2d-{n}", "parcels": [{"waybill": f"YT555000100{n}", "station": OTHER,
                                                     "phone": PHONE}]})
        assert r.status_code == 200, r.text
    assert _assist(cloud, OTHER_KEY) == [(PHONE, True)] and _assist(cloud) == []
    # the courier brings it: the station's record of the pre-advised parcel queues nothing more
    cloud.ingest([parcel_record(1, "p-o", c=2, locker="l9", waybill="YT5550001001", carrier="YTO")], station=OTHER,
                 key=OTHER_KEY)
    assert cloud.admin_get("/api/v1/parcels/p-o")["waybill"] == "YT5550001001"
    assert _assist(cloud, OTHER_KEY) == [(PHONE, True)]
    # every parcel at the first station picked up; the "no" still reaches the list that holds the "yes"
    cloud.ingest([evt(5 + i, "pickup", c=comp, ref=ref) for i, (comp, ref) in
                  enumerate(((2, "p-a"), (3, "p-b"), (4, "p-c"), (5, "p-d")))])
    assert {cloud.admin_get(f"/api/v1/parcels/{ref}")["status"] for ref in ("p-a", "p-b", "p-c", "p-d")} == {
        "picked_up"}
    assert c.post("/m/door-help", data={"door_help": "off"}).status_code == 200
    assert _assist(cloud) == [(PHONE, False)] and _assist(cloud, OTHER_KEY) == [(PHONE, True), (PHONE, False)]


def test_a_station_agents_change_reaches_every_station_of_the_villager(cloud):
    """An agent of one station changes a villager's choice: the cloud sends it to both stations the villager has
    parcels at (the agent's permission is to change the choice), and the audit says who changed it."""
    cloud.ingest([parcel_record(1, "p-a", c=2)])
    cloud.ingest([parcel_record(1, "p-o", c=2, locker="l9")], station=OTHER, key=OTHER_KEY)
    c = cloud.client
    add_user(c, "agent-zhao", "station_agent", station_id=STATION)
    agent = login(c, "agent-zhao")
    r = c.put(f"/api/v1/recipients/{PHONE}", json={"door_help": True}, headers=agent)
    assert r.status_code == 200, r.text
    assert _assist(cloud) == [(PHONE, True)] and _assist(cloud, OTHER_KEY) == [(PHONE, True)]
    r = c.put(f"/api/v1/recipients/{PHONE}", json={"door_help": False}, headers=agent)
    assert r.status_code == 200, r.text
    assert [d for _, d in _assist(cloud)] == [True, False] and [d for _, d in _assist(cloud, OTHER_KEY)] == [True,
                                                                                                           False]
    audit = c.get("/api/v1/audit", headers=admin_headers()).json()
    changes = [(a["actor"], a["detail"]) for a in audit if a["action"] == "door_help"]
    assert changes == [("agent-zhao", {"before": True, "after": False}),
                       ("agent-zhao", {"before": False, "after": True})]
    # the commands are the cloud's, so no phone rides in a command's issuer
    assert {a["actor"] for a in audit if a["action"] == "command_assist"} == {recipients.DOOR_TO_DOOR.name}


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
