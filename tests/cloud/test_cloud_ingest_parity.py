"""The ingest gives the same rows on SQLite and PostgreSQL: the same batches go to a cloud on each, and every
row of every table the ingest writes is compared (docs/cloud.md, "Ingest: one program on two databases")."""

from __future__ import annotations

import contextlib
import json
import time

from cloudkit import (
    OTHER,
    OTHER_KEY,
    STATION,
    STATION_KEY,
    Cloud,
    TestClient,
    admin_headers,
    birth,
    code_record,
    empty_comps,
    evt,
    gw,
    make_settings,
    parcel_record,
    register,
)
from sqlalchemy import select

from cloud.app import create_app
from cloud.models import (
    Alarm,
    Compartment,
    DeadLetter,
    Event,
    GatewayHealth,
    Locker,
    Notification,
    Parcel,
    ParcelEvent,
    PickupCode,
    Telemetry,
    TelemetryPoint,
    WebhookDelivery,
)

# every table the ingest writes
TABLES = (Event, Locker, Compartment, Parcel, ParcelEvent, PickupCode, Notification, Alarm, GatewayHealth, Telemetry,
          TelemetryPoint, WebhookDelivery, DeadLetter)
# columns the background workers change on their own schedule (the SMS dispatcher, the webhook sender)
WORKER_COLUMNS = {"notifications": {"status", "attempts", "last_error", "sent_at"},
                  "webhook_deliveries": {"status", "attempts", "next_at", "last_error", "delivered_at", "last_status"}}
# an unreachable endpoint: the status webhooks are queued, never delivered
HOOK_URL = "http://127.0.0.1:9/hook"
OTHER_PHONE, THIRD_PHONE = "13900139000", "13700137000"


@contextlib.contextmanager
def _cloud(url: str):
    settings = make_settings(url)
    with TestClient(create_app(settings)) as client:
        register(client, STATION, STATION_KEY, "冯家村便民店", {"l1": 6, "l2": 4})
        register(client, OTHER, OTHER_KEY, "东村党群服务中心", {"l9": 4})
        cloud = Cloud(client=client, settings=settings)
        deadline = time.monotonic() + 15
        while not cloud.counters().get("sweeps") and time.monotonic() < deadline:
            time.sleep(0.02)
        yield cloud


def _batches() -> list[list[dict]]:
    """Batches touching every effect: one-pass batches, one applied item by item (a rejected item in it),
    duplicates and a batch sent twice."""
    tele = {"src": "l1", "boot": "5f0c3a9e", "seq": 3, "kind": "tele", "rx": 1764355262.0,
            "body": {"v": 1, "boot": "5f0c3a9e", "seq": 3, "ts": 1764355262, "mono": 3000, "rssi": -61, "vin": 12.1, "temp": 21.5,
                     "heap": 61000, "outbox": 0, "up": 3600}}
    online = {"src": "l2", "boot": "5f0c3a9e", "seq": 1, "kind": "status", "rx": 1764355201.0,
              "body": {"v": 1, "state": "online", "boot": "5f0c3a9e"}}
    gw_tele = {"outbox_depth": 3, "oldest_unsent_s": 12.5, "uplink": "up", "lockers_online": 2, "lockers_total": 2,
               "cpu_temp": 48.0, "up_s": 7200, "counters": {"uplink_failures": 1}}
    outbound = {"ref": "o-parity-1", "carrier": "yto", "sender_phone": "13912345678", "sender_name": "王大妈",
                "dest": "浙江省杭州市", "weight_g": 4200, "fee_cents": 1620, "fee_reason": "5 kg", "produce": "苹果"}
    fault = {"locker": "l1", "c": 3, "phone": "13800138000", "text": "3号格口打不开", "at": 1764355300}
    handover = {"ref": "p-2", "by": "agent-7", "how": "door_to_door", "at": 1764355400}
    first = [birth(0, empty_comps(6), item_seq=0), birth(0, empty_comps(4), src="l2", item_seq=0), online, tele,
             parcel_record(1, "p-1", c=2, waybill="YT7788990011"),
             parcel_record(2, "p-2", c=3, waybill="ZT5566778899", carrier="ZTO", phone=OTHER_PHONE),
             evt(4, "deposit", c=2, ref="p-1"), evt(5, "deposit", c=3, ref="p-2"), evt(6, "deposit", c=4, ref="p-3"),
             code_record(3, "p-1", "123456"), code_record(4, "p-2", "654321", phone=OTHER_PHONE),
             gw(5, "gw_tele", gw_tele), gw(6, "outbound", outbound), gw(7, "fault_report", fault),
             evt(7, "door", c=1, open=True), evt(8, "alarm", c=1, kind="door_ajar")]
    second = [evt(9, "code_ok", cs=[2]), evt(10, "door", c=2, open=True), evt(11, "pickup", c=2, ref="p-1"),
              evt(6, "deposit", c=4, ref="p-3"), gw(8, "handover", handover), evt(12, "deposit_void", c=4, ref="p-3"),
              parcel_record(9, "p-4", c=5, waybill="YT7788990044"), evt(13, "deposit", c=5, ref="p-4"),
              code_record(10, "p-4", "222333")]
    # an event of a locker the station does not have: rejected, so this batch goes item by item
    third = [parcel_record(11, "p-5", c=6, phone=THIRD_PHONE), evt(14, "deposit", c=6, ref="p-5"),
             evt(1, "door", c=1, open=True, src="l9"), code_record(12, "p-5", "777888", phone=THIRD_PHONE),
             evt(15, "pickup", c=3, ref="p-2"), gw(13, "outbound", {**outbound, "ref": "p-1"}),
             evt(1, "deposit", c=1, src="l2", ref="p-6")]
    # a pickup alone: its recipient's codes are found through the parcel, not through a record
    fourth = [evt(16, "door", c=5, open=True), evt(17, "pickup", c=5, ref="p-4")]
    return [first, second, third, fourth, third]


