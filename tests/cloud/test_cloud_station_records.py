"""Station records the gateway makes itself (§5.1): gw_tele, outbound, handover, fault_report."""

from __future__ import annotations

import time

from cloudkit import OTHER, STATION, admin_headers, birth, code_record, empty_comps, evt, gw, parcel_record
from sqlalchemy import select

from cloud.models import Alarm, DeadLetter, GatewayHealth, Parcel, TelemetryPoint


def _statuses(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [r["status"] for r in resp.json()["results"]]


def _errors(resp) -> list[str]:
    return [r.get("error", "") for r in resp.json()["results"]]


def _session(cloud):
    return cloud.client.app.state.sessionmaker()


def tele_body(**over) -> dict:
    """A gw_tele body shaped as the gateway's tele_body() makes it (extra `broker` field included)."""
    body = {"outbox_depth": 37, "oldest_unsent_s": 412.5, "uplink": "up", "broker": "up", "lockers_online": 1,
            "lockers_total": 2, "cpu_temp": 51.2, "up_s": 86400,
            "counters": {"rejected_payloads": 3, "uplink_failures": 9, "disk_full": 0}}
    return {**body, **over}


def outbound_body(ref: str = "o-3fa9c1d2e4b5", **over) -> dict:
    body = {"ref": ref, "carrier": "YTO", "sender_phone": "13912345678", "sender_name": "王大妈",
            "dest": "浙江省杭州市西湖区文三路 90 号", "weight_g": 4200, "fee_cents": 1620,
            "fee_reason": "5 kg: 1000 + 4 x 200, produce -10%", "produce": "苹果"}
    return {**body, **over}


def fault_body(**over) -> dict:
    body = {"locker": "l1", "c": 3, "phone": "13800138000", "text": "3号格口打不开，取件码正确", "at": 1764355300}
    return {**body, **over}


# ---- gw_tele ---------------------------------------------------------------------------------

def test_gw_tele_sets_gateway_health_and_history(cloud):
    now = time.time()
    resp = cloud.ingest([gw(1, "gw_tele", tele_body(), rx=now - 120)])
    assert _statuses(resp) == ["applied"]
    gws = cloud.admin_get("/api/v1/gateways")
    assert len(gws) == 1
    g = gws[0]
    assert g["station_id"] == STATION and g["outbox_depth"] == 37 and g["oldest_unsent_s"] == 412.5
    assert g["uplink"] == "up" and (g["lockers_online"], g["lockers_total"]) == (1, 2)
    assert g["cpu_temp"] == 51.2 and g["up_s"] == 86400 and g["counters"]["uplink_failures"] == 9
    assert g["at"] == now - 120 and g["stale"] is False

    # a newer report replaces the latest values; an older one arriving late only joins the history
    resp = cloud.ingest([gw(2, "gw_tele", tele_body(outbox_depth=0, oldest_unsent_s=None, uplink="down",
                                                    cpu_temp=None), rx=now - 60),
                         gw(3, "gw_tele", tele_body(outbox_depth=999), rx=now - 600)])
    assert _statuses(resp) == ["applied", "applied"]
    g = cloud.admin_get("/api/v1/gateways")[0]
    assert g["outbox_depth"] == 0 and g["oldest_unsent_s"] is None and g["uplink"] == "down"
    assert g["cpu_temp"] is None and g["at"] == now - 60
    assert cloud.counters().get("stale_gw_tele") == 1

    with _session(cloud) as s:
        depth = s.execute(select(TelemetryPoint.at, TelemetryPoint.value).where(
            TelemetryPoint.station_id == STATION, TelemetryPoint.measurement == "gw_outbox")
            .order_by(TelemetryPoint.at)).all()
        uplink = s.scalars(select(TelemetryPoint.value).where(TelemetryPoint.measurement == "gw_uplink")
                           .order_by(TelemetryPoint.at)).all()
    assert [(a, v) for a, v in depth] == [(now - 600, 999.0), (now - 120, 37.0), (now - 60, 0.0)]
    assert uplink == [1.0, 1.0, 0.0]

    # a replay of the whole batch changes nothing
    resp = cloud.ingest([gw(2, "gw_tele", tele_body(outbox_depth=0, oldest_unsent_s=None, uplink="down",
                                                    cpu_temp=None), rx=now - 60),
                         gw(3, "gw_tele", tele_body(outbox_depth=999), rx=now - 600)])
    assert _statuses(resp) == ["duplicate", "duplicate"]
    with _session(cloud) as s:
        assert len(s.scalars(select(TelemetryPoint).where(TelemetryPoint.measurement == "gw_outbox")).all()) == 3
        assert s.get(GatewayHealth, STATION).outbox_depth == 0


def test_gw_tele_stale_after_silence(cloud):
    old = time.time() - cloud.settings.stale_seconds - 100
    assert _statuses(cloud.ingest([gw(1, "gw_tele", tele_body(), rx=old)])) == ["applied"]
    assert cloud.admin_get("/api/v1/gateways")[0]["stale"] is True


def test_gw_tele_bad_fields_are_rejected(cloud):
    bad = [tele_body(lockers_online=3, lockers_total=2), tele_body(uplink="maybe"), tele_body(outbox_depth=-1),
           tele_body(outbox_depth="37"), tele_body(counters={"x": -1}),
           tele_body(counters={f"c{i}": 1 for i in range(65)}), tele_body(counters={"a b": 1}),
           {k: v for k, v in tele_body().items() if k != "up_s"}, tele_body(cpu_temp="hot")]
    resp = cloud.ingest([gw(i + 1, "gw_tele", b) for i, b in enumerate(bad)])
    assert _statuses(resp) == ["rejected"] * len(bad)
    errors = _errors(resp)
    assert all(e.startswith("bad_field: ") for e in errors), errors
    assert "lockers_online must not exceed lockers_total" in errors[0]
    assert "up_s" in errors[7]
    assert cloud.admin_get("/api/v1/gateways") == []
    with _session(cloud) as s:
        assert len(s.scalars(select(DeadLetter)).all()) == len(bad)
    assert cloud.counters()["ingest_rejected"] == len(bad)


# ---- outbound --------------------------------------------------------------------------------

def test_outbound_becomes_outbound_parcel_with_audited_fee(cloud):
    now = time.time()
    resp = cloud.ingest([gw(1, "outbound", outbound_body(), rx=now - 30),
                         gw(2, "outbound", outbound_body("o-000000000002", produce="", fee_cents=0, fee_reason="",
                                                         carrier="zto"), rx=now - 20)])
    assert _statuses(resp) == ["applied", "applied"]
    p = cloud.admin_get("/api/v1/parcels/o-3fa9c1d2e4b5")
    assert p["direction"] == "outbound" and p["station_id"] == STATION and p["status"] == "taken_in"
    assert p["fee_cents"] == 1620 and p["fee_reason"] == "5 kg: 1000 + 4 x 200, produce -10%"
    assert p["carrier"] == "YTO" and p["phone"] == "13912345678"
    assert [e["status"] for e in p["timeline"]] == ["taken_in"] and p["timeline"][0]["at"] == now - 30
    assert cloud.admin_get("/api/v1/parcels/o-000000000002")["carrier"] == "ZTO", "a carrier is its code"
    plain = cloud.admin_get("/api/v1/parcels/o-000000000002")
    assert plain["fee_cents"] == 0 and plain["fee_reason"] is None
    with _session(cloud) as s:
        row = s.scalar(select(Parcel).where(Parcel.ref == "o-3fa9c1d2e4b5"))
        assert (row.sender_name, row.dest, row.weight_g) == ("王大妈", "浙江省杭州市西湖区文三路 90 号", 4200)
        assert row.produce is True and row.produce_name == "苹果"
        assert s.scalar(select(Parcel.produce).where(Parcel.ref == "o-000000000002")) is False

    # farm produce feeds the county statistics once the carrier collected it; the parcel without produce never
    def produce() -> list:
        rows = cloud.client.get("/api/v1/stats/produce", headers=admin_headers()).json()
        return [(r["carrier"], r["parcels"], r["weight_kg"]) for r in rows]
    assert produce() == [], "still at the station counter: not sent yet"
    resp = cloud.ingest([gw(3, "collected", {"ref": "o-3fa9c1d2e4b5", "carrier": "YTO", "by": "c-yto",
                                             "waybill": "YT9988776655", "at": int(now - 10)}),
                         gw(4, "collected", {"ref": "o-000000000002", "carrier": "ZTO", "by": "c-zto",
                                             "at": int(now - 5)})])
    assert _statuses(resp) == ["applied", "applied"]
    assert produce() == [("YTO", 1, 4.2)]
    p = cloud.admin_get("/api/v1/parcels/o-3fa9c1d2e4b5")
    assert p["status"] == "collected" and p["waybill"] == "YT9988776655"
    vols = cloud.client.get("/api/v1/stats/volumes", params={"by": "carrier", "days": 7},
                            headers=admin_headers()).json()
    assert sum(r["outbound"] for r in vols) == 2

    resp = cloud.ingest([gw(1, "outbound", outbound_body(), rx=now - 30)])
    assert _statuses(resp) == ["duplicate"]
    p2 = cloud.admin_get("/api/v1/parcels/o-3fa9c1d2e4b5")
    assert p2["timeline"] == p["timeline"] and p2["fee_cents"] == 1620
    assert [e["status"] for e in p2["timeline"]] == ["taken_in", "collected"]


def test_outbound_bad_fields_are_rejected(cloud):
    bad = [outbound_body("o-1", sender_name="长" * 65), outbound_body("o-2", dest="x" * 121),
           outbound_body("o-3", fee_reason=""), outbound_body("o-4", weight_g=0),
           outbound_body("o-5", sender_phone="call me"), outbound_body("o-6", produce="p" * 41),
           outbound_body("o-7", fee_cents=-5), outbound_body("o 8"), outbound_body("o-9", sender_name="a\nb"),
           {k: v for k, v in outbound_body("o-10").items() if k != "dest"}]
    resp = cloud.ingest([gw(i + 1, "outbound", b) for i, b in enumerate(bad)])
    assert _statuses(resp) == ["rejected"] * len(bad)
    errors = _errors(resp)
    assert all(e.startswith("bad_field: ") for e in errors), errors
    assert "longer than 64" in errors[0] and "longer than 120" in errors[1] and "fee_reason" in errors[2]
    # a ref already used by another parcel is refused, the first parcel stays as it was
    resp = cloud.ingest([parcel_record(20, "p-7f3a1c"), gw(21, "outbound", outbound_body("p-7f3a1c"))])
    assert _statuses(resp) == ["applied", "rejected"] and "already used" in _errors(resp)[1]
    assert cloud.admin_get("/api/v1/parcels/p-7f3a1c")["direction"] == "inbound"
    for i in range(1, 11):
        assert cloud.client.get(f"/api/v1/parcels/o-{i}", headers=admin_headers()).status_code == 404


def _dead_reasons(cloud) -> list[str]:
    with _session(cloud) as s:
        return [d.reason for d in s.scalars(select(DeadLetter).order_by(DeadLetter.id))]


def test_outbound_naming_no_carrier_is_refused_on_its_own(cloud):
    """An outbound record whose carrier is none of the cloud's is a dead letter of its own; an old name maps to
    its code."""
    resp = cloud.ingest([gw(1, "outbound", outbound_body("o-desk", carrier="投递台")),
                         gw(2, "outbound", outbound_body("o-zto", carrier="中通"))])
    assert _statuses(resp) == ["rejected", "applied"]
    assert _errors(resp)[0].startswith("unknown_carrier")
    assert cloud.client.get("/api/v1/parcels/o-desk", headers=admin_headers()).status_code == 404
    assert cloud.admin_get("/api/v1/parcels/o-zto")["carrier"] == "ZTO"
    assert [r[:15] for r in _dead_reasons(cloud)] == ["unknown_carrier"]


def test_collected_naming_no_carrier_is_refused_on_its_own(cloud):
    """A courier's collection naming no carrier of the cloud changes nothing; 中通 is ZTO and collects."""
    now = int(time.time())
    resp = cloud.ingest([gw(1, "outbound", outbound_body("o-a", carrier="ZTO")),
                         gw(2, "outbound", outbound_body("o-b", carrier="ZTO")),
                         gw(3, "collected", {"ref": "o-a", "carrier": "NOSUCH", "by": "c-x", "at": now - 5}),
                         gw(4, "collected", {"ref": "o-b", "carrier": "中通", "by": "c-zto", "at": now - 5})])
    assert _statuses(resp) == ["applied", "applied", "rejected", "applied"]
    assert _errors(resp)[2].startswith("unknown_carrier")
    assert cloud.admin_get("/api/v1/parcels/o-a")["status"] == "taken_in"
    b = cloud.admin_get("/api/v1/parcels/o-b")
    assert b["status"] == "collected" and b["carrier"] == "ZTO"
    assert [r[:15] for r in _dead_reasons(cloud)] == ["unknown_carrier"]


# ---- handover --------------------------------------------------------------------------------

def _deposited(cloud, ref: str = "p-7f3a1c", code: str = "482913") -> None:
    resp = cloud.ingest([birth(0, empty_comps(6)), parcel_record(1, ref), evt(1, "deposit", c=2, ref=ref),
                         code_record(2, ref, code)])
    assert _statuses(resp) == ["applied"] * 4


def test_handover_records_delivered_door_with_who_and_when(cloud):
    _deposited(cloud)
    assert len(cloud.client.post("/api/v1/codes/lookup", json={"station": STATION, "code": "482913"},
                                 headers=admin_headers()).json()) == 1
    handover = gw(3, "handover", {"ref": "p-7f3a1c", "by": "agent-wang", "at": 1764360000, "how": "door_to_door"})
    assert _statuses(cloud.ingest([handover])) == ["applied"]
    p = cloud.admin_get("/api/v1/parcels/p-7f3a1c")
    assert p["status"] == "delivered_door"
    door = [e for e in p["timeline"] if e["status"] == "delivered_door"]
    assert len(door) == 1 and door[0]["at"] == 1764360000 and "agent-wang" in door[0]["source"]
    # the parcel is out of the locker: its pickup code opens nothing any more
    assert cloud.client.post("/api/v1/codes/lookup", json={"station": STATION, "code": "482913"},
                             headers=admin_headers()).json() == []

    assert _statuses(cloud.ingest([handover])) == ["duplicate"]
    assert cloud.admin_get("/api/v1/parcels/p-7f3a1c")["timeline"] == p["timeline"]


def test_handover_refusals(cloud):
    _deposited(cloud)
    resp = cloud.ingest([gw(10, "outbound", outbound_body("o-1"))])
    assert _statuses(resp) == ["applied"]
    other = cloud.ingest([parcel_record(1, "p-dong", locker="l9")], station=OTHER, key="dongcun-station-key-0002")
    assert _statuses(other) == ["applied"]
    bad = [{"ref": "p-7f3a1c", "by": "agent-wang", "at": 1764360000, "how": "by_drone"},
           {"ref": "p-7f3a1c", "by": "agent wang!", "at": 1764360000, "how": "door_to_door"},
           {"ref": "p-7f3a1c", "by": "agent-wang", "at": "today", "how": "door_to_door"},
           {"ref": "o-1", "by": "agent-wang", "at": 1764360000, "how": "door_to_door"},
           {"ref": "p-dong", "by": "agent-wang", "at": 1764360000, "how": "door_to_door"}]
    resp = cloud.ingest([gw(11 + i, "handover", b) for i, b in enumerate(bad)])
    assert _statuses(resp) == ["rejected"] * len(bad)
    errors = _errors(resp)
    assert all(e.startswith("bad_field: ") for e in errors), errors
    assert "outbound" in errors[3] and "another station" in errors[4]
    assert cloud.admin_get("/api/v1/parcels/p-7f3a1c")["status"] == "notified"
    assert cloud.admin_get("/api/v1/parcels/p-dong")["status"] == "preadvised"


# ---- fault_report ----------------------------------------------------------------------------

def test_fault_report_becomes_alarm_staff_can_acknowledge(cloud):
    resp = cloud.ingest([gw(1, "fault_report", fault_body()),
                         gw(2, "fault_report", fault_body(c=None, phone="", text="键盘没反应"))])
    assert _statuses(resp) == ["applied", "applied"]
    alarms = cloud.admin_get("/api/v1/alarms", station=STATION)
    reports = sorted((a for a in alarms if a["kind"] == "fault_report"), key=lambda a: a["id"])
    assert [(a["locker_id"], a["c"], a["phone"], a["text"]) for a in reports] == [
        ("l1", 3, "13800138000", "3号格口打不开，取件码正确"), ("l1", None, None, "键盘没反应")]
    assert reports[0]["at"] == 1764355300 and not reports[0]["acked"]

    assert _statuses(cloud.ingest([gw(1, "fault_report", fault_body())])) == ["duplicate"]
    assert len(cloud.admin_get("/api/v1/alarms", station=STATION)) == 2

    acked = cloud.client.post(f"/api/v1/alarms/{reports[0]['id']}/ack", headers=admin_headers())
    assert acked.status_code == 200 and acked.json()["acked"] is True
    still_open = cloud.admin_get("/api/v1/alarms", station=STATION)
    assert [a["id"] for a in still_open] == [reports[1]["id"]]


def test_fault_report_refusals(cloud):
    bad = [fault_body(locker="l7"), fault_body(locker="l9"), fault_body(c=7), fault_body(text="x" * 301),
           fault_body(text=""), fault_body(phone="12ab"), fault_body(c=0), fault_body(at=None)]
    resp = cloud.ingest([gw(i + 1, "fault_report", b) for i, b in enumerate(bad)])
    assert _statuses(resp) == ["rejected"] * len(bad)
    errors = [e.split(":")[0] for e in _errors(resp)]
    assert errors == ["unknown_locker", "locker_of_other_station", "no_such_compartment", "bad_field",
                      "bad_field", "bad_field", "bad_field", "bad_field"]
    assert "longer than 300" in _errors(resp)[3]
    with _session(cloud) as s:
        assert s.scalars(select(Alarm)).all() == []


# ---- a mixed batch, as the gateway's outbox sends it --------------------------------------------

def test_mixed_batch_replayed_changes_nothing(cloud):
    now = time.time()
    items = [birth(0, empty_comps(6)), parcel_record(1, "p-a1"), evt(1, "deposit", c=2, ref="p-a1"),
             gw(2, "gw_tele", tele_body(), rx=now), gw(3, "outbound", outbound_body("o-a2")),
             gw(4, "handover", {"ref": "p-a1", "by": "agent-wang", "at": 1764360000, "how": "door_to_door"}),
             gw(5, "fault_report", fault_body()), gw(6, "handover", {"ref": "p-late", "by": "agent-wang",
                                                                  "at": 1764360001, "how": "door_to_door"})]
    first = cloud.ingest(items, batch="mixed-1")
    assert _statuses(first) == ["applied"] * len(items)
    # a handover for a parcel the cloud had not heard of yet is kept, on a parcel created for it
    late = cloud.admin_get("/api/v1/parcels/p-late")
    assert late["status"] == "delivered_door" and cloud.counters().get("handover_unknown_parcel") == 1

    def snapshot():
        with _session(cloud) as s:
            return (sorted((p.ref, p.status, p.direction, p.fee_cents) for p in s.scalars(select(Parcel))),
                    sorted((a.kind, a.text) for a in s.scalars(select(Alarm))),
                    s.get(GatewayHealth, STATION).at,
                    len(s.scalars(select(TelemetryPoint)).all()))

    before = snapshot()
    again = cloud.ingest(items, batch="mixed-1")
    assert _statuses(again) == ["duplicate"] * len(items)
    assert snapshot() == before


# ---- maintenance dashboard -------------------------------------------------------------------

def test_ops_page_shows_gateway_health_and_fault_report(cloud):
    now = time.time()
    resp = cloud.ingest([gw(1, "gw_tele", tele_body(outbox_depth=4321, oldest_unsent_s=1800), rx=now - 5),
                         gw(2, "fault_report", fault_body(text="5号格口门锁坏了"))])
    assert _statuses(resp) == ["applied", "applied"]
    resp = cloud.ingest([gw(1, "gw_tele", tele_body(uplink="down", outbox_depth=12),
                            rx=now - cloud.settings.stale_seconds - 60)],
                        station=OTHER, key="dongcun-station-key-0002")
    assert _statuses(resp) == ["applied"]

    page = cloud.client.get("/ops", headers=admin_headers())
    assert page.status_code == 200
    html = page.text
    row = html[html.index(f'id="gw-{STATION}"'):].split("</tr>")[0]
    assert 'data-health="online"' in row and 'data-uplink="up"' in row
    assert ">4321 条<" in row and ">30 分钟<" in row and "1/2" in row
    other = html[html.index(f'id="gw-{OTHER}"'):].split("</tr>")[0]
    # a gateway not heard from says so plainly, and is not shown as connected by its last word
    minutes = cloud.settings.stale_seconds // 60
    assert 'data-health="stale"' in other and 'data-uplink="quiet"' in other and ">12 条<" in other
    assert f"超过 {minutes} 分钟没有消息" in other and "已连接" not in other and "数据陈旧" not in html
    alarms = html[html.index('id="alarms"'):html.index('id="gateways"')]
    assert "5号格口门锁坏了" in alarms and "村民报修" in alarms and "13800138000" in alarms

    en = cloud.client.get("/ops?lang=en", headers=admin_headers()).text
    assert "Station gateways" in en and "villager&#39;s fault report" in en

    alarm_id = cloud.admin_get("/api/v1/alarms", station=STATION)[0]["id"]
    done = cloud.client.post(f"/ops/alarms/{alarm_id}/ack", headers=admin_headers(), follow_redirects=False)
    assert done.status_code == 303
    after = cloud.client.get("/ops", headers=admin_headers()).text
    assert "5号格口门锁坏了" not in after[after.index('id="alarms"'):after.index('id="gateways"')]


def _status(src: str, seq: int, state: str, rx: float) -> dict:
    return {"src": src, "boot": "a1b2c3d4", "seq": seq, "kind": "status", "rx": rx,
            "body": {"v": 1, "state": state, **({"boot": "5f0c3a9e"} if state == "online" else {})}}


def test_ops_page_lists_the_urgent_first_and_filters_by_state(cloud):
    now = time.time()
    stale = now - cloud.settings.stale_seconds - 60
    assert _statuses(cloud.ingest([_status("l1", 1, "online", now), _status("l2", 1, "lost", now),
                                   gw(3, "gw_tele", tele_body(), rx=now)])) == ["applied"] * 3
    assert _statuses(cloud.ingest([_status("l9", 1, "online", stale)], station=OTHER,
                                  key="dongcun-station-key-0002")) == ["applied"]

    html = cloud.client.get("/ops", headers=admin_headers()).text
    rows = [f'id="row-{STATION}-l2"', f'id="row-{OTHER}-l9"', f'id="row-{STATION}-l1"']
    assert [html.index(r) for r in rows] == sorted(html.index(r) for r in rows)   # offline, stale, online
    chips = html[html.index('id="locker-filters"'):].split("</p>")[0]
    for state, count in (("all", 3), ("offline", 1), ("stale", 1), ("unknown", 0), ("online", 1)):
        chip = chips[chips.index(f'id="locker-filter-{state}"'):].split("</a>")[0]
        assert f"<b>{count}</b>" in chip, (state, chip)
    gws = html[html.index('id="gateways"'):html.index('id="health"')]
    assert gws.index(f'id="gw-{OTHER}"') < gws.index(f'id="gw-{STATION}"')   # never reported before online
    # the overview says the same of a locker gone quiet, not the green 在线 of its last status
    overview = cloud.client.get("/", headers=admin_headers()).text
    l9 = overview[overview.index(f'id="locker-{OTHER}-l9"'):].split("</h3>")[0]
    assert 'data-health="stale"' in l9 and "分钟没有消息" in l9 and "在线" not in l9

    offline = cloud.client.get("/ops?health=offline", headers=admin_headers()).text
    assert f'id="row-{STATION}-l2"' in offline and "row-" + OTHER not in offline and f"row-{STATION}-l1" not in offline
    assert 'id="locker-filter-offline" class="chip on"' in offline
    assert f'id="gw-{STATION}"' in offline and f'id="gw-{OTHER}"' in offline     # the other table is not filtered
    none = cloud.client.get("/ops?health=unknown", headers=admin_headers()).text
    assert "locker-row" not in none and "没有这个状态的项。" in none

    gw_unknown = cloud.client.get("/ops?gw=unknown&health=stale&lang=en", headers=admin_headers()).text
    assert f'id="gw-{OTHER}"' in gw_unknown and f'id="gw-{STATION}"' not in gw_unknown
    assert f'id="row-{OTHER}-l9"' in gw_unknown and f"row-{STATION}-l2" not in gw_unknown
    # each chip keeps the other table's filter and the language
    assert 'href="/ops?gw=unknown&amp;health=offline&amp;lang=en"' in gw_unknown
    assert 'href="/ops?health=stale&amp;gw=online&amp;lang=en"' in gw_unknown

    bad = cloud.client.get("/ops?health=broken", headers=admin_headers())
    assert bad.status_code == 200 and "没有这个筛选条件，已显示全部。" in bad.text
    assert all(r in bad.text for r in rows)


def test_ops_page_shows_a_retired_locker_as_retired_and_no_alarm_counts_it(cloud):
    """A locker retired in the cloud is 已停用 on /ops, not offline: no offline chip, no offline alert, and the
    gateway's lockers figure leaves it out (the gateway still counts it)."""
    from cloud import alerts
    now = time.time()
    quiet = now - cloud.settings.alert_offline_minutes * 60 - 120
    assert _statuses(cloud.ingest([_status("l1", 1, "online", now), _status("l2", 1, "lost", quiet),
                                   gw(3, "gw_tele", tele_body(lockers_online=1, lockers_total=2), rx=now)])) == [
        "applied"] * 3

    def offline_alerts() -> list:
        with _session(cloud) as s:
            return [c for c in alerts.conditions(s, cloud.settings, time.time(), set()) if c.kind == "locker_offline"]

    def chip(html: str, state: str) -> str:
        chips = html[html.index('id="locker-filters"'):].split("</p>")[0]
        return chips[chips.index(f'id="locker-filter-{state}"'):].split("</a>")[0]

    html = cloud.client.get("/ops", headers=admin_headers()).text
    assert 'data-health="offline"' in html[html.index(f'id="row-{STATION}-l2"'):].split("</tr>")[0]
    assert [c.locker_id for c in offline_alerts()] == ["l2"]

    r = cloud.client.post(f"/api/v1/admin/stations/{STATION}/lockers/l2/retire", json={"reason": "拆走了"},
                          headers=admin_headers())
    assert r.status_code == 200, r.text

    html = cloud.client.get("/ops", headers=admin_headers()).text
    row = html[html.index(f'id="row-{STATION}-l2"'):].split("</tr>")[0]
    assert 'data-health="retired"' in row and ">已停用<" in row and "离线" not in row
    assert "<b>0</b>" in chip(html, "offline") and "<b>0</b>" in chip(html, "stale")
    assert "<b>1</b>" in chip(html, "retired") and "<b>1</b>" in chip(html, "online")
    # listed after the lockers in service, the most urgent first
    assert html.index(f'id="row-{STATION}-l1"') < html.index(f'id="row-{STATION}-l2"')
    gw_row = html[html.index(f'id="gw-{STATION}"'):].split("</tr>")[0]
    assert '<td class="num lockers-online">1/1</td>' in gw_row
    assert "row-" + STATION + "-l2" not in cloud.client.get("/ops?health=offline", headers=admin_headers()).text
    en = cloud.client.get("/ops?lang=en", headers=admin_headers()).text
    assert ">retired<" in en[en.index(f'id="row-{STATION}-l2"'):].split("</tr>")[0]
    g = next(g for g in cloud.admin_get("/api/v1/gateways") if g["station_id"] == STATION)
    assert (g["lockers_online"], g["lockers_total"]) == (1, 1)
    # a gateway that no longer counts it (enrolled again since) is not taken down twice
    assert _statuses(cloud.ingest([gw(4, "gw_tele", tele_body(lockers_online=1, lockers_total=1),
                                      rx=now + 1)])) == ["applied"]
    g = next(g for g in cloud.admin_get("/api/v1/gateways") if g["station_id"] == STATION)
    assert (g["lockers_online"], g["lockers_total"]) == (1, 1)
    assert offline_alerts() == []
    locker_page = cloud.client.get(f"/ops/{STATION}/l2", headers=admin_headers()).text
    assert 'id="locker-health">已停用<' in locker_page


# ---- firmware update and courier events (protocol §3.7, §4.1) ---------------------------------

def test_firmware_and_courier_events_are_held_and_bad_ones_refused(cloud):
    resp = cloud.ingest([birth(0, empty_comps(12)),
                         evt(1, "courier", cs=[2, 5]),
                         evt(2, "fw", ver="0.2.0", result="staged"),
                         evt(3, "fw", ver="0.2.0", result="exploded"),
                         evt(4, "courier", cs=["two"])])
    assert _statuses(resp) == ["applied", "applied", "applied", "rejected", "rejected"]
    assert all(e.startswith("bad_field") for e in _errors(resp)[3:])
    keys = {tuple(k) for k in cloud.admin_get("/api/v1/admin/ledger", station=STATION)["events"]}
    assert {("l1", "5f0c3a9e", 1), ("l1", "5f0c3a9e", 2)} <= keys
    with _session(cloud) as s:
        assert s.query(DeadLetter).count() == 2
