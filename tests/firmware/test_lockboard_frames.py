"""The firmware's RS-485 frames (under MicroPython) are byte for byte the gateway's KR-CU16 codec frames."""

import json
import subprocess

from gateway import lockboard_codec as gw
from simulator.locker import FIRMWARE, _find_micropython

CASES = [(0, 1, 0x61), (1, 16, 0x61), (3, 0, 0x60), (0x1F, 7, 0x51), (2, 0, 0x50)]


def test_firmware_frames_match_gateway_codec():
    prog = ("import json\nfrom jc.lockboard import frame\n"
            f"print(json.dumps([frame(a, l, c).hex() for a, l, c in {CASES!r}]))\n")
    env = {"MICROPYPATH": f"{FIRMWARE}:.frozen", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([_find_micropython(), "-c", prog], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip())
    assert got == [gw.frame(a, l, c).hex() for a, l, c in CASES]
    m = gw.MODELS["kr-cu16"]
    assert gw.open_request(m, 1, 4).hex() == got[0][:0] + gw.frame(1, 4, 0x61).hex()
