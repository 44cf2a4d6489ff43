"""Gateway test kit: a station broker from gateway/broker.py and paho clients acting as lockers."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import queue
import secrets
import socket
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from gateway.broker import broker_body, password_line, write_auth_files
from gateway.config import StationConfig, parse_config
from gateway.terminal import hash_pin

STATION = "demo-01"
SECRET_L1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
SECRET_L2 = "9fd687cc5e1918da74cb849b2370293069abc311a49d4f4b7772006b898ad859"
# a read-only watcher of the whole station, so a test can look on without taking the gateway's client id
OBSERVER = ("observer", "obs-pass-1234")
# the courier every test station has unless a test names its own terminal users (no fixed carrier, so each
# deposit names its own); a cheap hash keeps configs quick to build
COURIER_PIN = "135246"
COURIER = {"id": "k-desk", "name": "投递台", "role": "courier", "pin_hash": hash_pin(COURIER_PIN, iterations=1000)}


# pytest's tmp dirs are private to the test user, so a root-started broker must stay that user
RUN_AS = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(tmp_path: Path, mqtt_port: int = 1883, cloud_url: str = "http://127.0.0.1:9", *,
                extra_locker: bool = False, cloud: dict | None = None, top: dict | None = None,
                **gateway) -> StationConfig:
    return parse_config(config_data(tmp_path, mqtt_port, cloud_url, extra_locker=extra_locker, cloud=cloud, top=top,
                                    **gateway))


def config_data(tmp_path: Path, mqtt_port: int = 1883, cloud_url: str = "http://127.0.0.1:9", *,
                extra_locker: bool = False, cloud: dict | None = None, top: dict | None = None, **gateway) -> dict:
    """The test station's station.json, as a dict."""
    return {
        "station": STATION, "name": "示例村服务站", "demo": True,  # the published test secrets below
        "gateway": {"db": str(tmp_path / "gateway.db"), "http": {"port": 0}, "cmd_timeout_s": 3.0, **gateway},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "username": "gateway", "password": "gw-pass-1234"},
        "cloud": {"url": cloud_url, "api_key": "station-key-demo-01", "poll_s": 0.05,
                  "backoff_min_s": 0.05, "backoff_max_s": 0.3, "timeout_s": 2.0, **(cloud or {})},
        "lockers": [
            {"id": "l1", "secret": SECRET_L1, "mqtt_password": "l1-pass-1234",
             "comps": [{"n": 1, "size": "S"}, {"n": 2, "size": "M"}, {"n": 3, "size": "L"}]},
            {"id": "l2", "secret": SECRET_L2, "mqtt_password": "l2-pass-1234",
             "comps": [{"n": 1, "size": "M"}]},
        ] + ([{"id": "l3", "secret": SECRET_L2, "mqtt_password": "l3-pass-1234", "comps": [{"n": 1, "size": "M"}]}]
             if extra_locker else []),
        "terminal": {"users": [COURIER]},
        **(top or {}),
    }


@pytest.fixture
def station(tmp_path, mosquitto_factory):
    """(config, broker): a real Mosquitto running the config written by gateway/broker.py."""
    auth = tmp_path / "broker-auth"
    # the broker knows l3, the gateway does not: an "unknown locker" with valid credentials
    cfg0 = make_config(tmp_path, extra_locker=True)
    write_auth_files(cfg0, auth)
    with (auth / "passwd").open("a") as f:
        f.write(password_line(*OBSERVER) + "\n")
    with (auth / "acl").open("a") as f:
        f.write(f"\nuser {OBSERVER[0]}\ntopic read jc/v1/{STATION}/#\n")
    broker = mosquitto_factory(broker_body(cfg0, auth, run_as=RUN_AS), name="station")
    cfg = make_config(tmp_path, broker.port)
    return cfg, broker


def courier_api(gw) -> httpx.AsyncClient:
    """The gateway's HTTP API as the station's test courier, logged in (a session opened without the PIN)."""
    tok = gw.sessions.open(gw.sessions.users[COURIER["id"]])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw",
                             headers={"Authorization": f"Bearer {tok}"})


