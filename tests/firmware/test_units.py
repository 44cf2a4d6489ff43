"""Pure unit tests of the firmware modules, run inside the real MicroPython interpreter."""

import subprocess

import pytest

from jincun.fwtools import micropypath
from simulator.locker import REPO, _find_micropython

MP_DIR = REPO / "tests" / "firmware" / "mp"
MODULES = sorted(p.stem for p in MP_DIR.glob("test_*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_micropython_module(module, tmp_path):
    env = {"MICROPYPATH": micropypath(), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [_find_micropython(), "-X", "heapsize=8M", str(MP_DIR / "runner.py"), str(MP_DIR), module, str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env)
    report = out.stdout + out.stderr
    assert "DONE" in report, report
    assert out.returncode == 0, report
    assert "FAIL" not in report, report
    ran = int(report.split("DONE", 1)[1].split()[0])
    assert ran > 0 and report.count("PASS") == ran, report
