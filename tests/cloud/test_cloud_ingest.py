"""Gateway ingest: the full parcel flow, replays, bad items, auth and limits (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time

from cloudkit import (BOOT, GW_BOOT, OTHER_KEY, STATION, birth, code_record, empty_comps, evt, gw,
                      parcel_record)


def flow_items(ref: str = "p-7f3a1c", code: str = "482913") -> list[dict]:
    """What a gateway sends for one inbound parcel, in outbox order."""
    return [
        parcel_record(1, ref, c=2),
        birth(0, empty_comps(6), item_seq=0),
        evt(1, "lock", c=2, why="deposit"),
        evt(2, "door", c=2, open=True),
        evt(3, "door", c=2, open=False),
        evt(4, "deposit", c=2, ref=ref),
        code_record(2, ref, code),
    ]


def snapshot(cloud) -> dict:
    """Everything a user could look at, to compare before and after a replay."""
    return {
        "parcels": cloud.admin_get("/api/v1/parcels"),
        "sms": cloud.admin_get("/api/v1/notifications"),
        "stations": cloud.admin_get("/api/v1/stations"),
        "ledger": cloud.admin_get("/api/v1/admin/ledger", station=STATION),
    }


def comp(cloud, locker: str, n: int) -> dict:
    station = next(s for s in cloud.admin_get("/api/v1/stations") if s["id"] == STATION)
    lk = next(lk for lk in station["lockers"] if lk["id"] == locker)
    return next(c for c in lk["compartments"] if c["n"] == n)


def test_full_parcel_flow(cloud):
    resp = cloud.ingest(flow_items(), batch="3f2a-1")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["batch"] == "3f2a-1"
    assert (body["applied"], body["duplicate"], body["rejected"]) == (7, 0, 0)
    assert body["results"][0] == {"src": "gw", "boot": GW_BOOT, "seq": 1, "status": "applied"}
    assert body["results"][5] == {"src": "l1", "boot": BOOT, "seq": 4, "status": "applied"}

    parcel = cloud.admin_get("/api/v1/parcels/p-7f3a1c")
    assert parcel["status"] == "notified"
    assert parcel["waybill"] == "YT7788990011" and parcel["phone"] == "13800138000"
    assert (parcel["locker_id"], parcel["compartment"]) == ("l1", 2)
    assert parcel["deposited_at"] == 1764355260
    assert [e["status"] for e in parcel["timeline"]] == ["preadvised", "deposited", "notified"]

    sms = cloud.admin_get("/api/v1/notifications", phone="13800138000")
    assert len(sms) == 1
    assert sms[0]["status"] == "sent"
    assert "取件码 482913" in sms[0]["text"]
    assert "圆通速递包裹已到冯家村便民店 1号柜 2号格口" in sms[0]["text"] and sms[0]["ref"] == "p-7f3a1c"

    c2 = comp(cloud, "l1", 2)
    assert (c2["state"], c2["occ"], c2["ref"], c2["door"]) == ("occupied", True, "p-7f3a1c", "closed")
    station = next(s for s in cloud.admin_get("/api/v1/stations") if s["id"] == STATION)
    l1 = next(lk for lk in station["lockers"] if lk["id"] == "l1")
    assert l1["online"] == "online" and l1["boot"] == BOOT and l1["last_seen"] > 0

    # the villager types the code: the locker reports the pickup
    resp = cloud.ingest([evt(5, "code_ok", cs=[2]), evt(6, "door", c=2, open=True),
                         evt(7, "pickup", c=2, ref="p-7f3a1c", ts=1764359999)])
    assert resp.json()["applied"] == 3
    parcel = cloud.admin_get("/api/v1/parcels", waybill="YT7788990011")[0]
    assert parcel["status"] == "picked_up" and parcel["picked_up_at"] == 1764359999
    assert [e["status"] for e in parcel["timeline"]] == ["preadvised", "deposited", "notified", "picked_up"]
    c2 = comp(cloud, "l1", 2)
    assert (c2["state"], c2["occ"], c2["ref"]) == ("empty", False, None)
    ledger = cloud.admin_get("/api/v1/admin/ledger", station=STATION)
    assert ledger["events"] == [["l1", BOOT, s] for s in range(1, 8)]
    assert ledger["parcel_transitions"] == {"preadvised": 1, "deposited": 1, "notified": 1, "picked_up": 1}
    counters = cloud.counters()
    assert counters["ingest_applied"] == 10 and counters["sms_sent"] == 1


def test_replayed_batch_changes_nothing(cloud):
    items = flow_items()
    first = cloud.ingest(items, batch="same")
    assert first.json()["applied"] == len(items)
    before = snapshot(cloud)
    again = cloud.ingest(items, batch="same")
    assert again.status_code == 200
    body = again.json()
    assert (body["applied"], body["duplicate"], body["rejected"]) == (0, len(items), 0)
    assert {r["status"] for r in body["results"]} == {"duplicate"}
    assert snapshot(cloud) == before
    assert cloud.counters()["ingest_duplicate"] == len(items)


def test_order_does_not_matter_stub_parcel(cloud):
    """A deposit event ahead of its parcel record creates the parcel; the record then fills it in."""
    resp = cloud.ingest([birth(0, empty_comps(6)), evt(1, "deposit", c=3, ref="p-early")])
    assert resp.json()["applied"] == 2
    assert cloud.admin_get("/api/v1/parcels/p-early")["status"] == "deposited"
    resp = cloud.ingest([parcel_record(5, "p-early", c=3, waybill="SF1234567890", carrier="SF")])
    assert resp.json()["applied"] == 1
    parcel = cloud.admin_get("/api/v1/parcels/p-early")
    assert parcel["status"] == "deposited" and parcel["waybill"] == "SF1234567890"


def test_deposit_void_cancels_the_parcel(cloud):
    cloud.ingest([parcel_record(1, "p-v", c=4), birth(0, empty_comps(6)), evt(1, "deposit_void", c=4, ref="p-v")])
    parcel = cloud.admin_get("/api/v1/parcels/p-v")
    assert parcel["status"] == "cancelled" and parcel["deposited_at"] is None
    assert [t["status"] for t in parcel["timeline"]][-1] == "cancelled"
    assert comp(cloud, "l1", 4)["state"] == "empty"


def test_bad_items_rejected_good_items_applied(cloud):
    items = [
        parcel_record(1, "p-good", c=1),
        evt(1, "door", c=99, open=True),                               # compartment out of range
        {"src": "l1", "boot": BOOT, "seq": 2, "kind": "teleport", "rx": 1.0, "body": {}},  # unknown kind
        evt(3, "deposit", c=1, ref="p-good"),
        gw(2, "parcel", {"ref": "x" * 300, "locker": "l1", "c": 1}),    # over-long ref
        {"src": "l1", "boot": BOOT, "seq": 4, "kind": "evt", "rx": 1.0,
         "body": {"v": 2, "boot": BOOT, "seq": 4, "ts": 0, "mono": 1, "type": "door", "c": 1, "open": True}},
        "not an item",
        gw(3, "code", {"ref": "p-good", "locker": "l1", "phone": "13800138000", "code": "12345"}),  # 5 digits
        evt(5, "door", c=1, open=False, src="l7"),                      # locker not registered anywhere
        evt(6, "door", c=1, open=False, src="l9"),                      # locker of the other station
    ]
    resp = cloud.ingest(items)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["applied", "rejected", "rejected", "applied", "rejected", "rejected", "rejected",
                        "rejected", "rejected", "rejected"]
    errors = [r.get("error", "") for r in body["results"]]
    assert errors[1].startswith("bad_field") and "c must be" in errors[1]
    assert errors[2].startswith("unknown_kind")
    assert errors[4].startswith("bad_field") and "ref" in errors[4]
    assert errors[5].startswith("bad_version")
    assert errors[6].startswith("bad_item")
    assert errors[7].startswith("bad_field") and "code" in errors[7]
    assert errors[8].startswith("unknown_locker")
    assert errors[9].startswith("locker_of_other_station")
    assert body["results"][6] == {"src": None, "boot": None, "seq": None, "status": "rejected",
                                  "error": errors[6]}
    assert (body["applied"], body["rejected"]) == (2, 8)
    assert cloud.admin_get("/api/v1/parcels/p-good")["status"] == "deposited"

    from sqlalchemy import select
    from cloud.models import DeadLetter
    with cloud.client.app.state.sessionmaker() as session:
        dead = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    assert len(dead) == 8
    assert dead[0].reason == errors[1] and dead[0].raw["body"]["c"] == 99
    assert dead[4].raw == {"raw": '"not an item"'}
    # the same bad items again: answered the same, stored once
    again = cloud.ingest(items).json()
    assert [r.get("error") for r in again["results"] if r["status"] == "rejected"] == [e for e in errors if e]
    with cloud.client.app.state.sessionmaker() as session:
        assert len(session.scalars(select(DeadLetter)).all()) == 8
    assert cloud.counters()["ingest_rejected"] == 16


def test_a_parcel_record_naming_no_carrier_is_refused_on_its_own(cloud):
    """A parcel record whose carrier is none of the cloud's (an older gateway wrote its desk user's name) is a
    dead letter of its own: no parcel, so no made-up carrier in the statistics or webhooks. A carrier's
    old name still maps to its code."""
    items = [parcel_record(1, "p-desk", c=1, waybill="XX9900003", carrier="投递台"),
             parcel_record(2, "p-zto", c=2, waybill="ZT9900004", carrier="中通"),
             parcel_record(3, "p-nosuch", c=3, waybill="XX9900005", carrier="NOSUCH")]
    body = cloud.ingest(items).json()
    assert [r["status"] for r in body["results"]] == ["rejected", "applied", "rejected"]
    assert body["results"][0]["error"].startswith("unknown_carrier")
    assert body["results"][2]["error"].startswith("unknown_carrier")
    parcels = {p["ref"]: p for p in cloud.admin_get("/api/v1/parcels")}
    assert set(parcels) == {"p-zto"} and parcels["p-zto"]["carrier"] == "ZTO"


def test_locker_payload_of_other_station_not_applied(cloud):
    """A dongcun locker reporting through fengjia's key changes nothing at dongcun."""
    resp = cloud.ingest([birth(0, [{"n": 1, "size": "S", "st": "fault", "door": "open", "occ": True}], src="l9")])
    assert resp.json()["results"][0]["error"].startswith("locker_of_other_station")
    dongcun = next(s for s in cloud.admin_get("/api/v1/stations") if s["id"] != STATION)
    assert dongcun["lockers"][0]["online"] == "unknown"
    assert dongcun["lockers"][0]["compartments"][0]["state"] == "empty"


