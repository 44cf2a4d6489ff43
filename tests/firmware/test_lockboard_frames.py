"""The one RS-485 codec (firmware/jc/lockboard.py): the documented KR-CU16 frames, and the same bytes and
verdicts under MicroPython (the controller) and CPython (the gateway, which imports the same module)."""

import json
import re
import subprocess
from pathlib import Path

import pytest

import gateway  # noqa: F401 (puts the firmware's jc package within reach, as the gateway does)
from jc import lockboard as L
from jincun.fwtools import micropypath
from simulator.locker import _find_micropython

CU16 = L.MODELS["kr-cu16"]
IR = L.MODELS["kr-cu16-ir"]
CASES = [(0, 1, 0x61), (1, 16, 0x61), (3, 0, 0x60), (0x1F, 7, 0x51), (2, 0, 0x50)]
# the program both interpreters run: frames, requests, status replies and the verdict on each reply
PROG = """
import json
from jc import lockboard as L
out = {"frames": [L.frame(a, l, c).hex() for a, l, c in CASES], "verdicts": []}
for name in ("kr-cu16", "kr-cu16-ir"):
    m = L.MODELS[name]
    out["frames"].append(L.status_request(m, 3).hex())
    out["frames"].append(L.open_request(m, 3, 9).hex())
    rep = L.status_reply(m, 3, 0x8201, 0x4000)
    out["frames"].append(rep.hex())
    for raw in (rep, rep[:-1] + bytes(((rep[-1] + 1) & 0xFF,)), L.frame(3, 9, m[3]), L.frame(3, 9, m[4]),
                L.frame(4, 0, m[2], rep[4:-2]), b"\\x02\\x03"):
        v = []
        for fn, args in ((L.parse_status, (m, 3, raw)), (L.parse_open, (m, 3, 9, raw))):
            try:
                v.append(fn(*args))
            except L.BoardError as e:
                v.append("error: " + str(e))
        out["verdicts"].append(v)
print(json.dumps(out))
"""


def run_here() -> dict:
    scope: dict = {"CASES": CASES}
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(PROG, scope)  # noqa: S102 (our own test program, the same text MicroPython runs)
    return json.loads(buf.getvalue())


def test_the_same_module_gives_the_same_bytes_and_verdicts_under_micropython_and_cpython():
    prog = f"CASES = {CASES!r}\n" + PROG
    env = {"MICROPYPATH": micropypath(), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([_find_micropython(), "-c", prog], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    mp = json.loads(out.stdout.strip())
    here = run_here()
    assert mp == here
    assert here["verdicts"][0] == [[0x8201, None], "error: not an open reply"], "kr-cu16 reports no occupancy"
    assert here["verdicts"][6] == [[0x8201, 0x4000], "error: not an open reply"]
    assert here["verdicts"][8][1] is True and here["verdicts"][9][1] is False


def test_frames_match_the_board_documentation():
    assert L.status_request(CU16, 0) == bytes.fromhex("020000600365")
    assert L.open_request(CU16, 1, 5) == bytes([2, 1, 5, 0x61, 3, (2 + 1 + 5 + 0x61 + 3) & 0xFF])
    assert L.open_request(IR, 0, 16)[3] == 0x51
    with pytest.raises(L.BoardError):
        L.open_request(CU16, 0, 17)
    with pytest.raises(L.BoardError):
        L.frame(0x20, 0, 0x60)


def test_status_reply_round_trip_and_bad_frames():
    raw = L.status_reply(IR, 3, 1 << 0 | 1 << 9, 1 << 15)
    assert len(raw) == L.status_reply_len(IR)
    doors, occ = L.parse_status(IR, 3, raw)
    assert [i + 1 for i in range(16) if doors >> i & 1] == [1, 10]
    assert [i + 1 for i in range(16) if occ >> i & 1] == [16]
    bad = bytearray(raw)
    bad[-1] ^= 0xFF
    with pytest.raises(L.BoardError, match="checksum"):
        L.parse_status(IR, 3, bytes(bad))
    with pytest.raises(L.BoardError, match="not a status reply"):
        L.parse_status(IR, 4, raw)  # another board's answer is never taken for this one's
    assert L.parse_open(CU16, 0, 2, L.frame(0, 2, 0x75)) is True
    assert L.parse_open(CU16, 0, 2, L.frame(0, 2, 0x76)) is False


def test_no_second_framing_in_the_gateway():
    gw = Path(__file__).resolve().parents[2] / "gateway"
    for path in gw.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^(STX|ETX)\s*=|^def (checksum|frame|parse)\(", text, re.M), path.name
