"""paho's own QoS 1 receive rate on this machine: the ceiling the gateway's MQTT intake is read against.

A Mosquitto with the station broker's queue and in-flight limits holds a backlog of the benchmark's events
for a persistent session; a bare paho subscriber (paho's own `loop_forever`, `manual_ack`, each message
acked in `on_message`, nothing else done with it) then drains it in a process of its own. Its rate is what
paho alone reaches here; the gateway does the same receiving plus validation, storage and eacks.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from gateway.mqtt_client import MQTT5, MQTT311
from simulator.net import free_port, wait_port
from simulator.procs import stop_process

from . import mqttwire as M

SUB_ID = "ceiling-sub"


def _broker(work: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = work / "ceiling.conf"
    # the station broker's limits (gateway/broker.py): queue and in-flight window per client
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 200000\nmax_inflight_messages 500\nmax_packet_size 8192\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", port, 15)
    return proc, port


def _session(port: int) -> None:
    """Open the subscriber's persistent session and leave it, so the broker queues for it."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(M.encode_connect(SUB_ID, clean_session=False, keepalive=60)
              + M.encode_subscribe(1, [("jc/v1/+/+/evt", 1)]))
    p = M.Parser()
    got: list = []
    while len(got) < 2:
        got += p.feed(s.recv(65536))
    s.sendall(M.encode_disconnect())
    s.close()


def _preload(port: int, events: int, lockers: int) -> None:
    """Publish `events` door events from `lockers` sessions, QoS 1, and wait for every PUBACK."""
    socks = []
    for i in range(lockers):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(M.encode_connect(f"ceiling-l{i}", keepalive=60))
        socks.append((s, M.Parser(), f"jc/v1/bench-01/l{i + 1}/evt"))
    for s, p, _ in socks:
        while not p.feed(s.recv(64)):
            pass
    per = events // lockers
    for s, _p, topic in socks:
        out = bytearray()
        for seq in range(1, per + 1):
            body = b'{"v":1,"boot":"0badf00d","seq":%d,"ts":%d,"mono":%d,"type":"door","c":1,"open":%s}' % (
                seq, int(time.time()), seq, b"false" if seq % 2 else b"true")
            out += M.encode_publish(topic, body, qos=1, packet_id=seq % 65535 + 1)
        s.sendall(out)
    for s, p, _ in socks:
        acked = 0
        while acked < per:
            acked += sum(1 for pk in p.feed(s.recv(1 << 18)) if type(pk) is M.Puback)
        s.sendall(M.encode_disconnect())
        s.close()


def _drain(port: int, events: int, out: mp.Queue, protocol: int) -> None:
    """Worker process: a bare paho subscriber takes the backlog; the rate from CONNECT to the last message."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    if protocol == MQTT5:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=SUB_ID, protocol=mqtt.MQTTv5, manual_ack=True)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0xFFFFFFFF
        connect_kw: dict = {"clean_start": False, "properties": props}
    else:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=SUB_ID, clean_session=False, manual_ack=True)
        connect_kw = {}
    state = {"n": 0, "t_last": 0.0}

    def on_message(client, userdata, msg):
        client.ack(msg.mid, msg.qos)
        state["n"] += 1
        if state["n"] >= events:
            state["t_last"] = time.monotonic()
            client.disconnect()

    c.on_message = on_message
    t0 = time.monotonic()
    c.connect("127.0.0.1", port, keepalive=60, **connect_kw)
    c.loop_forever()
    out.put({"received": state["n"], "secs": state["t_last"] - t0})


def measure(events: int = 100_000, lockers: int = 16, protocol: int = MQTT311) -> dict:
    """The ceiling figure: paho's QoS 1 receive rate (messages/s) draining `events` queued messages, in an
    MQTT 3.1.1 session (MQTT311, the gateway's) or an MQTT 5 one (MQTT5)."""
    with tempfile.TemporaryDirectory(prefix="jc-ceiling-") as tmp:
        proc, port = _broker(Path(tmp))
        try:
            _session(port)
            _preload(port, events, lockers)
            q: mp.Queue = mp.Queue()
            w = mp.Process(target=_drain, args=(port, events // lockers * lockers, q, protocol))
            w.start()
            res = q.get(timeout=300)
            w.join(10)
        finally:
            stop_process(proc)
    return {"events": res["received"], "secs": round(res["secs"], 2),
            "rate": round(res["received"] / max(res["secs"], 1e-9))}


if __name__ == "__main__":
    print(measure())