def test_auth_and_station_checks(cloud):
    items = [evt(1, "door", c=1, open=True)]
    no_auth = cloud.client.post("/api/v1/gateway/ingest", json={"station": STATION, "batch": "b", "items": items})
    assert no_auth.status_code == 401
    wrong = cloud.ingest(items, key="not-a-key-of-anyone-at-all")
    assert wrong.status_code == 401 and "unknown station API key" in wrong.json()["detail"]
    other = cloud.ingest(items, key=OTHER_KEY)
    assert other.status_code == 403 and "another station" in other.json()["detail"]
    unknown = cloud.ingest(items, station="lz-nowhere-99")
    assert unknown.status_code == 404 and "unknown station lz-nowhere-99" in unknown.json()["detail"]
    assert cloud.admin_get("/api/v1/admin/ledger", station=STATION)["events"] == []
    assert cloud.counters()["ingest_auth_failures"] == 3


def test_batch_limits(cloud):
    too_many = [evt(i, "door", c=1, open=i % 2 == 0) for i in range(1, 502)]
    resp = cloud.ingest(too_many)
    assert resp.status_code == 413 and "at most 500" in resp.json()["detail"]
    huge = [gw(1, "parcel", {"ref": "p-1", "locker": "l1", "c": 1, "pad": "x" * (1024 * 1024)})]
    resp = cloud.ingest(huge)
    assert resp.status_code == 413
    not_json = cloud.client.post("/api/v1/gateway/ingest", content=b"{nope",
                                 headers={"Authorization": "Bearer fengjia-station-key-0001"})
    assert not_json.status_code == 422
    no_items = cloud.client.post("/api/v1/gateway/ingest", json={"station": STATION, "batch": "b"},
                                 headers={"Authorization": "Bearer fengjia-station-key-0001"})
    assert no_items.status_code == 422 and "items" in no_items.json()["detail"]
    assert cloud.admin_get("/api/v1/admin/ledger", station=STATION)["events"] == []
    # exactly at the limit is fine
    ok = cloud.ingest([evt(i, "door", c=1, open=i % 2 == 0) for i in range(1, 501)])
    assert ok.status_code == 200 and ok.json()["applied"] == 500


