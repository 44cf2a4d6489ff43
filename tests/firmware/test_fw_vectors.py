"""The firmware's codec (under the real MicroPython) agrees with the normative test vectors."""

import json
import subprocess

from jincun.fwtools import micropypath
from simulator.locker import REPO, _find_micropython

VECTORS = REPO / "tests" / "vectors"
MP_DIR = REPO / "tests" / "firmware" / "mp"


def test_firmware_codec_matches_vectors():
    env = {"MICROPYPATH": micropypath(), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([_find_micropython(), str(MP_DIR / "vectors_check.py"), str(VECTORS)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    counts = {k: len(json.loads((VECTORS / f"{k}.json").read_text())["cases"]) for k in ("payloads", "wire", "topics", "codes")}
    assert {k: res[k] for k in counts} == counts
    fw = json.loads((VECTORS / "fwupdate.json").read_text())
    assert res["fwupdate"] == len(fw["payloads"]) + len(fw["macs"]) + len(fw["pins"])
    assert res["failures"] == []