async def until(cond, timeout: float = 5.0, what: str = "condition"):
    """Poll cond() on the event loop until it is truthy; fail the test otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class PahoLocker:
    """A paho MQTT client speaking as a locker controller (username = locker id, with its last will)."""

    def __init__(self, port: int, locker: str = "l1", password: str | None = None, *, station: str = STATION,
                 username: str | None = None, auto_ack: bool = True) -> None:
        self.station, self.locker = station, locker
        self.base = f"jc/v1/{station}/{locker}"
        self.boot = secrets.token_hex(4)
        self.seq = 0
        self.msgs: queue.Queue = queue.Queue()
        self.cmds: list[dict] = []
        self.eacks: list[dict] = []
        self.eack_meta: list[tuple[float, int]] = []  # (arrival, QoS) of each eack
        self.auto_ack = auto_ack
        self.ack_result: dict = {}
        self.rc = None
        self.connects = 0
        self.subscribed = False
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=username or locker)
        self.c.username_pw_set(username or locker, password or f"{locker}-pass-1234")
        self.c.will_set(f"{self.base}/status", json.dumps({"v": 1, "state": "lost"}), qos=1, retain=True)
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.suback = threading.Event()
        self.port = port

    def _on_connect(self, client, userdata, flags, rc, props=None):
        self.rc = rc
        self.connects += 1
        if self.subscribed and not rc.is_failure:
            # paho reconnects by itself; like the firmware, subscribe again on every connect
            client.subscribe([(f"{self.base}/cmd", 1), (f"{self.base}/eack", 1)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, props=None):
        self.suback.set()

    def _on_message(self, client, userdata, msg):
        body = json.loads(msg.payload)
        kind = msg.topic.rsplit("/", 1)[1]
        if kind == "cmd":
            self.cmds.append(body)
            if self.auto_ack:
                ack = {"v": 1, "id": body["id"], "ok": True, **self.ack_result.get(body["op"], {})}
                self.c.publish(f"{self.base}/ack", json.dumps(ack), qos=1)
        elif kind == "eack":
            self.eacks.append(body)
            self.eack_meta.append((time.monotonic(), msg.qos))
        self.msgs.put((msg.topic, body))

    def connect(self, *, subscribe: bool = True, wait: bool = True) -> PahoLocker:
        self.c.connect("127.0.0.1", self.port, keepalive=2)
        self.c.loop_start()
        deadline = time.monotonic() + 5
        while self.rc is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if wait and (self.rc is None or self.rc.is_failure):
            raise ConnectionError(f"locker {self.locker} refused: {self.rc}")
        if subscribe:
            r = self.c.subscribe([(f"{self.base}/cmd", 1), (f"{self.base}/eack", 1)])
            assert r[0] == mqtt.MQTT_ERR_SUCCESS
            self.subscribed = True
            if wait:
                # a command or eack sent before the broker's SUBACK would not reach this locker
                assert self.suback.wait(5), f"locker {self.locker}: no SUBACK"
        return self

    def pub(self, kind: str, payload, *, qos: int = 1, retain: bool = False, topic: str | None = None) -> None:
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        info = self.c.publish(topic or f"{self.base}/{kind}", data, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def online(self) -> None:
        self.pub("status", {"v": 1, "state": "online", "boot": self.boot}, retain=True)

    def birth(self, comps: list[dict] | None = None, *, outbox: int = 0) -> None:
        comps = comps if comps is not None else [
            {"n": 1, "size": "S", "st": "empty", "door": "closed", "occ": False},
            {"n": 2, "size": "M", "st": "empty", "door": "closed", "occ": False},
            {"n": 3, "size": "L", "st": "empty", "door": "closed", "occ": False}]
        self.pub("birth", {"v": 1, "boot": self.boot, "fw": "0.1.0", "seq": self.seq, "ts": 0, "mono": 900,
                           "comps": comps, "outbox": outbox, "vault": 0})

    def evt(self, type_: str, seq: int | None = None, **fields) -> dict:
        if seq is None:
            self.seq += 1
            seq = self.seq
        body = {"v": 1, "boot": self.boot, "seq": seq, "ts": int(time.time()), "mono": 1000 + seq,
                "type": type_, **fields}
        self.pub("evt", body)
        return body

    def acked(self) -> int:
        return max([e["seq"] for e in self.eacks if e["boot"] == self.boot], default=0)

    def kill(self) -> None:
        """Drop the TCP connection without DISCONNECT, so the broker publishes the last will."""
        self.c.loop_stop()
        self.c.socket().close()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def lockers():
    made: list[PahoLocker] = []

    def make(*args, **kw) -> PahoLocker:
        lk = PahoLocker(*args, **kw)
        made.append(lk)
        return lk
    yield make
    for lk in made:
        try:
            lk.close()
        except (OSError, AttributeError):
            pass


class RunningGateway:
    """gateway.app.run() in a task of the test's event loop, stopped by the fixture."""

    def __init__(self, cfg, transport=None, consent=None):
        self.cfg = cfg
        self.transport = transport
        self.consent = consent
        self.stop = asyncio.Event()
        self.gw = None
        self.task = None

    async def start(self):
        from gateway.app import run
        self.stop = asyncio.Event()
        ready = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(run(self.cfg, transport=self.transport, stop=self.stop, consent=self.consent,
                                            started=lambda gw: ready.set_result(gw)))
        done, _ = await asyncio.wait([ready, self.task], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            self.task.result()
        self.gw = ready.result()
        await asyncio.wait_for(self.gw.link.connected.wait(), 10)
        return self.gw

    async def close(self):
        if self.task is not None:
            self.stop.set()
            await asyncio.wait_for(self.task, 15)
            self.task = None

    async def outbox_rows(self, kind=None):
        return await outbox_rows(self.gw.outbox, kind)


async def outbox_rows(outbox, kind=None):
    """Every row of the outbox, read after the writes queued so far have committed (reads run on a connection
    of their own). A full disk holds the queue, and a test may be about to free it by reading and deleting:
    after 2 s the rows are read as they are."""
    barrier = asyncio.ensure_future(outbox.run(lambda conn: None))
    barrier.add_done_callback(lambda f: f.cancelled() or f.exception())
    await asyncio.wait([barrier], timeout=2)
    rows = await outbox.read_batch(100000, 1 << 40)
    return [r for r in rows if kind is None or r.kind == kind]


@pytest.fixture
async def gateway(station):
    """A running gateway (lockers l1, l2) on the station broker; yields RunningGateway."""
    cfg, broker = station
    rg = RunningGateway(cfg)
    await rg.start()
    rg.broker = broker
    yield rg
    await rg.close()
