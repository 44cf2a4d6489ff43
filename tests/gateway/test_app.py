"""The gateway process: start-up checks, supervision across a broker restart, clean stop on SIGTERM."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gwkit import free_port, until

from gateway.stationdb_migrations import latest

REPO = Path(__file__).resolve().parents[2]


async def test_link_comes_back_after_a_broker_restart(gateway, lockers):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth()
    l1.evt("door", c=1, open=True)
    await until(lambda: l1.acked() == 1)
    gateway.broker.restart()
    await until(lambda: gateway.gw.counters["task_restarts"] >= 1, timeout=10, what="link restart counted")
    await until(lambda: gateway.gw.link.connected.is_set(), timeout=15, what="link reconnected")
    await until(lambda: l1.connects >= 2, timeout=15, what="locker reconnected")
    l1.birth()
    l1.online()
    l1.evt("door", c=1, open=False)
    await until(lambda: l1.acked() == 2, timeout=10, what="eack after reconnect")
    h = await gateway.gw.health()
    assert h["ok"] and h["broker"] == "up"
    assert h["db_schema"] == latest(), "the station database is at this gateway's schema version"


def test_bad_config_is_refused_with_every_problem_listed(tmp_path):
    conf = tmp_path / "station.json"
    conf.write_text(json.dumps({"station": "Demo 01", "mqtt": {"password": "..."},
                                "cloud": {"url": "http://x", "api_key": "k"}, "lockers": []}))
    out = subprocess.run([sys.executable, "-m", "gateway", str(conf)], cwd=REPO, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2
    for field in ("station", "mqtt.password", "cloud.api_key", "lockers"):
        assert field in out.stderr
    missing = subprocess.run([sys.executable, "-m", "gateway", str(tmp_path / "nope.json")], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_process_serves_health_and_stops_cleanly_on_sigterm(station, tmp_path):
    cfg, broker = station
    port = free_port()
    data = json.loads(cfg.model_dump_json())
    data["gateway"]["http"]["port"] = port
    conf = tmp_path / "station.json"
    conf.write_text(json.dumps(data))
    proc = subprocess.Popen([sys.executable, "-m", "gateway", str(conf)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 15
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                if health["broker"] == "up":
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health and health["broker"] == "up" and health["ok"]
        assert {"rejected_payloads", "unknown_lockers", "seq_gaps", "dropped_tele"} <= set(health["counters"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        log = proc.stdout.read()
        assert "stopping" in log and "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_busy_http_port_does_not_stop_the_lockers(station, lockers, tmp_path):
    import socket

    from gwkit import RunningGateway, make_config
    cfg0, broker = station
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        cfg = make_config(tmp_path, broker.port, http={"port": port})
        rg = RunningGateway(cfg)
        gw = await rg.start()
        try:
            await until(lambda: gw.counters["task_restarts"] >= 1, timeout=10, what="http failure counted")
            l1 = lockers(broker.port, "l1").connect()
            l1.online()
            l1.birth()
            l1.evt("door", c=1, open=True)
            await until(lambda: l1.acked() == 1, what="events still acked")
        finally:
            await rg.close()
