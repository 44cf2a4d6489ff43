"""A station from nothing: the county issues a token, the Pi enrolls, a locker is provisioned and connects.

A real cloud process on PostgreSQL, the real `jincun` commands, and a real Mosquitto started from the files
the enrollment wrote.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from gateway import const as C
from gateway.config import load_config
from gateway.station_ca import make_station_ca
from gateway.terminal import verify_pin
from jincun.cli import main
from simulator.net import free_port, wait_port
from simulator.procs import stop_process
from tests.conftest import Broker

REPO = Path(__file__).resolve().parents[2]
ADMIN = "admin-token-for-enroll-tests-0123"
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
STATION = "lz-fengjia-01"
FIRST_KEY = "key-given-at-registration-0001"


@pytest.fixture
def cloud(pg_url, tmp_path):
    port = free_port()
    env = dict(os.environ, JINCUN_ADMIN_TOKEN=ADMIN, JINCUN_DATABASE_URL=pg_url, PYTHONPATH=str(REPO),
               JINCUN_LOG_LEVEL="WARNING")
    log = (tmp_path / "cloud.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", f"import cloud; cloud.serve('127.0.0.1', {port})"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, timeout=30)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        proc.terminate()
        stop_process(proc)


def _register(client: httpx.Client) -> None:
    def ok(resp):
        assert resp.status_code == 201, resp.text

    ok(client.post("/api/v1/admin/stations", headers=ADMIN_H, json={
        "id": STATION, "name": "冯家村便民店", "kind": "village_shop", "api_key": FIRST_KEY}))
    ok(client.post(f"/api/v1/admin/stations/{STATION}/lockers", headers=ADMIN_H, json={
        "id": "l1", "comps": [{"n": i, "size": "M"} for i in range(1, 7)]}))
    ok(client.post("/api/v1/admin/stations", headers=ADMIN_H, json={
        "id": "lz-dongcun-02", "name": "东村党群服务中心", "kind": "village_shop", "api_key": "dongcun-key-000000001"}))
    ok(client.post("/api/v1/carriers/YTO/couriers", headers=ADMIN_H, json={
        "name": "王师傅", "phone": "13900000001", "pin": "482913", "stations": [STATION]}))
    ok(client.post("/api/v1/carriers/YTO/couriers", headers=ADMIN_H, json={
        "name": "别站的", "phone": "13900000002", "pin": "771204", "stations": ["lz-dongcun-02"]}))


def _jincun(capsys, *args: str) -> tuple[int, dict | None, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    last = out.out.strip().splitlines()[-1] if out.out.strip() else ""
    return rc, json.loads(last) if last.startswith("{") else None, out.err


def _connect(port: int, user: str, password: str, client_id: str,
             ca: Path | None = None) -> tuple[mqtt.Client | None, str]:
    """Connect to the broker (over TLS, verifying it against ca, when given); return the connected client,
    or None and the broker's reason."""
    done = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason, properties):
        result["reason"] = reason
        done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    if ca is not None:
        c.tls_set(ca_certs=str(ca))
    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert done.wait(10), "no CONNACK"
    if result["reason"].is_failure:
        c.loop_stop()
        c.disconnect()
        return None, str(result["reason"])
    return c, "ok"


