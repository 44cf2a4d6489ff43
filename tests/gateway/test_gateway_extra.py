"""The station gateway runs in a virtualenv holding only `jincun[gateway]`: what a Pi installs.

The venv is built once per pyproject.toml (kept in pytest's cache) with `pip install '.[gateway]'`; the
gateway then runs from this checkout's sources (PYTHONPATH) on that venv's packages only, so a new import of
a cloud or simulator package by the gateway fails here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from simulator.net import free_port
from simulator.procs import stop_process
from tests.conftest import REPO
from tests.gateway.gwkit import config_data


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _cached_venv(request, name: str, *pip_args: str) -> Path:
    """A venv built once per pyproject.toml (kept in pytest's cache) with `pip install *pip_args`."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    root = Path(request.config.cache.mkdir(name))
    venv = root / key
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest runs in one checkout build it once
        if not (venv / ".complete").exists():
            for old in root.iterdir():
                if old.is_dir():
                    shutil.rmtree(old)
            # the interpreter the project targets, not this venv's: a venv made from a venv would see its packages
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
            subprocess.run([str(_venv_python(venv)), "-m", "pip", "install", "-q", *pip_args],
                           check=True, timeout=600, cwd=REPO, capture_output=True)
            (venv / ".complete").write_text(key)
    return venv


@pytest.fixture(scope="session")
def gateway_venv(request) -> Path:
    """A venv with `pip install '.[gateway]'` and nothing else, rebuilt when pyproject.toml changes."""
    return _cached_venv(request, "gateway-venv", f"{REPO}[gateway]")


@pytest.fixture(scope="session")
def base_venv(request) -> Path:
    """The base install: the project alone, none of its extras."""
    return _cached_venv(request, "base-venv", str(REPO))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JINCUN_", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(REPO)  # this checkout's code, the venv's packages
    env["PATH"] = "/usr/bin:/bin"
    return env


def test_the_gateway_extra_holds_no_cloud_or_simulator_package(gateway_venv):
    probe = ("import importlib, json\n"
             "out = {}\n"
             "for m in ('gateway.app', 'fastapi', 'uvicorn', 'paho.mqtt.client', 'serial', 'orjson', 'httpx',\n"
             "          'sqlalchemy', 'alembic', 'influxdb_client', 'cloud.app', 'simulator.runner', 'yaml', 'rich',\n"
             "          'matplotlib', 'skidl', 'playwright'):\n"
             "    try:\n"
             "        importlib.import_module(m); out[m] = 'ok'\n"
             "    except ModuleNotFoundError as exc:\n"
             "        out[m] = exc.name\n"
             "print(json.dumps(out))\n")
    out = subprocess.run([str(_venv_python(gateway_venv)), "-c", probe], capture_output=True, text=True,
                         env=_env(), cwd=gateway_venv, timeout=60, check=True)
    got = json.loads(out.stdout)
    assert {m for m, v in got.items() if v == "ok"} == {
        "gateway.app", "fastapi", "uvicorn", "paho.mqtt.client", "serial", "orjson", "httpx"}
    # the cloud's and the simulator's code ship in the wheel, but cannot run without their extras
    assert got["cloud.app"] != "ok" and got["simulator.runner"] != "ok"


@pytest.mark.parametrize("args, extra", [(["cloud", "serve"], "cloud"), (["sim", "run", "x.yaml"], "sim"),
                                          (["demo", "--headless"], "sim")])
def test_a_command_of_a_missing_tier_names_its_extra(gateway_venv, args, extra):
    out = subprocess.run([str(gateway_venv / "bin" / "jincun"), *args], capture_output=True, text=True,
                         env=_env(), cwd=gateway_venv, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert f"pip install 'jincun[{extra}]'" in out.stderr.strip().splitlines()[-1]


def test_the_gateway_runs_with_only_its_extra(gateway_venv, station, lockers, tmp_path):
    _cfg, broker = station
    http_port = free_port()
    conf = tmp_path / "station.json"
    conf.write_text(json.dumps(config_data(tmp_path, broker.port, http={"port": http_port})))
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen([str(gateway_venv / "bin" / "jincun"), "gateway", "run", "--config", str(conf)],
                            stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path)
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health is not None, (tmp_path / "gateway.log").read_text()
        assert health["station"] == "demo-01"
        deadline = time.monotonic() + 10
        while health["broker"] != "up" and time.monotonic() < deadline:
            time.sleep(0.1)
            health = httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=2).json()
        assert health["broker"] == "up"
        l1 = lockers(broker.port, "l1").connect()
        l1.online()
        l1.birth()
        l1.evt("door", c=1, open=True)
        deadline = time.monotonic() + 15
        while l1.acked() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert l1.acked() == 1, (tmp_path / "gateway.log").read_text()  # stored in the outbox, then eacked
        # the cloud is out of reach: the event waits in the station's outbox
        after = httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=2).json()
        assert after["outbox_depth"] >= 1 and after["uplink"] == "down" and after["lockers_online"] == 1
        assert after["counters"]["eacks_sent"] == 1
    finally:
        stop_process(proc, 10)
        log.close()


@pytest.mark.parametrize("args, extra", [(["gateway", "run"], "gateway"), (["cloud", "migrate"], "cloud"),
                                          (["firmware", "check"], "firmware"), (["hw", "check"], "hardware"),
                                          (["wire", "verdicts"], "cloud")])
def test_the_base_install_names_the_extra_each_command_needs(base_venv, args, extra):
    version = subprocess.run([str(base_venv / "bin" / "jincun"), "--version"], capture_output=True, text=True,
                             env=_env(), cwd=base_venv, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("jincun ")
    out = subprocess.run([str(base_venv / "bin" / "jincun"), *args], capture_output=True, text=True,
                         env=_env(), cwd=base_venv, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == [
        next(line for line in out.stderr.splitlines() if line.startswith("jincun: error: "))]
    assert f"pip install 'jincun[{extra}]'" in out.stderr
