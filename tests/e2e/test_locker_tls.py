"""The real firmware (MicroPython) reaching the station's Mosquitto over TLS, as `gateway init` configures it.

A station outside the demo: its broker has a TLS listener for lockers and a plain one for the gateway on
loopback only; lockers get the station's CA and the TLS port from `jincun firmware provision`.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway import const as C
from gateway.broker import write_broker_config
from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.station_ca import make_station_ca
from jincun import provision
from simulator.locker import SimLocker
from simulator.net import free_port
from tests.conftest import Broker

STATION = "lz-tls-01"


@pytest.fixture
def station(tmp_path):
    """An enrolled-like station (not a demo): station.json with mqtt.tls, the broker running its written config."""
    mqtt_port, tls_port = free_port(), free_port()
    data = provision.station_config(
        station=STATION, name="TLS 村", db=str(tmp_path / "gw.db"), http_port=0, mqtt_host="127.0.0.1",
        mqtt_port=mqtt_port, cloud_url="http://127.0.0.1:9", api_key=provision.new_password() * 2,
        lockers=[provision.locker_entry(lk, [{"n": 1, "size": "M"}, {"n": 2, "size": "S"}]) for lk in ("l1", "l2")])
    paths = make_station_ca(tmp_path / "ca", tmp_path / "mosquitto" / "tls", station=STATION,
                            hosts=["localhost", "127.0.0.1"])
    data["mqtt"]["tls"] = {"port": tls_port, "cafile": str(paths["broker ca.pem"]),
                           "certfile": str(paths["server.pem"]), "keyfile": str(paths["server.key"])}
    cfg_path = provision.write_private(tmp_path / "station.json", data)
    cfg = load_config(cfg_path)
    conf = write_broker_config(cfg, tmp_path / "mosquitto")
    broker = Broker("127.0.0.1", mqtt_port, tmp_path / "mosquitto", conf)
    broker.start()
    yield cfg_path, cfg, broker
    broker.stop()


def _gateway_client(cfg, topic: str) -> tuple[mqtt.Client, list]:
    """The gateway's side: its own credentials on the plain loopback listener, subscribed to topic."""
    got: list = []
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.mqtt.username, protocol=mqtt.MQTTv311)
    c.username_pw_set(cfg.mqtt.username, cfg.mqtt.password)
    c.on_connect = lambda cl, u, f, rc, p=None: (cl.subscribe(topic, qos=1), ready.set())
    c.on_message = lambda cl, u, msg: got.append(msg.topic)
    c.connect("127.0.0.1", cfg.mqtt.port)
    c.loop_start()
    assert ready.wait(10), "the gateway could not log in on the loopback listener"
    return c, got


def _locker(tmp_path: Path, cfg_path: Path, locker: str, **mqtt_over) -> SimLocker:
    out = provision.provision_device(station=None, locker=locker, mqtt_host="127.0.0.1", mqtt_port=None, comps=None,
                                     out=tmp_path / f"{locker}.json", station_config=cfg_path)
    dev = json.loads(out.read_text())
    dev["mqtt"].update(mqtt_over, backoff_min_ms=200, backoff_max_ms=500)
    sim = SimLocker(tmp_path / f"locker-{locker}", dev)
    sim.start()
    return sim


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_firmware_connects_over_tls_and_refuses_a_broker_it_cannot_trust(station, tmp_path):
    cfg_path, cfg, broker = station
    dev = json.loads(provision.provision_device(
        station=None, locker="l1", mqtt_host="127.0.0.1", mqtt_port=None, comps=None, out=tmp_path / "dev.json",
        station_config=cfg_path).read_text())["mqtt"]
    assert dev["tls"] is True and dev["port"] == cfg.mqtt.tls.port and dev["server_hostname"] == "127.0.0.1"

    gw, got = _gateway_client(cfg, f"{C.PREFIX}/{STATION}/+/birth")
    # another station's CA: the locker refuses the broker's certificate and never sends its password
    other = make_station_ca(tmp_path / "other-ca", tmp_path / "other-srv", station="x", hosts=["127.0.0.1"])
    other_ca = base64.b64encode(ssl.PEM_cert_to_DER_cert(other["ca.pem"].read_text()))
    # the right CA but a name the certificate does not carry: refused as well
    impostor = _locker(tmp_path, cfg_path, "l2", ca=other_ca.decode())
    misnamed = _locker(tmp_path, cfg_path, "l1", server_hostname="gw.other-station.example")
    try:
        _wait(lambda: "not correctly signed" in impostor.log.read_text(errors="replace")
              and "does not match" in misnamed.log.read_text(errors="replace"), 20, "both refusals in the logs")
        _wait(lambda: all(s.state()["counters"]["connect_failures"] >= 2 for s in (impostor, misnamed)), 10,
              "a second refused attempt of each")
        assert got == [], "a locker that refused the broker still published"
        assert all(s.state()["counters"]["connects"] == 0 for s in (impostor, misnamed))
        assert "as l1 " not in broker.log.read_text() and "as l2 " not in broker.log.read_text()
    finally:
        impostor.stop()
        misnamed.stop()

    good = _locker(tmp_path, cfg_path, "l1")
    try:
        _wait(lambda: f"{C.PREFIX}/{STATION}/l1/birth" in got, 20, "the birth of the locker over TLS")
        assert "over TLS" in good.log.read_text(errors="replace")
        # the broker saw the session arrive on its TLS listener
        log = broker.log.read_text()
        addr = log.split(" as l1 ")[0].rsplit("New client connected from ", 1)[1]
        assert f"New connection from {addr} on port {cfg.mqtt.tls.port}." in log
    finally:
        good.stop()
        gw.loop_stop()
        gw.disconnect()


