"""A minimal MQTT 'gateway' for firmware tests: a real paho-mqtt client on the real broker."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt


@dataclass
class Msg:
    kind: str
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> dict:
        return json.loads(self.payload)


class Gateway:
    """Subscribes to jc/v1/{station}/+/+ and lets a test wait for messages, send commands and eacks."""

    def __init__(self, host: str, port: int, station: str, locker: str, *, user: str | None = None,
                 password: str | None = None, client_id: str = "test-gateway", clean_session: bool = False):
        self.station, self.locker = station, locker
        self.base = f"jc/v1/{station}/{locker}"
        self.msgs: list[Msg] = []
        self.hooks: list = []  # fn(client, Msg) called on the network thread for every message
        self._cv = threading.Condition()
        # a persistent session, like the real gateway's: nothing is missed while the broker restarts
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_session)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._ready = threading.Event()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError("test gateway could not connect")

    def _on_connect(self, client, userdata, flags, rc, props=None):
        client.subscribe(f"jc/v1/{self.station}/+/+", qos=1)
        self._ready.set()

    def _on_message(self, client, userdata, m):
        kind = m.topic.rsplit("/", 1)[-1]
        msg = Msg(kind, m.topic, m.payload, bool(m.retain))
        with self._cv:
            self.msgs.append(msg)
            self._cv.notify_all()
        for hook in list(self.hooks):
            hook(client, msg)

    def contract_violations(self) -> list[tuple[str, str, bytes]]:
        """Locker-to-gateway messages that break the wire contract, checked with the firmware's own codec."""
        from jc import proto  # firmware/ is put on sys.path by the test module

        with self._cv:
            ups = [m for m in self.msgs if m.kind in ("birth", "status", "evt", "tele", "ack", "fwreq")]
        return [(m.kind, err, m.payload[:300]) for m in ups if (err := proto.check(m.kind, m.payload))]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def of(self, kind: str) -> list[dict]:
        with self._cv:
            return [m.json() for m in self.msgs if m.kind == kind]

    def wait(self, kind: str, pred=lambda o: True, timeout: float = 10.0, start: int = 0) -> dict:
        """Wait for a message of this kind (at index >= start) matching pred; return its JSON."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for m in self.msgs[start:]:
                    if m.kind == kind:
                        o = m.json()
                        if pred(o):
                            return o
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.kind, m.payload[:200]) for m in self.msgs[-20:]]
                    raise TimeoutError(f"no {kind} message matching in {timeout}s; last: {seen}")
                self._cv.wait(left)

    def mark(self) -> int:
        with self._cv:
            return len(self.msgs)

    def evt(self, etype: str, timeout: float = 10.0, start: int = 0, **fields) -> dict:
        return self.wait("evt", lambda o: o["type"] == etype and all(o.get(k) == v for k, v in fields.items()),
                         timeout, start)

    def publish(self, kind: str, payload: bytes | str | dict, qos: int = 1) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        self.client.publish(f"{self.base}/{kind}", payload, qos=qos).wait_for_publish(5)

    def cmd(self, cid: str, op: str, timeout: float = 10.0, **fields) -> dict:
        """Send a command and wait for its ack."""
        start = self.mark()
        self.publish("cmd", {"v": 1, "id": cid, "op": op, **fields})
        return self.wait("ack", lambda o: o["id"] == cid, timeout, start)

    def eack(self, boot: str, seq: int) -> None:
        self.publish("eack", {"v": 1, "boot": boot, "seq": seq})
