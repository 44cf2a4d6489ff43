"""Alarms reach people: one message when an episode starts and one when it ends, by SMS and group robot."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cloudkit import ADMIN, STATION, admin_headers, birth, empty_comps, evt, gw, make_settings, register
from cloudkit import STATION_KEY, TestClient
from pydantic import SecretStr
from sqlalchemy import select

from cloud import alerts
from cloud.app import create_app
from cloud.models import Notification

MAINT = "13912340000"
DUTY = "13700001111"


def _session(cloud):
    return cloud.client.app.state.sessionmaker()


def _sweep(cloud, now: float | None = None, **over) -> dict[str, int]:
    settings = cloud.settings.model_copy(update=over) if over else cloud.settings
    with _session(cloud) as s:
        done = alerts.sweep(s, settings, now=now)
        s.commit()
    return done


def _texts(cloud, phone: str) -> list[str]:
    with _session(cloud) as s:
        return list(s.scalars(select(Notification.text).where(Notification.phone == phone)
                              .order_by(Notification.id)))


def _set_phone(cloud, phone: str | None) -> None:
    r = cloud.client.put(f"/api/v1/stations/{STATION}/maint-phone", json={"phone": phone}, headers=admin_headers())
    assert r.status_code == 200, r.text


def _tele(seq: int, rx: float, vin: float) -> dict:
    body = {"v": 1, "boot": "5f0c3a9e", "ts": int(rx), "mono": seq * 1000, "up": seq, "heap": 40000,
            "vin": vin, "rssi": -60, "temp": 30.0}
    return {"src": "l1", "boot": "5f0c3a9e", "seq": seq, "kind": "tele", "rx": rx, "body": body}


def _gw_tele(seq: int, rx: float, **over) -> dict:
    body = {"outbox_depth": 0, "oldest_unsent_s": None, "uplink": "up", "lockers_online": 2, "lockers_total": 2,
            "cpu_temp": 50.0, "up_s": 100, "counters": {}, **over}
    return gw(seq, "gw_tele", body, rx=rx)


def test_forced_open_is_told_once_and_its_end_once(cloud):
    _set_phone(cloud, MAINT)
    assert cloud.ingest([birth(1, empty_comps(6)), evt(2, "alarm", c=4, kind="forced_open")]).status_code == 200
    assert _sweep(cloud) == {"opened": 1, "closed": 0}
    assert _sweep(cloud) == {"opened": 0, "closed": 0}  # still holding: not told again
    # the same alarm reported again while the episode is open is the same episode
    cloud.ingest([evt(3, "alarm", c=4, kind="forced_open")])
    assert _sweep(cloud) == {"opened": 0, "closed": 0}
    texts = _texts(cloud, MAINT)
    assert len(texts) == 1
    assert "冯家村便民店" in texts[0] and "1号柜 4号格口" in texts[0] and "被强行打开" in texts[0]
    assert texts[0].startswith("【进村】告警")

    episodes = cloud.admin_get("/api/v1/alerts", open_only=True)
    assert [(e["kind"], e["locker_id"], e["c"]) for e in episodes] == [("forced_open", "l1", 4)]

    for a in cloud.admin_get("/api/v1/alarms"):  # staff handle it on the dashboard
        assert cloud.client.post(f"/api/v1/alarms/{a['id']}/ack", headers=admin_headers()).status_code == 200
    assert _sweep(cloud) == {"opened": 0, "closed": 1}
    texts = _texts(cloud, MAINT)
    assert len(texts) == 2 and texts[1].startswith("【进村】恢复") and "已解除" in texts[1]
    assert cloud.admin_get("/api/v1/alerts", open_only=True) == []
    assert all(len(t) <= 70 for t in texts)  # one SMS segment each

    # a new forced open later is a new episode
    cloud.ingest([evt(4, "alarm", c=4, kind="forced_open")])
    assert _sweep(cloud) == {"opened": 1, "closed": 0}
    assert len(_texts(cloud, MAINT)) == 3


def test_station_offline_told_after_the_threshold_and_when_heard_again(cloud):
    now = time.time()
    cloud.ingest([_gw_tele(1, now - 60)])
    assert _sweep(cloud, now=now, duty_phone=DUTY) == {"opened": 0, "closed": 0}  # a minute of silence is nothing
    later = now + 16 * 60
    assert _sweep(cloud, now=later, duty_phone=DUTY) == {"opened": 1, "closed": 0}
    assert _sweep(cloud, now=later + 60, duty_phone=DUTY) == {"opened": 0, "closed": 0}
    # no maintenance phone set: the county's duty phone gets it
    texts = _texts(cloud, DUTY)
    assert len(texts) == 1 and "站点断网" in texts[0]
    cloud.ingest([_gw_tele(2, later + 90)])
    assert _sweep(cloud, now=later + 100, duty_phone=DUTY) == {"opened": 0, "closed": 1}
    assert "站点断网已解除" in _texts(cloud, DUTY)[1]


def test_low_voltage_has_a_margin_so_it_does_not_flap(cloud):
    _set_phone(cloud, MAINT)
    now = time.time()
    cloud.ingest([birth(1, empty_comps(6)), _tele(2, now, 10.6)])
    assert _sweep(cloud) == {"opened": 1, "closed": 0}
    cloud.ingest([_tele(3, now + 1, 11.1)])  # above 11.0 but inside the margin: still low
    assert _sweep(cloud) == {"opened": 0, "closed": 0}
    cloud.ingest([_tele(4, now + 2, 12.1)])
    assert _sweep(cloud) == {"opened": 0, "closed": 1}
    texts = _texts(cloud, MAINT)
    assert [("电压过低" in t, t.startswith("【进村】恢复")) for t in texts] == [(True, False), (True, True)]


def test_growing_uplink_backlog(cloud):
    _set_phone(cloud, MAINT)
    now = time.time()
    cloud.ingest([_gw_tele(1, now, outbox_depth=20, oldest_unsent_s=2400.0)])
    assert _sweep(cloud, now=now) == {"opened": 1, "closed": 0}
    cloud.ingest([_gw_tele(2, now + 60, outbox_depth=0, oldest_unsent_s=None)])
    assert _sweep(cloud, now=now + 61) == {"opened": 0, "closed": 1}
    assert ["数据积压未上传" in t for t in _texts(cloud, MAINT)] == [True, True]


def test_only_maintenance_and_admin_set_the_phone_and_it_is_checked(cloud):
    r = cloud.client.put(f"/api/v1/stations/{STATION}/maint-phone", json={"phone": "call-me"},
                         headers=admin_headers())
    assert r.status_code == 422
    r = cloud.client.put("/api/v1/stations/nowhere/maint-phone", json={"phone": MAINT}, headers=admin_headers())
    assert r.status_code == 404
    r = cloud.client.put(f"/api/v1/stations/{STATION}/maint-phone", json={"phone": MAINT},
                         headers={"Authorization": f"Bearer {STATION_KEY}"})
    assert r.status_code in (401, 403)
    audit = cloud.admin_get("/api/v1/audit")
    assert not any(MAINT in json.dumps(a, ensure_ascii=False) for a in audit)  # the number is not in the log


# ---- group robots --------------------------------------------------------------------------------------------

class Robot:
    """A local HTTP server standing in for a DingTalk/WeCom group robot: checks the signature and answers."""

    def __init__(self, secret: str | None, answers: list[dict]) -> None:
        self.secret, self.answers, self.got = secret, answers, []
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                url = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(url.query)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ok_sign = True
                if robot.secret is not None:
                    ts = q["timestamp"][0]
                    want = base64.b64encode(hmac.new(robot.secret.encode(), f"{ts}\n{robot.secret}".encode(),
                                                     hashlib.sha256).digest()).decode()
                    ok_sign = q["sign"][0] == want
                robot.got.append((q.get("access_token", [""])[0], body, ok_sign))
                answer = robot.answers.pop(0) if robot.answers else {"errcode": 0, "errmsg": "ok"}
                if not ok_sign:
                    answer = {"errcode": 310000, "errmsg": "sign not match"}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/robot/send?access_token=tok123"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def robot():
    r = Robot("SECabc", answers=[{"errcode": 130101, "errmsg": "send too fast"}])
    yield r
    r.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_dingtalk_robot_gets_each_text_signed_and_retried_after_throttling(db_url, robot, caplog):
    settings = make_settings(db_url, duty_phone=DUTY, alert_webhook_url=SecretStr(robot.url),
                             alert_webhook_kind="dingtalk", alert_webhook_secret=SecretStr("SECabc"),
                             sweep_seconds=3600, webhook_retry_seconds=1)
    with TestClient(create_app(settings)) as client:
        register(client, STATION, STATION_KEY, "冯家村便民店", {"l1": 6})
        body = {"station": STATION, "batch": "b1", "items": [birth(1, empty_comps(6)),
                                                            evt(2, "alarm", c=2, kind="lock_jam")]}
        assert client.post("/api/v1/gateway/ingest", json=body, headers={"Authorization": f"Bearer {STATION_KEY}"})\
            .status_code == 200
        maker = client.app.state.sessionmaker
        with maker() as s:
            assert alerts.sweep(s, settings)["opened"] == 1
            s.commit()
        now = time.time()
        assert alerts.deliver_posts(maker, settings, now=now) == {"sent": 0, "failed": 1}  # throttled
        assert alerts.deliver_posts(maker, settings, now=now) == {"sent": 0, "failed": 0}  # not due yet
        assert alerts.deliver_posts(maker, settings, now=now + 5) == {"sent": 1, "failed": 0}
    assert len(robot.got) == 2
    token, sent, signed = robot.got[-1]
    assert token == "tok123" and signed
    assert sent["msgtype"] == "text" and "锁卡住" in sent["text"]["content"]
    assert "tok123" not in caplog.text and "SECabc" not in caplog.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_running_cloud_sweeps_and_tells_by_itself(db_url):
    """No test hook: the app's own sweep loop finds the alarm and queues the SMS."""
    settings = make_settings(db_url, duty_phone=DUTY, sweep_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        register(client, STATION, STATION_KEY, "冯家村便民店", {"l1": 6})
        body = {"station": STATION, "batch": "b1", "items": [birth(1, empty_comps(6)),
                                                            evt(2, "alarm", c=5, kind="forced_open")]}
        client.post("/api/v1/gateway/ingest", json=body, headers={"Authorization": f"Bearer {STATION_KEY}"})
        deadline = time.monotonic() + 10
        found: list[str] = []
        while time.monotonic() < deadline and not found:
            r = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {ADMIN}"})
            found = [e["kind"] for e in r.json()]
            time.sleep(0.05)
        assert found == ["forced_open"]
        assert client.get("/api/v1/health").json()["counters"].get("alerts_opened") == 1
