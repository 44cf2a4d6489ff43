"""The maintenance console: micropython-lib's aiorepl beside the controller, off unless config.json asks."""

import json
import subprocess

import pytest

from jincun.fwtools import micropypath
from simulator.locker import _find_micropython

pytestmark = pytest.mark.micropython

CFG = {"station": "s1", "locker": "l1", "secret": "ab" * 32,
       "mqtt": {"host": "127.0.0.1", "port": 1, "user": "l1", "password": "pw", "client_id": "l1"},
       "comps": [{"n": 1, "size": "S"}, {"n": 2, "size": "M"}]}

PROG = r'''
import asyncio, json, sys
from jc.app import App, check_config
from jc.hal import Hal
from jc.clock import VirtualClock
cfg = json.load(open("config.json"))
app = App(cfg, Hal(), clock=VirtualClock(), root="")
from jc import console
app.done = asyncio.Event()  # the typed input ends by setting it
async def main():
    asyncio.create_task(console.run(app, lambda *a: print(*a)))
    await asyncio.wait_for_ms(app.done.wait(), 5000)
asyncio.run(main())
'''


def _run(tmp_path, cfg, typed):
    (tmp_path / "prog.py").write_text(PROG)
    (tmp_path / "config.json").write_text(json.dumps(cfg))  # a file: a long argv line crashes this unix port
    return subprocess.run([_find_micropython(), "prog.py"], input=typed, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env={"MICROPYPATH": micropypath()})


def test_console_answers_about_the_running_controller(tmp_path):
    out = _run(tmp_path, CFG, "app.locker\nsorted(app.comps)\nawait asyncio.sleep_ms(1)\napp.done.set()\n")
    assert "maintenance console" in out.stdout, out.stdout + out.stderr
    assert "jincun> " in out.stdout
    assert "'l1'" in out.stdout and "[1, 2]" in out.stdout, out.stdout + out.stderr


def test_console_key_is_checked(tmp_path):
    prog = ("import json, sys\nfrom jc.app import check_config, ConfigError\n"
            "for c in json.load(open('cfgs.json')):\n"
            "    try:\n        check_config(c); print('ok')\n    except ConfigError as e:\n        print(e)\n")
    cfgs = [CFG, dict(CFG, console=True), dict(CFG, console="yes")]
    (tmp_path / "prog.py").write_text(prog)
    (tmp_path / "cfgs.json").write_text(json.dumps(cfgs))
    out = subprocess.run([_find_micropython(), "prog.py"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env={"MICROPYPATH": micropypath()})
    assert out.stdout.splitlines() == ["ok", "ok", "config.json: bad or missing console (true|false)"], out.stderr
