"""The station broker config from gateway/broker.py, enforced by a real Mosquitto."""

import time

import paho.mqtt.client as mqtt
import pytest

from gateway.broker import acl_text, password_line

from gwkit import STATION, PahoLocker, free_port, make_config


def test_acl_is_deny_by_default_and_names_every_locker(tmp_path):
    text = acl_text(make_config(tmp_path))
    assert "pattern" not in text and "topic #" not in text
    assert f"user l2\ntopic write jc/v1/{STATION}/l2/birth" in text
    assert f"topic read jc/v1/{STATION}/l1/cmd" in text
    assert f"topic write jc/v1/{STATION}/l1/fwreq" in text and f"topic read jc/v1/{STATION}/l1/fwreq" not in text
    assert password_line("u", "p", salt=b"0" * 12).startswith("u:$7$101$")


def test_locker_cannot_publish_on_another_lockers_topic(station, lockers):
    cfg, broker = station
    spy = PahoLocker(broker.port, "gateway", "gw-pass-1234", auto_ack=False)
    spy.connect(subscribe=False)
    spy.c.subscribe(f"jc/v1/{STATION}/#", qos=1)
    time.sleep(0.2)
    l1 = lockers(broker.port, "l1").connect()
    l1.pub("evt", {"v": 1, "forged": True}, topic=f"jc/v1/{STATION}/l2/evt")
    l1.pub("evt", {"v": 1, "own": True})
    got = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not any(b.get("own") for _, b in got):
        try:
            got.append(spy.msgs.get(timeout=0.1))
        except Exception:  # queue.Empty
            pass
    assert any(t == f"jc/v1/{STATION}/l1/evt" for t, _ in got), "own topic must pass"
    assert not any(b.get("forged") for _, b in got), "forged message reached the gateway"
    spy.close()


def test_locker_cannot_subscribe_to_another_lockers_commands(station, lockers):
    cfg, broker = station
    l1 = lockers(broker.port, "l1").connect(subscribe=False)
    granted = []
    l1.c.on_subscribe = lambda c, u, mid, rcs, props=None: granted.extend(rcs)
    # Mosquitto may grant the SUBACK, but the ACL is checked again on every delivery: nothing arrives
    l1.c.subscribe([(f"jc/v1/{STATION}/l2/cmd", 1), (f"jc/v1/{STATION}/l1/cmd", 1), (f"jc/v1/{STATION}/#", 1)])
    deadline = time.monotonic() + 3
    while len(granted) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(granted) == 3 and not granted[1].is_failure
    gw = PahoLocker(broker.port, "gateway", "gw-pass-1234", auto_ack=False).connect(subscribe=False)
    time.sleep(0.2)
    gw.pub("cmd", {"v": 1, "id": "c-1", "op": "rebirth"}, topic=f"jc/v1/{STATION}/l2/cmd")
    gw.pub("cmd", {"v": 1, "id": "c-2", "op": "rebirth"}, topic=f"jc/v1/{STATION}/l1/cmd")
    deadline = time.monotonic() + 3
    while not any(c["id"] == "c-2" for c in l1.cmds) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [c["id"] for c in l1.cmds] == ["c-2"]
    gw.close()


@pytest.mark.parametrize("user,password", [("l1", "wrong-password"), ("nobody", "l1-pass-1234")])
def test_bad_credentials_refused(station, user, password):
    cfg, broker = station
    lk = PahoLocker(broker.port, "l1", password, username=user)
    lk.connect(subscribe=False, wait=False)
    try:
        assert lk.rc is not None and lk.rc.is_failure
    finally:
        lk.c.loop_stop()


def test_anonymous_refused(station):
    cfg, broker = station
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="anon")
    rcs = []
    c.on_connect = lambda cl, u, f, rc, p=None: rcs.append(rc)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    deadline = time.monotonic() + 3
    while not rcs and time.monotonic() < deadline:
        time.sleep(0.02)
    c.loop_stop()
    assert rcs and rcs[0].is_failure


def test_write_broker_config_runs_as_is(tmp_path):
    """The full file (with its own listener and persistence) starts a broker the gateway can log into."""
    import subprocess
    from gateway.broker import write_broker_config
    port = free_port()
    cfg = make_config(tmp_path, port)
    conf = write_broker_config(cfg, tmp_path / "mosq")  # run_as "auto": works as root too
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        gw = None
        while time.monotonic() < deadline:
            try:
                gw = PahoLocker(port, "gateway", "gw-pass-1234").connect(subscribe=False)
                break
            except (ConnectionError, OSError):
                time.sleep(0.05)
        assert gw is not None and not gw.rc.is_failure
        gw.close()
    finally:
        proc.terminate()
        proc.wait(10)
