"""SMS through the HTTP adapter against a local SMS gateway; failures stay queued and are retried."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cloudkit import TestClient, birth, code_record, empty_comps, evt, make_settings, parcel_record, register
from cloudkit import STATION, STATION_KEY, Cloud

from cloud.app import create_app
from cloud.errors import NotifierError
from cloud.sms import HttpNotifier
from cloud.sms_text import Style


class SmsGateway:
    """A small HTTP SMS gateway standing in for the carrier, which cannot exist here."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.auth: list[str | None] = []
        self.failing = False
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if gateway.failing:
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"carrier busy")
                    return
                gateway.received.append(json.loads(data))
                gateway.auth.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SmsGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_sms_text():
    style = Style(signature="进村", public_url="https://jc.example.cn")
    msg = style.pickup(carrier="顺丰速运", station="冯家村便民店", locker="l1", c=3, code="123456")
    assert msg.text == "【进村】顺丰速运包裹已到冯家村便民店 1号柜 3号格口，取件码 123456，查件 https://jc.example.cn/m"
    assert dict(msg.params) == {"carrier": "顺丰速运", "station": "冯家村便民店", "box": "1号柜 3号格口", "code": "123456"}


def test_http_notifier_errors():
    with SmsGateway() as gw:
        notifier = HttpNotifier(gw.url, "tok")
        notifier.send("13800138000", "你好")
        assert gw.received == [{"phone": "13800138000", "text": "你好"}] and gw.auth == ["Bearer tok"]
        gw.failing = True
        with pytest.raises(NotifierError, match="503"):
            notifier.send("13800138000", "你好")
        notifier.close()
    dead = HttpNotifier(gw.url, None, timeout=2)
    with pytest.raises(NotifierError, match="unreachable"):
        dead.send("13800138000", "x")
    dead.close()


def test_code_sms_sent_over_http_and_retried(db_url):
    with SmsGateway() as gw:
        gw.failing = True
        settings = make_settings(db_url, sms_adapter="http", sms_http_url=gw.url, sms_http_token="sms-secret",
                                 sms_retry_seconds=0.2)
        with TestClient(create_app(settings)) as client:
            register(client, STATION, STATION_KEY, "冯家村便民店", {"l1": 4})
            cloud = Cloud(client=client, settings=settings)
            # deposited now: a parcel of the helpers' fixed past date is overdue at once, and a sweep that
            # starts after the ingest would queue its return SMS beside the code's
            resp = cloud.ingest([parcel_record(1, "p-sms", c=2), birth(0, empty_comps(4)),
                                 evt(1, "deposit", c=2, ref="p-sms", ts=int(time.time())),
                                 code_record(2, "p-sms", "555666")])
            assert resp.json()["applied"] == 4
            outbox = cloud.admin_get("/api/v1/notifications")
            assert outbox[0]["status"] == "queued" and outbox[0]["attempts"] >= 1
            assert cloud.counters()["sms_errors"] >= 1
            gw.failing = False
            deadline = time.monotonic() + 20
            while cloud.admin_get("/api/v1/notifications")[0]["status"] != "sent":
                assert time.monotonic() < deadline, "queued SMS was never retried"
                time.sleep(0.1)
            assert len(gw.received) == 1
            assert gw.received[0]["phone"] == "13800138000" and "取件码 555666" in gw.received[0]["text"]
            assert gw.auth == ["Bearer sms-secret"]
            assert cloud.counters()["sms_sent"] == 1


class NumberRefusingNotifier:
    """Carrier test adapter: refuses one phone number, delivers the rest."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.delivered: list[str] = []

    def send(self, phone: str, text: str, message=None) -> None:
        if phone == self.bad:
            raise NotifierError("number does not exist")
        self.delivered.append(phone)


def test_one_bad_number_does_not_hold_up_the_outbox(db_url, monkeypatch):
    from cloud import migrate, sms
    from cloud.counters import Counters
    from cloud.models import Notification
    from cloud.storage import make_engine, make_sessionmaker

    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        factory = make_sessionmaker(engine)
        with factory() as session:
            for phone in ("13900000000", "13800000001", "13800000002"):
                session.add(Notification(phone=phone, text="t", status="queued", attempts=0, created_at=time.time()))
            session.commit()
        notifier, counters = NumberRefusingNotifier("13900000000"), Counters()
        assert sms.deliver_pending(factory, notifier, counters) == 2
        assert notifier.delivered == ["13800000001", "13800000002"]
        monkeypatch.setattr(sms, "NOTIFY_MAX_ATTEMPTS", 3)
        sms.deliver_pending(factory, notifier, counters)
        sms.deliver_pending(factory, notifier, counters)
        with factory() as session:
            bad = session.query(Notification).filter_by(phone="13900000000").one()
            assert (bad.status, bad.attempts, bad.last_error) == ("failed", 3, "number does not exist")
        assert counters.get("sms_failed") == 1 and counters.get("sms_errors") == 3
    finally:
        engine.dispose()
