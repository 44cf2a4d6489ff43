"""Carrier API: pre-advice manifests, status, signed webhooks with retries, fake sign-off flags."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cloudkit import STATION, admin_headers, birth, code_record, empty_comps, evt, parcel_record

from cloud.webhooks import deliver_due


class Receiver:
    """A real HTTP server standing in for the carrier's webhook endpoint; fails the first `fail` posts."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.got = fail, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((dict(self.headers), body))
                code = 503 if outer.fail > 0 else 204
                outer.fail -= 1
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver(fail=2)
    yield r
    r.close()


def make_client(cloud, url: str | None = None, carrier: str = "YTO") -> dict:
    resp = cloud.client.post(f"/api/v1/carriers/{carrier}/clients", json={"name": "yto-api", "webhook_url": url},
                             headers=admin_headers())
    assert resp.status_code == 201, resp.text
    return resp.json()


def manifest(waybills, **extra) -> dict:
    return {"manifest_id": "m-1", "parcels": [{"waybill": w, "station": STATION, "phone": "13800138000",
                                               "name": "王大妈", **extra} for w in waybills]}


def test_manifest_is_idempotent_and_adopted_by_the_locker(cloud):
    c = cloud.client
    key = {"Authorization": f"Bearer {make_client(cloud)['api_key']}"}
    first = c.post("/api/v1/carrier/manifests", json=manifest(["YT7788990011", "YT7788990012"]), headers=key)
    assert first.status_code == 200 and (first.json()["created"], first.json()["existing"]) == (2, 0)
    again = c.post("/api/v1/carrier/manifests", json=manifest(["YT7788990011", "YT7788990012"]), headers=key)
    assert (again.json()["created"], again.json()["existing"]) == (0, 2)
    # the courier brings it to the locker: the gateway's parcel record takes over the pre-advised parcel
    cloud.ingest([parcel_record(1, "p-gw1", waybill="YT7788990011"), birth(0, empty_comps(6), item_seq=0),
                  evt(1, "deposit", c=2, ref="p-gw1")])
    st = c.get("/api/v1/carrier/parcels/YT7788990011", headers=key).json()
    assert (st["ref"], st["status"]) == ("p-gw1", "deposited")
    assert [e["status"] for e in st["timeline"]] == ["preadvised", "deposited"]
    assert len(cloud.admin_get("/api/v1/parcels", waybill="YT7788990011")) == 1
    # another carrier's key sees nothing of it
    sf = {"Authorization": f"Bearer {make_client(cloud, carrier='SF')['api_key']}"}
    assert c.get("/api/v1/carrier/parcels/YT7788990011", headers=sf).status_code == 404


def test_manifest_refuses_bad_input(cloud):
    c = cloud.client
    key = {"Authorization": f"Bearer {make_client(cloud)['api_key']}"}
    cases = [manifest(["YT1"]), manifest(["YT7788990011"], fee_cents=200),
             manifest(["YT7788990011"], fee_cents=200, fee_reason="取件费"),
             manifest(["YT7788990011"], fee_cents=200, fee_reason="代收服务", fee_kind="pickup"),
             manifest(["YT7788990011"], fee_cents=200, fee_reason="送货", fee_kind="tea"),
             {"manifest_id": "m", "parcels": [{"waybill": "YT7788990011", "station": "nowhere", "phone": "138"}]},
             {"manifest_id": "m", "parcels": []}, manifest(["YT7788990011"], name="x" * 65),
             manifest(["YT7788990011"], direction="sideways"), manifest(["YT7788990011"], fee_cents="many")]
    for body in cases:
        assert c.post("/api/v1/carrier/manifests", json=body, headers=key).status_code == 422, body
    ok = c.post("/api/v1/carrier/manifests", json=manifest(["YT7788990099"], fee_cents=300,
                                                           fee_reason="送货上门费", fee_kind="delivery"),
                headers=key)
    assert ok.status_code == 200
    parcel = cloud.admin_get("/api/v1/parcels", waybill="YT7788990099")[0]
    assert (parcel["fee_cents"], parcel["fee_reason"]) == (300, "送货上门费")
    # staff tokens and station keys are not carrier credentials
    assert c.post("/api/v1/carrier/manifests", json=manifest(["YT7788990011"]),
                  headers=admin_headers()).status_code == 403
    assert c.post("/api/v1/carrier/manifests", json=manifest(["YT7788990011"])).status_code == 401