def _lan_address() -> str | None:
    """An address of this machine other than loopback, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_no_plaintext_listener_faces_the_lockers_outside_the_demo(station, tmp_path):
    cfg_path, cfg, broker = station
    conf = broker.conf.read_text()
    listeners = [ln for ln in conf.splitlines() if ln.startswith("listener ")]
    assert listeners == [f"listener {cfg.mqtt.port} 127.0.0.1", f"listener {cfg.mqtt.tls.port}"]
    # the firmware speaking plain MQTT to the TLS port gets no session
    plain = _locker(tmp_path, cfg_path, "l1", tls=False)
    try:
        _wait(lambda: plain.state()["counters"]["connect_failures"] >= 2, 15, "two refused plain attempts")
        assert plain.state()["counters"]["connects"] == 0
        assert "as l1 " not in broker.log.read_text(), "a plain session was accepted on the TLS listener"
    finally:
        plain.stop()
    # the gateway's plain listener cannot be reached from the network, only from the Pi itself
    lan = _lan_address()
    if lan is not None:
        with pytest.raises(OSError):
            socket.create_connection((lan, cfg.mqtt.port), timeout=2).close()
    # a station without TLS, or with the plain listener on the LAN, gets no broker config at all
    data = json.loads(cfg_path.read_text())
    for mqtt_over in ({"tls": None}, {"listen": "0.0.0.0"}):
        bad = data | {"mqtt": {k: v for k, v in (data["mqtt"] | mqtt_over).items() if v is not None}}
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ConfigError):
            write_broker_config(load_config(tmp_path / "bad.json"), tmp_path / "bad-mosq", run_as=None)
        if "tls" in mqtt_over:
            with pytest.raises(provision.ProvisionError, match="TLS"):
                provision.provision_device(station=None, locker="l1", mqtt_host="127.0.0.1", mqtt_port=None,
                                           comps=None, out=tmp_path / "x.json", station_config=tmp_path / "bad.json")
    # a demo station may keep its plain listener on the LAN
    (tmp_path / "demo.json").write_text(json.dumps(data | {"demo": True, "mqtt": data["mqtt"] | {"listen": "0.0.0.0"}}))
    demo_conf = write_broker_config(load_config(tmp_path / "demo.json"), tmp_path / "demo-mosq", run_as=None)
    assert f"listener {cfg.mqtt.port} 0.0.0.0" in demo_conf.read_text()


def test_provision_refuses_a_name_the_broker_certificate_does_not_carry(station, tmp_path):
    cfg_path, _, _ = station
    with pytest.raises(provision.ProvisionError, match="--tls-host 192.168.9.9"):
        provision.provision_device(station=None, locker="l1", mqtt_host="192.168.9.9", mqtt_port=None, comps=None,
                                   out=tmp_path / "dev.json", station_config=cfg_path)
    assert not (tmp_path / "dev.json").exists()


def test_a_refused_new_locker_leaves_station_and_broker_as_they_were(station, tmp_path):
    """Provisioning is all or nothing: a new locker refused for its host name or its compartments is
    recorded nowhere, neither in station.json nor in the broker's password file and ACL."""
    cfg_path, _, _ = station
    broker_dir = tmp_path / "mosquitto"
    before = {p: p.read_bytes() for p in (cfg_path, broker_dir / "passwd", broker_dir / "acl")}
    for host, comps in (("192.168.9.9", None), ("127.0.0.1", "24M")):  # a name not on the cert; >12 without RS-485
        with pytest.raises(provision.ProvisionError, match="--tls-host|RS-485"):
            provision.provision_device(station=None, locker="l9", mqtt_host=host, mqtt_port=None, comps=comps,
                                       out=tmp_path / "l9.json", station_config=cfg_path, broker_dir=broker_dir)
        assert {p: p.read_bytes() for p in before} == before
        assert not (tmp_path / "l9.json").exists()
    # a config that cannot be written (its folder would be a file) records nothing either
    (tmp_path / "plain-file").write_text("")
    with pytest.raises(OSError):
        provision.provision_device(station=None, locker="l9", mqtt_host="127.0.0.1", mqtt_port=None, comps=None,
                                   out=tmp_path / "plain-file" / "l9.json", station_config=cfg_path,
                                   broker_dir=broker_dir)
    assert {p: p.read_bytes() for p in before} == before
    # the same locker with a good name is recorded everywhere at once
    provision.provision_device(station=None, locker="l9", mqtt_host="127.0.0.1", mqtt_port=None, comps=None,
                               out=tmp_path / "l9.json", station_config=cfg_path, broker_dir=broker_dir)
    assert "l9" in [lk["id"] for lk in json.loads(cfg_path.read_text())["lockers"]]
    assert (broker_dir / "passwd").read_text().count("l9:") == 1 and "l9" in (broker_dir / "acl").read_text()
    assert json.loads((tmp_path / "l9.json").read_text())["mqtt"]["tls"] is True


def test_the_stack_reports_what_the_broker_saw_not_what_was_configured(tmp_path):
    """The demo's `tls` comes from the broker's log: a plain station is reported plain."""
    from simulator.stack import Stack

    with Stack(tmp_path / "plain", broker="mosquitto", tls=False) as s:
        assert s.locker_transports() == {"l1": ["plain"]}
        assert s.all_lockers_on_tls() is False
        s.restart_broker()
        s.wait_lockers_ready()
        assert s.locker_transports()["l1"][-1] == "plain"
