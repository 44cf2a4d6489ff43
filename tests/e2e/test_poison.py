"""No poison message: one locker's unstorable text among good traffic, through the real firmware, Mosquitto,
the gateway and the cloud, each a process of its own."""

from __future__ import annotations

import json
import sqlite3
import threading

import paho.mqtt.client as mqtt
import pytest

from simulator.stack import Stack

pytestmark = pytest.mark.micropython


class Publisher:
    """A paho client speaking as a locker with that locker's own broker credentials."""

    def __init__(self, stack: Stack, locker: str) -> None:
        entry = next(lk for lk in stack.station_cfg["lockers"] if lk["id"] == locker)
        self.base = f"jc/v1/{stack.station}/{locker}"
        self.boot = "0badc0de"
        self.eacked = 0
        self.got_eack = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{stack.station}-{locker}")
        self.c.username_pw_set(locker, entry["mqtt_password"])
        self.c.will_set(f"{self.base}/status", json.dumps({"v": 1, "state": "lost"}), qos=1, retain=True)
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", stack.mqtt_port, keepalive=30)
        self.c.loop_start()
        self.c.subscribe([(f"{self.base}/cmd", 1), (f"{self.base}/eack", 1)])

    def _on_message(self, client, userdata, msg) -> None:
        body = json.loads(msg.payload)
        if msg.topic.endswith("/eack") and body.get("boot") == self.boot:
            with self.got_eack:
                self.eacked = max(self.eacked, body["seq"])
                self.got_eack.notify_all()
        elif msg.topic.endswith("/cmd"):
            self.c.publish(f"{self.base}/ack", json.dumps({"v": 1, "id": body["id"], "ok": True}), qos=1)

    def pub(self, kind: str, body: dict, *, retain: bool = False) -> None:
        # json.dumps writes a lone surrogate as the escape \ud800: valid JSON, but no UTF-8 text
        self.c.publish(f"{self.base}/{kind}", json.dumps(body), qos=1, retain=retain).wait_for_publish(5)

    def evt(self, seq: int, **fields) -> None:
        self.pub("evt", {"v": 1, "boot": self.boot, "seq": seq, "ts": 0, "mono": 1000 + seq, "type": "door", **fields})

    def wait_eack(self, seq: int, timeout: float = 20) -> None:
        with self.got_eack:
            assert self.got_eack.wait_for(lambda: self.eacked >= seq, timeout), f"eack {seq} (got {self.eacked})"

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def stack(tmp_path):
    """A station of two lockers: l1 runs the real firmware, l2 is spoken for by a publisher."""
    with Stack(tmp_path / "station", broker="mosquitto", lockers=("l1", "l2"), comps="3S,2M,1L") as s:
        # l2's firmware makes way for a publisher using l2's credentials, which can send what no firmware would
        s.sims.pop("l2").stop()
        yield s


def _cloud_counters(stack: Stack) -> dict:
    return stack._get(f"{stack.cloud_url}/api/v1/health").get("counters", {})


def test_a_poisoned_message_is_dead_lettered_and_everything_else_arrives(stack):
    l2 = Publisher(stack, "l2")
    try:
        l2.pub("status", {"v": 1, "state": "online", "boot": l2.boot}, retain=True)
        comps = [{"n": n, "size": "SSSMML"[n - 1], "st": "empty", "door": "closed", "occ": False} for n in range(1, 7)]
        l2.pub("birth", {"v": 1, "boot": l2.boot, "fw": "0.1.0", "seq": 0, "ts": 0, "mono": 900, "comps": comps,
                         "outbox": 0, "vault": 0})
        l2.evt(1, c=1, open=True)
        # the poison: an unknown field (which the checks ignore) holds a lone surrogate
        l2.evt(2, c=2, open=True, note="门\ud800")
        l2.pub("tele", {"v": 1, "boot": l2.boot, "ts": 0, "mono": 2000, "fw": "0.1.0", "note": "\udfff"})
        l2.evt(3, c=1, open=False)
        l2.wait_eack(3)

        # the real firmware's traffic flows after it: a parcel deposited and picked up
        d = stack.deposit(waybill="YT5000000005", phone="13800000005", carrier="YTO", size="S")
        code = stack.sms_code(phone="13800000005", waybill="YT5000000005")
        assert stack.pickup(code) == [d["c"]]
        l2.evt(4, c=3, open=True)
        l2.wait_eack(4)
        stack.wait_drained(60)
        stack.wait(lambda: stack.parcels(waybill="YT5000000005")[0]["status"] == "picked_up", 30, "picked up")
    finally:
        l2.close()

    # every event of the firmware reached the cloud, once
    ledger = stack.ledger()
    assert ledger["events_sent"] > 0 and ledger["lost"] == 0 and ledger["duplicates"] == 0
    held = stack._get(f"{stack.cloud_url}/api/v1/admin/ledger", params={"station": stack.station}, admin=True)
    l2_seqs = sorted(seq for src, boot, seq in held["events"] if src == "l2" and boot == l2.boot)
    assert l2_seqs == [1, 3, 4], "the good events of the poisoning locker arrived, the poisoned one did not"

    # the gateway refused the poison, counted, and still acknowledged the event
    gw = stack._get(f"{stack.gateway_url}/health")["counters"]
    assert gw["rejected_payloads"] == 2 and gw["quarantined_events"] == 1
    assert gw.get("outbox_write_errors", 0) == 0
    # the cloud answered the event rejected and keeps it as a dead letter
    assert _cloud_counters(stack)["ingest_rejected"] == 1
    with sqlite3.connect(stack.workdir / "cloud.db") as db:
        dead = [json.loads(raw) for raw, in db.execute("SELECT raw FROM dead_letters")]
    assert len(dead) == 1
    assert "\\ud800" in json.dumps(dead[0]) and "0badc0de" in json.dumps(dead[0])