def test_status_webhooks_are_signed_and_retried(cloud, receiver):
    c = cloud.client
    client = make_client(cloud, receiver.url)
    key = {"Authorization": f"Bearer {client['api_key']}"}
    c.post("/api/v1/carrier/manifests", json=manifest(["YT7788990011"]), headers=key)
    factory, counters = c.app.state.sessionmaker, c.app.state.services.counters
    import time
    now = time.time() + 1
    assert deliver_due(factory, counters, base=10, max_attempts=5, now=now) == 0      # 503
    assert deliver_due(factory, counters, base=10, max_attempts=5, now=now) == 0      # backing off: not due
    assert deliver_due(factory, counters, base=10, max_attempts=5, now=now + 10) == 0  # 503 again
    assert deliver_due(factory, counters, base=10, max_attempts=5, now=now + 15) == 0  # next try at +30
    assert deliver_due(factory, counters, base=10, max_attempts=5, now=now + 31) == 1
    assert len(receiver.got) == 3
    headers, body = receiver.got[-1]
    expect = hmac.new(client["webhook_secret"].encode(), headers["X-Jincun-Timestamp"].encode() + b"." + body,
                      hashlib.sha256).hexdigest()
    assert headers["X-Jincun-Signature"] == f"sha256={expect}"
    payload = json.loads(body)
    assert (payload["waybill"], payload["status"], payload["event"]) == ("YT7788990011", "preadvised",
                                                                          "parcel.status")
    assert deliver_due(factory, counters, base=10, max_attempts=5, now=now + 10_000) == 0   # delivered once


def test_gateway_ingest_queues_status_webhooks_for_the_carrier(cloud):
    """A deposit and its code, sent by the gateway, reach the carrier's webhook as deposited then notified; a
    parcel of another carrier sends it nothing."""
    receiver = Receiver(fail=0)
    try:
        _gateway_statuses_reach_the_webhook(cloud, receiver)
    finally:
        receiver.close()


def _gateway_statuses_reach_the_webhook(cloud, receiver) -> None:
    make_client(cloud, receiver.url)
    cloud.ingest([birth(0, empty_comps(6), item_seq=0),
                  parcel_record(1, "p-w1", waybill="YT5550101", carrier="YTO", c=2),
                  parcel_record(2, "p-w2", waybill="SF5550102", carrier="SF", c=3),
                  evt(1, "deposit", c=2, ref="p-w1"), evt(2, "deposit", c=3, ref="p-w2"),
                  code_record(3, "p-w1", "246810")])
    factory, counters = cloud.client.app.state.sessionmaker, cloud.client.app.state.services.counters
    assert deliver_due(factory, counters, base=10, max_attempts=5) == 2
    got = [json.loads(body) for _headers, body in receiver.got]
    assert [(p["waybill"], p["status"]) for p in got if p["status"] in ("deposited", "notified")] == [
        ("YT5550101", "deposited"), ("YT5550101", "notified")]
    assert all(p["waybill"] == "YT5550101" for p in got)


