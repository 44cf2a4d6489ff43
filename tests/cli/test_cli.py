"""The `jincun` command as a user meets it: a version, help on every option, and one-line user errors."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from jincun.cli import build_parser
from simulator.net import free_port, wait_port
from simulator.procs import stop_process
from tests.conftest import REPO


def _jincun(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("JINCUN_")}
    full.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", "jincun", *args], capture_output=True, text=True,
                          timeout=60, env=full, cwd=REPO)


def test_version_is_the_package_version():
    want = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    out = _jincun("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"jincun {want}"


def _walk(parser: argparse.ArgumentParser, path: str = "jincun"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_option_has_help():
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in _walk(build_parser())
               if not a.help or a.help == argparse.SUPPRESS]
    assert missing == []


def _bare_options(help_text: str) -> list[str]:
    """Options that argparse printed with no help text after them."""
    lines = help_text.splitlines()
    bare = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("-") or not line.startswith("  ") or line.startswith("   "):
            continue
        has_text = "  " in stripped
        continued = i + 1 < len(lines) and lines[i + 1].startswith(" " * 8) and not lines[i + 1].strip().startswith("-")
        if not has_text and not continued:
            bare.append(stripped)
    return bare


def test_bare_option_finder_sees_a_missing_help():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int)
    p.add_argument("--rate", type=int, help="how fast")
    assert _bare_options(p.format_help()) == ["--seed SEED"]


@pytest.mark.parametrize("bench", ["cloud", "gateway", "firmware"])
def test_bench_help_names_every_option(bench):
    out = _jincun("bench", bench, "--help")
    assert out.returncode == 0
    assert "--" in out.stdout
    assert _bare_options(out.stdout) == []


USER_MISTAKES = {
    "gateway run": (["gateway", "run", "--config", "/nonexistent/station.json"], "--config", None),
    "gateway init": (["gateway", "init", "--config", "/nonexistent/station.json"], "--config", None),
    "cloud serve": (["cloud", "serve", "--port", "1"], "JINCUN_ADMIN_TOKEN", None),
    "firmware provision": (["firmware", "provision", "--station", "s1", "--locker", "l1", "--mqtt-host", "h",
                            "--comps", "40S", "--out", "/tmp/jc-never-written.json"], "32 compartments", None),
    "firmware deploy": (["firmware", "deploy", "--port", "/dev/null", "--config", "/nonexistent/c.json"],
                        "provision", None),
    "firmware flash": (["firmware", "flash", "--port", "/dev/null", "--image", "/nonexistent/mp.bin", "--dry-run"],
                       "docs/firmware.md, Flashing", None),
    "sim run": (["sim", "run", "/nonexistent/scenario.yaml"], "/nonexistent/scenario.yaml", None),
    "bench": (["bench", "cloud", "--stations", "many"], "--stations", None),
    "unknown command": (["flash"], "invalid choice", None),
}


@pytest.mark.parametrize("case", sorted(USER_MISTAKES))
def test_a_user_mistake_prints_one_line_and_exits_2(case):
    args, says, env = USER_MISTAKES[case]
    out = _jincun(*args, env=env)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and not ln.startswith(("usage:", " "))]
    assert len(lines) == 1, out.stderr
    assert says in lines[0]


def test_firmware_deploy_refuses_a_plain_config_and_names_the_fix(tmp_path):
    import json
    cfg = {"station": "s1", "locker": "l1", "secret": "ab" * 32, "comps": [{"n": 1, "size": "S"}],
           "mqtt": {"host": "10.0.0.2", "port": 1883, "user": "l1", "password": "pw-Zq8x", "client_id": "l1"},
           "wifi": {"ssid": "station", "password": "w"}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = _jincun("firmware", "deploy", "--port", "/dev/null", "--config", str(tmp_path / "c.json"))
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "mqtt.tls missing" in lines[0] and "jincun firmware provision" in lines[0]


def test_firmware_provision_without_a_station_json_writes_nothing(tmp_path):
    out = _jincun("firmware", "provision", "--station", "s1", "--locker", "l1", "--mqtt-host", "10.0.0.2",
                  "--station-config", str(tmp_path / "station.json"), "--out", str(tmp_path / "c.json"))
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "jincun gateway enroll" in lines[0], out.stderr
    assert list(tmp_path.iterdir()) == []  # no plain config, no half-made station.json


def test_cloud_migrate_upgrade_current_and_history(pg_url):
    env = {"JINCUN_DATABASE_URL": pg_url}
    heads = sorted(p.stem.split("_", 1)[0] for p in (REPO / "cloud" / "migrations" / "versions").glob("0*.py"))
    newest = heads[-1]
    before = _jincun("cloud", "migrate", "current", env=env)
    assert before.returncode == 0, before.stderr
    assert newest not in before.stdout
    up = _jincun("cloud", "migrate", env=env)
    assert up.returncode == 0, up.stderr
    now = _jincun("cloud", "migrate", "current", env=env)
    assert f"{newest} (head)" in now.stdout
    hist = _jincun("cloud", "migrate", "history", env=env)
    assert all(rev in hist.stdout for rev in heads)
    assert "(current)" in hist.stdout


def test_alembic_ini_runs_by_hand(pg_url):
    alembic = Path(sys.executable).parent / "alembic"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINCUN_")}
    env.update(PYTHONPATH=str(REPO), JINCUN_DATABASE_URL=pg_url)
    up = subprocess.run([str(alembic), "-c", "cloud/alembic.ini", "upgrade", "head"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert "Running upgrade" in up.stderr
    migrated = _jincun("cloud", "migrate", "current", env={"JINCUN_DATABASE_URL": pg_url})
    assert "(head)" in migrated.stdout


def test_cloud_serve_runs_several_workers(pg_url, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINCUN_")}
    env.update(PYTHONPATH=str(REPO), JINCUN_DATABASE_URL=pg_url, JINCUN_ADMIN_TOKEN="workers-admin-token-0123456789")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jincun", "cloud", "serve", "--port", str(port),
                                 "--workers", "2"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(100):
                if log.read_text().count("Application startup complete") >= 2:
                    break
                time.sleep(0.2)
            assert client.get("/api/v1/health").status_code == 200
            # the admin token reaches every worker: a staff call is accepted whichever worker takes it
            h = {"Authorization": "Bearer workers-admin-token-0123456789"}
            assert all(client.get("/api/v1/admin/ledger", params={"station": "s1"}, headers=h).status_code == 200 for _ in range(6))
        text = log.read_text()
        assert text.count("Started server process") == 2, text
        assert "Traceback" not in text
    finally:
        stop_process(proc)


def test_workers_must_be_positive():
    out = _jincun("cloud", "serve", "--workers", "0")
    assert out.returncode == 2
    assert "less than 1" in out.stderr