def test_status_tele_and_alarm(cloud):
    tele = {"src": "l1", "boot": BOOT, "seq": 100, "kind": "tele", "rx": time.time(),
            "body": {"v": 1, "boot": BOOT, "ts": 0, "mono": 61000, "up": 61, "heap": 41000, "heap_max": 30000,
                     "rssi": -61, "vin": 12.1, "temp": 41.5, "reset": "power", "outbox": 0, "drops": 0,
                     "errs": 0, "fw": "0.1.0"}}
    online = {"src": "l1", "boot": BOOT, "seq": 101, "kind": "status", "rx": 1764355301.0,
              "body": {"v": 1, "state": "online", "boot": BOOT}}
    lost = {"src": "l1", "boot": BOOT, "seq": 102, "kind": "status", "rx": 1764355400.0,
            "body": {"v": 1, "state": "lost"}}
    alarm = evt(1, "alarm", kind="lock_jam", c=4)
    resp = cloud.ingest([tele, online, alarm, lost])
    assert resp.json()["applied"] == 4, resp.text
    station = next(s for s in cloud.admin_get("/api/v1/stations") if s["id"] == STATION)
    l1 = next(lk for lk in station["lockers"] if lk["id"] == "l1")
    assert (l1["online"], l1["rssi"], l1["vin"], l1["temp"], l1["up"]) == ("lost", -61, 12.1, 41.5, 61)
    # a late "online" from before the "lost" does not bring the locker back
    stale = dict(online, seq=103, rx=1764355350.0)
    cloud.ingest([stale])
    station = next(s for s in cloud.admin_get("/api/v1/stations") if s["id"] == STATION)
    assert next(lk for lk in station["lockers"] if lk["id"] == "l1")["online"] == "lost"
    from sqlalchemy import select
    from cloud.models import Alarm, Telemetry
    with cloud.client.app.state.sessionmaker() as session:
        alarms = session.scalars(select(Alarm)).all()
        assert [(a.locker_id, a.c, a.kind, a.acked) for a in alarms] == [("l1", 4, "lock_jam", False)]
        assert [(t.rssi, t.vin) for t in session.scalars(select(Telemetry)).all()] == [(-61, 12.1)]