def test_fake_signoff_flags(cloud):
    c = cloud.client
    key = {"Authorization": f"Bearer {make_client(cloud)['api_key']}"}
    c.post("/api/v1/carrier/manifests", json=manifest(["YT7788990011", "YT7788990022"]), headers=key)
    cloud.ingest([parcel_record(1, "p-1", waybill="YT7788990011", c=2),
                  parcel_record(2, "p-2", waybill="YT7788990022", c=3),
                  birth(0, empty_comps(6), item_seq=0),
                  evt(1, "lock", c=2, why="deposit"), evt(2, "door", c=2, open=True),
                  evt(3, "door", c=2, open=False), evt(4, "deposit", c=2, ref="p-1"),
                  code_record(3, "p-1", "111222")])
    # p-1 deposited but never picked up; p-2 never deposited: both "signed" reports are flagged
    one = c.post("/api/v1/carrier/parcels/YT7788990011/signed", json={}, headers=key).json()
    assert one["flagged"] and one["missing"] == ["pickup"]
    two = c.post("/api/v1/carrier/parcels/YT7788990022/signed", json={}, headers=key).json()
    assert two["flagged"] and two["missing"] == ["deposit", "pickup"]
    flags = {f["ref"]: f for f in c.get("/api/v1/flags", headers=admin_headers()).json()}
    ev = flags["p-1"]["evidence"]
    assert [e["seq"] for e in ev["deposit"]] == [4] and [e["open"] for e in ev["door"]] == [True, False]
    # after a real pickup the carrier's report is not flagged
    cloud.ingest([evt(5, "code_ok", cs=[2]), evt(6, "door", c=2, open=True), evt(7, "pickup", c=2, ref="p-1")])
    c.post("/api/v1/carrier/manifests", json=manifest(["YT7788990033"]), headers=key)
    cloud.ingest([parcel_record(4, "p-3", waybill="YT7788990033", c=4), evt(8, "deposit", c=4, ref="p-3"),
                  evt(9, "pickup", c=4, ref="p-3")])
    three = c.post("/api/v1/carrier/parcels/YT7788990033/signed", json={}, headers=key).json()
    assert three == {"waybill": "YT7788990033", "status": "picked_up", "flagged": False, "missing": []}
    csv = c.get("/api/v1/stats/flags/export", params={"fmt": "csv"}, headers=admin_headers())
    assert csv.status_code == 200 and "YT7788990022" in csv.content.decode("utf-8-sig")
    # the statistics page lists both flags to check; a resolved one says so
    resolved = c.post(f"/api/v1/flags/{flags['p-2']['id']}/resolve", json={"reason": "快递员补投，已核实"},
                      headers=admin_headers())
    assert resolved.status_code == 200
    page = c.get("/stats", headers=admin_headers()).text

    def row(ref: str) -> str:
        start = page.rindex("<tr", 0, page.index(f'id="flag-{flags[ref]["id"]}"'))
        return page[start:page.index("</tr>", start)]

    assert "YT7788990022" in row("p-2") and "已处理" in row("p-2") and "flag-open" not in row("p-2")
    assert "YT7788990011" in row("p-1") and "待核查" in row("p-1") and "flag-open" in row("p-1")


def test_new_carrier_and_courier_pin(cloud):
    c = cloud.client
    resp = c.post("/api/v1/carriers", json={"code": "DB", "name_zh": "德邦快递", "name_en": "Deppon"},
                  headers=admin_headers())
    assert resp.status_code == 201
    assert c.post("/api/v1/carriers", json={"code": "DB", "name_zh": "x", "name_en": "x"},
                  headers=admin_headers()).status_code == 409
    resp = c.post("/api/v1/carriers/DB/couriers", json={"name": "李师傅", "phone": "13700000001", "pin": "482100",
                                                         "stations": [STATION]}, headers=admin_headers())
    assert resp.status_code == 201
    gwh = {"Authorization": "Bearer fengjia-station-key-0001"}
    other = {"Authorization": "Bearer dongcun-station-key-0002"}
    ok = c.post("/api/v1/gateway/couriers/verify", json={"phone": "13700000001", "pin": "482100"}, headers=gwh)
    assert ok.json() == {"ok": True, "carrier": "DB", "name": "李师傅"}
    # not allowed at the other station, wrong PIN refused
    assert c.post("/api/v1/gateway/couriers/verify", json={"phone": "13700000001", "pin": "482100"},
                  headers=other).json()["ok"] is False
    assert c.post("/api/v1/gateway/couriers/verify", json={"phone": "13700000001", "pin": "000000"},
                  headers=gwh).json()["ok"] is False
    codes = [c.post("/api/v1/gateway/couriers/verify", json={"phone": "13700000001", "pin": "000000"},
                    headers=gwh).status_code for _ in range(4)]
    assert codes[-1] == 429

