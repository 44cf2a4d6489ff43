"""The firmware's own MQTT 3.1.1 client against a second broker implementation (amqtt), not only Mosquitto."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))

from gateway_double import Gateway  # noqa: E402
from refhash import code_h  # noqa: E402
from simulator.embedded_broker import EmbeddedBroker  # noqa: E402
from simulator.locker import SimLocker, make_locker_config  # noqa: E402

STATION, LOCKER = "lz-fengjia-01", "l1"
SECRET = "9fd687cc5e1918da74cb849b2370293069abc311a49d4f4b7772006b898ad859"


@pytest.fixture
def amqtt_broker(free_tcp_port):
    b = EmbeddedBroker(port=free_tcp_port)
    b.start()
    yield b
    b.stop()


def test_full_session_on_amqtt(amqtt_broker, tmp_path):
    gw = Gateway(amqtt_broker.host, amqtt_broker.port, STATION, LOCKER, clean_session=True)
    cfg = make_locker_config(STATION, LOCKER, mqtt_host=amqtt_broker.host, mqtt_port=amqtt_broker.port,
                             password="unused", secret=SECRET)
    cfg["mqtt"]["keepalive"] = 2  # pings must keep the session up on this broker too
    sim = SimLocker(tmp_path / "locker", cfg)
    sim.start()
    try:
        birth = gw.wait("birth", timeout=15)
        assert birth["boot"] == sim.state()["boot"]
        assert gw.wait("status")["state"] == "online"
        assert gw.cmd("c-1", "deposit", c=2, ref="p-2") == {"v": 1, "id": "c-1", "ok": True}
        sim.wait_for(lambda s: next(c for c in s["comps"] if c["n"] == 2)["door"] == "open")
        sim.set_occupied(2, True)
        sim.close_door(2)
        dep = gw.evt("deposit", c=2, ref="p-2")
        assert gw.cmd("c-2", "code_put", h=code_h(SECRET, "135790"), cs=[2], exp=60)["ok"]
        assert gw.cmd("c-1", "deposit", c=2, ref="p-2")["ok"] is True  # a replay: the stored ack
        gw.eack(dep["boot"], sim.state()["seq"])
        s = sim.wait_for(lambda s: s["outbox"] == 0)
        time.sleep(4)  # two keepalive periods
        s = sim.state()
        assert s["connected"] and s["counters"]["connects"] == 1 and s["counters"]["dup_cmds"] == 1
        assert gw.contract_violations() == []
    finally:
        sim.stop()
        gw.close()