def test_birth_and_event_with_same_seq_are_both_kept(cloud):
    """A birth carries its boot's last seq; it must not be mistaken for the event of that seq."""
    resp = cloud.ingest([evt(3, "deposit", c=1, ref="p-s"),
                         birth(3, [{"n": 1, "size": "S", "st": "occupied", "door": "closed", "occ": True,
                                    "ref": "p-s"}])])
    assert [r["status"] for r in resp.json()["results"]] == ["applied", "applied"]


def test_stale_event_does_not_override_newer_birth(cloud):
    comps = empty_comps(6)
    cloud.ingest([birth(10, comps)])
    # an event of the same boot from before the snapshot arrives late
    cloud.ingest([evt(9, "deposit", c=5, ref="p-old")])
    assert comp(cloud, "l1", 5)["state"] == "empty"
    assert cloud.admin_get("/api/v1/parcels/p-old")["status"] == "deposited"
    cloud.ingest([evt(11, "deposit", c=5, ref="p-new")])
    assert comp(cloud, "l1", 5)["ref"] == "p-new"


def test_same_batch_from_two_workers_applies_once(cloud):
    """Two concurrent requests with one batch: the unique key lets each item apply exactly once."""
    items = flow_items("p-race", "111222") + [evt(s, "door", c=3, open=s % 2 == 0) for s in range(5, 40)]
    results: list = []

    def send() -> None:
        results.append(cloud.ingest(items, batch="race"))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status_code for r in results] == [200, 200]
    bodies = [r.json() for r in results]
    assert sum(b["applied"] for b in bodies) == len(items)
    assert sum(b["duplicate"] for b in bodies) == len(items)
    ledger = cloud.admin_get("/api/v1/admin/ledger", station=STATION)
    assert len(ledger["events"]) == len(set(map(tuple, ledger["events"]))) == 39
    assert ledger["parcel_transitions"] == {"preadvised": 1, "deposited": 1, "notified": 1}
    assert len(cloud.admin_get("/api/v1/notifications")) == 1


