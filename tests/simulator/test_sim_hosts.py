"""Controller hosts: several controllers of the real firmware in one MicroPython or CPython process, on a
real Mosquitto; and a bad actor against a broker with the stations' password file and ACL."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from gateway.broker import broker_body, write_auth_files
from gateway.config import parse_config
from jincun import provision
from jincun.fwtools import micropypath
from simulator import intruder
from simulator.cluster import HostClient
from simulator.net import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
STATION = "t-host"


def _spec(tmp_path: Path, port: int, lockers=("l1", "l2")) -> tuple[Path, int]:
    ctl_port = free_port()
    comps = provision.parse_comps("2S,1M,1L")
    ctrls = []
    for i, lk in enumerate(lockers):
        cfg = {"station": STATION, "locker": lk, "secret": "ab" * 32, "comps": comps, "tele_s": 600,
               "ajar_s": 3, "mqtt": {"host": "127.0.0.1", "port": port, "user": lk, "password": "x" * 12,
                                     "client_id": f"{STATION}-{lk}", "keepalive": 30, "backoff_max_ms": 1000}}
        ctrls.append({"dir": str(tmp_path / lk), "config": cfg, "hw": {"seed": i + 1}})
    spec = {"control_port": ctl_port, "log": str(tmp_path / "host.log"), "controllers": ctrls}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path, ctl_port


def _start(runtime: str, spec: Path, ctl_port: int, tmp_path: Path) -> subprocess.Popen:
    if runtime == "micropython":
        argv = [str(REPO / ".venv" / "bin" / "micropython"), "-X", "heapsize=4M",
                str(REPO / "simulator" / "fw_host.py"), str(spec)]
        env = dict(os.environ, MICROPYPATH=micropypath(REPO / 'simulator'))
    else:
        argv = [sys.executable, "-m", "simulator.cpython_rt", str(spec)]
        env = dict(os.environ)
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=(tmp_path / "host.out").open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", ctl_port, 15)
    except TimeoutError:
        proc.kill()
        raise AssertionError((tmp_path / "host.out").read_text()) from None
    return proc


def _ledger(tmp_path: Path, lk: str) -> list[dict]:
    p = tmp_path / lk / "ledger.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


async def _until(pred, timeout=15.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await pred()
        if got:
            return got
        await asyncio.sleep(every)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_two_controllers_share_one_process_and_each_keeps_its_own_identity_flash_and_ledger(
        runtime, mosquitto, tmp_path):
    spec, ctl_port = _spec(tmp_path, mosquitto.port)
    proc = _start(runtime, spec, ctl_port, tmp_path)
    seen: list[tuple[str, dict]] = []

    async def scenario():
        host = HostClient(ctl_port)
        await host.connect()
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="watcher") as mq:
            await mq.subscribe(f"jc/v1/{STATION}/+/+", qos=1)

            async def watch():
                async for m in mq.messages:
                    seen.append((str(m.topic), json.loads(m.payload)))
            w = asyncio.create_task(watch())

            async def both_online():
                s = (await host.call("summary"))["ctrls"]
                return all(v[1] for v in s.values()) and s
            first = await _until(both_online, 20)
            assert first["l1"][4] != first["l2"][4]  # two boots, two boot ids

            # a villager mistypes on l1, a crowbar opens a door of l2, a sensor of l2 faults
            await host.call("keys", lk="l1", keys="123456#", ms_per_key=20)
            await host.call("door", lk="l2", c=1, open=True)
            await asyncio.sleep(0.5)
            await host.call("door", lk="l2", c=1, open=False)
            await host.call("occ", lk="l2", c=2, v=None)

            def types(lk):
                return [e["type"] + ("/" + e["kind"] if "kind" in e else "") for e in _ledger(tmp_path, lk)]

            async def alarms():
                await host.call("flush")
                return ("code_bad" in types("l1") and "alarm/forced_open" in types("l2")
                        and "alarm/sensor_fault" in types("l2"))
            await _until(alarms)
            assert "code_bad" not in types("l2") and not any(t.startswith("alarm") for t in types("l1"))

            async def on_the_wire():
                evts = [(t.split("/")[3], p["type"]) for t, p in seen if t.endswith("/evt")]
                return ("l1", "code_bad") in evts and ("l2", "alarm") in evts
            await _until(on_the_wire)

            # l2 loses power: the broker reports it lost; it comes back with a new boot id, l1 never noticed
            await host.call("power", lk="l2", on=False)

            async def lost():
                return any(t.endswith("l2/status") and p.get("state") == "lost" for t, p in seen)
            await _until(lost, 20)
            await host.call("power", lk="l2", on=True)

            async def back():
                s = (await host.call("summary"))["ctrls"]
                return s["l2"][1] and s["l2"][4] != first["l2"][4] and s
            again = await _until(back, 20)
            assert again["l1"][4] == first["l1"][4]
            assert (tmp_path / "l1" / "flash" / "outbox").is_dir() and (tmp_path / "l2" / "flash" / "outbox").is_dir()
            w.cancel()
        await host.close()

    try:
        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_bad_request_on_the_control_channel_is_answered_and_the_host_keeps_going(mosquitto, tmp_path):
    spec, ctl_port = _spec(tmp_path, mosquitto.port, lockers=("l1",))
    proc = _start("cpython", spec, ctl_port, tmp_path)

    async def scenario():
        host = HostClient(ctl_port)
        await host.connect()
        with pytest.raises(Exception, match="unknown op"):
            await host.call("teleport", lk="l1")
        with pytest.raises(Exception, match="KeyError"):
            await host.call("state", lk="nope")
        assert (await host.call("state", lk="l1"))["id"] == "l1"
        await host.close()
    try:
        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_impersonator_is_refused_and_a_cloned_board_cannot_publish_for_its_neighbour(mosquitto_factory,
                                                                                        tmp_path):
    data = provision.station_config(station=STATION, name="x", db="gw.db", http_port=1, mqtt_host="127.0.0.1",
                                    mqtt_port=1, cloud_url="http://127.0.0.1:1", api_key="sim-hosts-key-7Qp2Zr9w",
                                    lockers=[provision.locker_entry(lk, provision.parse_comps("2S"))
                                             for lk in ("l1", "l2")])
    cfg = parse_config(data)
    auth = write_auth_files(cfg, tmp_path / "auth")  # the station's own password file and ACL
    run_as = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    broker = mosquitto_factory(broker_body(cfg, auth, run_as=run_as))
    got: list[str] = []

    async def scenario():
        async with aiomqtt.Client("127.0.0.1", broker.port, username=cfg.mqtt.username,
                                  password=cfg.mqtt.password, identifier="gw") as mq:
            await mq.subscribe(f"jc/v1/{STATION}/+/+", qos=1)

            async def watch():
                async for m in mq.messages:
                    got.append(str(m.topic))
            w = asyncio.create_task(watch())
            clone = next(lk for lk in cfg.lockers if lk.id == "l2")
            res = await asyncio.to_thread(intruder.attack, "127.0.0.1", broker.port, STATION, "l1",
                                          ("l2", clone.mqtt_password))
            assert res["guessed_password_refused"] and res["clone_connected"]
            # l2's own topic still works, so the watcher would have seen a delivered forgery
            assert await asyncio.to_thread(intruder.try_connect, "127.0.0.1", broker.port, "probe", "l2",
                                           clone.mqtt_password, (f"jc/v1/{STATION}/l2/tele", b"{}")) == 0
            await _until(lambda: _true(f"jc/v1/{STATION}/l2/tele" in got), 5)
            assert f"jc/v1/{STATION}/l1/evt" not in got
            w.cancel()
    asyncio.run(scenario())


async def _true(v):
    return v