def _run(cloud: Cloud) -> list:
    c = cloud.client
    resp = c.post("/api/v1/carriers/YTO/clients", json={"name": "yto-api", "webhook_url": HOOK_URL},
                  headers=admin_headers())
    assert resp.status_code == 201, resp.text
    key = {"Authorization": f"Bearer {resp.json()['api_key']}"}
    manifest = {"manifest_id": "m-1", "parcels": [{"waybill": w, "station": STATION, "phone": "13800138000",
                                                   "name": "王大妈"} for w in ("YT7788990011", "YT7788990012")]}
    assert c.post("/api/v1/carrier/manifests", json=manifest, headers=key).status_code == 200
    answers = []
    for i, items in enumerate(_batches()):
        resp = cloud.ingest(items, batch=f"parity-{i}")
        assert resp.status_code == 200, resp.text
        answers.append(resp.json())
    return answers


def _rows(cloud: Cloud, since: float) -> dict[str, list[str]]:
    """Every row of the ingest's tables, normalised: no surrogate ids, parcels named by ref, a wall-clock time
    of this run as "now", JSON values parsed, rows sorted."""
    until = time.time() + 1

    def plain(value):
        if isinstance(value, float) and since <= value <= until:
            return "now"
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    with cloud.client.app.state.sessionmaker() as session:
        refs = dict(session.execute(select(Parcel.id, Parcel.ref)).all())
        out = {}
        for model in TABLES:
            table = model.__table__
            skip = WORKER_COLUMNS.get(table.name, set()) | {"id", "client_id"}
            rows = []
            for row in session.execute(select(table)).mappings():
                values = {k: plain(v) for k, v in row.items() if k not in skip}
                if "parcel_id" in values:
                    values["parcel_id"] = refs[values["parcel_id"]]
                rows.append(json.dumps(values, sort_keys=True, ensure_ascii=False, default=str))
            out[table.name] = sorted(rows)
    return out


def test_sqlite_and_postgresql_write_the_same_rows(tmp_path, pg_url):
    since = time.time() - 1
    found = {}
    for name, url in (("sqlite", f"sqlite:///{tmp_path}/cloud.db"), ("postgresql", pg_url)):
        with _cloud(url) as cloud:
            answers = _run(cloud)
            found[name] = (answers, _rows(cloud, since))
    (lite_answers, lite), (pg_answers, pg) = found["sqlite"], found["postgresql"]
    assert lite_answers == pg_answers
    # the batches did what they are meant to: one applied item by item, then sent again as duplicates
    assert [a["rejected"] for a in lite_answers] == [0, 0, 2, 0, 2]
    assert lite_answers[4]["applied"] == 0
    assert all(lite[t] for t in ("parcel_events", "pickup_codes", "notifications", "alarms", "gateway_health",
                                 "telemetry", "telemetry_points", "webhook_deliveries", "dead_letters"))
    for table in lite:
        assert lite[table] == pg[table], table