def test_enroll_provision_and_connect(cloud, pg_url, tmp_path, capsys, monkeypatch):
    _register(cloud)
    monkeypatch.setenv("JINCUN_DATABASE_URL", pg_url)

    # the county issues a token; issuing again withdraws the first one
    first = cloud.post(f"/api/v1/admin/stations/{STATION}/enroll-token", headers=ADMIN_H, json={})
    assert first.status_code == 201, first.text
    rc, issued, _ = _jincun(capsys, "cloud", "enroll-token", STATION, "--ttl-h", "2")
    assert rc == 0 and issued["station"] == STATION
    token = issued["token"]

    etc = tmp_path / "etc"
    mqtt_port, tls_port = free_port(), free_port()
    enroll_args = ["gateway", "enroll", "--cloud", str(cloud.base_url), "--db", str(tmp_path / "var" / "gw.db"),
                   "--mqtt-port", str(mqtt_port), "--listen", "127.0.0.1", "--tls-port", str(tls_port),
                   "--tls-host", "192.168.4.1"]
    rc, _, err = _jincun(capsys, *enroll_args, "--token", first.json()["token"], "--out", str(tmp_path / "x"))
    assert rc == 2 and "expired" in err
    assert not (tmp_path / "x" / "station.json").exists()

    rc, result, err = _jincun(capsys, *enroll_args, "--token", token, "--out", str(etc))
    assert rc == 0, err
    assert result["lockers"] == ["l1"] and result["couriers"] == 1
    assert {"192.168.4.1", "127.0.0.1"} <= set(result["tls_hosts"])
    ca = Path(result["ca"])
    assert oct((ca.parent / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert not list((etc / "mosquitto").rglob("ca.key"))  # the CA's key is not the broker's to read

    # the gateway's config is valid and its fresh API key is the one the cloud now accepts
    cfg = load_config(etc / "station.json")
    assert (cfg.station, cfg.name, str(cfg.cloud.url)) == (STATION, "冯家村便民店", str(cloud.base_url).rstrip("/"))
    assert oct((etc / "station.json").stat().st_mode & 0o777) == "0o600"
    consent = "/api/v1/gateway/recipients/13800000001/consent"
    assert cloud.get(consent, headers={"Authorization": f"Bearer {cfg.cloud.api_key}"}).status_code == 200
    assert cloud.get(consent, headers={"Authorization": f"Bearer {FIRST_KEY}"}).status_code in (401, 403)
    assert FIRST_KEY not in (etc / "station.json").read_text()
    courier = cfg.terminal.users[0]
    assert (courier.name, courier.carrier, courier.role) == ("王师傅", "YTO", "courier")
    assert verify_pin("482913", courier.pin_hash) and not verify_pin("482914", courier.pin_hash)

    # the token works once
    rc, _, err = _jincun(capsys, *enroll_args, "--token", token, "--out", str(tmp_path / "again"))
    assert rc == 2 and "used already" in err
    assert not (tmp_path / "again" / "station.json").exists()
    # and an enrolled station is not enrolled over
    rc, _, err = _jincun(capsys, *enroll_args, "--token", token, "--out", str(etc))
    assert rc == 2 and "enrolled already" in err

    # Mosquitto runs from the written config
    conf = etc / "mosquitto" / "mosquitto.conf"
    assert f"listener {mqtt_port} 127.0.0.1" in conf.read_text()
    broker = Broker("127.0.0.1", mqtt_port, etc / "mosquitto", conf)
    broker.start()
    wait_port("127.0.0.1", tls_port)
    try:
        # the locker's config comes from station.json: the credentials the broker knows
        device = tmp_path / "config.json"
        rc, _, err = _jincun(capsys, "firmware", "provision", "--locker", "l1", "--mqtt-host", "127.0.0.1",
                             "--station-config", str(etc / "station.json"), "--wifi-ssid", "fengjia",
                             "--wifi-password", "wifi-pass", "--out", str(device))
        assert rc == 0, err
        dev = json.loads(device.read_text())
        entry = json.loads((etc / "station.json").read_text())["lockers"][0]
        assert dev["secret"] == entry["secret"] and dev["mqtt"]["password"] == entry["mqtt_password"]
        assert [c["n"] for c in dev["comps"]] == list(range(1, 7))
        # the locker reaches the broker's TLS listener and trusts the station's CA, checking the name it dials
        m = dev["mqtt"]
        assert (m["port"], m["tls"], m["server_hostname"]) == (tls_port, True, "127.0.0.1")
        dev_ca = tmp_path / "device-ca.pem"
        dev_ca.write_text(ssl.DER_cert_to_PEM_cert(base64.b64decode(m["ca"])))
        assert ssl.PEM_cert_to_DER_cert(ca.read_text()) == base64.b64decode(m["ca"])

        gw, why = _connect(mqtt_port, cfg.mqtt.username, cfg.mqtt.password, "gw-test")
        assert gw is not None, why
        got = threading.Event()
        gw.on_message = lambda c, u, msg: got.set()
        gw.subscribe(f"{C.PREFIX}/{STATION}/#", qos=1)
        locker, why = _connect(m["port"], m["user"], m["password"], m["client_id"], ca=dev_ca)
        assert locker is not None, why
        locker.publish(f"{C.PREFIX}/{STATION}/l1/status", b"online", qos=1).wait_for_publish(10)
        assert got.wait(10), "the gateway did not receive the locker's message"
        # over TLS, the broker proves itself with the station's CA
        tls_locker, why = _connect(tls_port, m["user"], m["password"], m["client_id"] + "-tls", ca=ca)
        assert tls_locker is not None, why
        tls_locker.loop_stop()
        tls_locker.disconnect()
        other = make_station_ca(tmp_path / "other-ca", tmp_path / "other-srv", station="x", hosts=["127.0.0.1"])
        with pytest.raises(ssl.SSLCertVerificationError):
            _connect(tls_port, m["user"], m["password"], "impostor-check", ca=other["ca.pem"])
        wrong, why = _connect(mqtt_port, m["user"], m["password"] + "x", "wrong-pass")
        assert wrong is None and ("Not authorized" in why or "Bad user name or password" in why), why
        for c in (gw, locker):
            c.loop_stop()
            c.disconnect()

        # a locker the cloud did not list: added to station.json and the broker's files, nothing unrecorded
        rc, _, err = _jincun(capsys, "firmware", "provision", "--locker", "l2", "--mqtt-host", "127.0.0.1",
                             "--comps", "4S", "--station-config", str(etc / "station.json"),
                             "--broker-dir", str(etc / "mosquitto"), "--out", str(tmp_path / "l2.json"))
        assert rc == 0, err
        assert [lk.id for lk in load_config(etc / "station.json").lockers] == ["l1", "l2"]
        assert "user l2" in (etc / "mosquitto" / "acl").read_text()
        broker.restart()
        l2 = json.loads((tmp_path / "l2.json").read_text())["mqtt"]
        c2, why = _connect(l2["port"], l2["user"], l2["password"], l2["client_id"], ca=dev_ca)
        assert c2 is not None, why
        c2.loop_stop()
        c2.disconnect()
    finally:
        broker.stop()