def test_database_down_answers_503_and_applies_nothing():
    """With the database unreachable the gateway gets 503 (so it keeps its outbox) and health says so."""
    from cloudkit import ADMIN, TestClient, make_settings

    from cloud.app import create_app
    from simulator.net import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    with TestClient(create_app(make_settings(url, migrate_on_start=False))) as client:
        resp = client.post("/api/v1/gateway/ingest", json={"station": STATION, "batch": "b", "items": []},
                           headers={"Authorization": "Bearer fengjia-station-key-0001"})
        assert resp.status_code == 503 and "send the batch again" in resp.json()["detail"]
        health = client.get("/api/v1/health").json()
        assert (health["status"], health["db"]) == ("degraded", "unreachable")
        assert health["counters"]["ingest_db_errors"] == 1
        page = client.get("/", headers={"Authorization": f"Bearer {ADMIN}"})
        assert page.status_code == 503


def test_odd_values_rejected_per_item(cloud):
    """NaN, NUL characters and huge numbers reject only their own item and are kept as dead letters."""
    tele = ('{"src":"l1","boot":"5f0c3a9e","seq":9,"kind":"tele","rx":1.0,"body":{"v":1,"boot":"5f0c3a9e",'
            '"ts":0,"mono":1,"vin":NaN}}')
    nul = '{"src":"gw","boot":"a1b2c3d4","seq":3,"kind":"parcel","rx":1.0,"body":{"ref":"p-1","locker":"l1","c":1,' \
          '"waybill":"A\\u0000B"}}'
    huge = '{"src":"l1","boot":"5f0c3a9e","seq":99999999999999999999999,"kind":"tele","rx":1.0,"body":{}}'
    good = '{"src":"l1","boot":"5f0c3a9e","seq":1,"kind":"evt","rx":1.0,"body":{"v":1,"boot":"5f0c3a9e",' \
           '"seq":1,"ts":0,"mono":1,"type":"door","c":1,"open":true}}'
    raw = f'{{"station":"{STATION}","batch":"odd","items":[{tele},{nul},{huge},{good}]}}'.encode()
    resp = cloud.client.post("/api/v1/gateway/ingest", content=raw,
                             headers={"Authorization": "Bearer fengjia-station-key-0001",
                                      "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "rejected", "rejected", "applied"]
    assert results[0]["error"] == "bad_field: vin must be a number"
    assert results[1]["error"].startswith("bad_field: waybill")
    assert results[2]["error"].startswith("bad_item: seq")
    from sqlalchemy import select
    from cloud.models import DeadLetter
    with cloud.client.app.state.sessionmaker() as session:
        assert len(session.scalars(select(DeadLetter)).all()) == 3


def test_compartment_rows_follow_the_mirror_vectors(cloud):
    """The same vectors the gateway's live view is tested with (tests/vectors/mirror.json, jincun/mirror.py)."""
    import json
    from pathlib import Path

    vectors = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "mirror.json").read_text())["vectors"]
    for i, v in enumerate(vectors):
        boot = f"{0xb0000000 + i:08x}"  # each vector on a fresh boot: its birth sets the state before
        before = {"n": 1, "size": "S", **{k: x for k, x in v["before"].items() if x is not None}}
        resp = cloud.ingest([birth(0, [before], boot=boot, rx=1764355200.5 + i),
                             evt(1, v["evt"]["type"], boot=boot, rx=1764355201.0 + i,
                                 **{k: x for k, x in v["evt"].items() if k != "type"})])
        assert resp.status_code == 200 and resp.json()["rejected"] == 0, (v["name"], resp.text)
        got = comp(cloud, "l1", 1)
        want = {k: v["after"][k] for k in ("st", "door", "occ", "ref")}  # the cloud keeps no found-parcel mark
        assert {"st": got["state"], "door": got["door"], "occ": got["occ"], "ref": got["ref"]} == want, v["name"]
