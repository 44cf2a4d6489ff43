"""Chinese on the locker's display: every message drawn under MicroPython equals its build-time image.

The glyph file is built here from the CJK font with Pillow (as `jincun firmware glyphs` and the deploy do).
MicroPython draws each message with jc/display.py through micropython-lib's ssd1306 driver on a recording
I2C bus; the frame the driver sends must equal the 128x64 image Pillow renders of the same message.
"""

import json
import subprocess

import pytest

from jc import msgs as M
from jincun import fwtools, glyphs
from simulator.locker import _find_micropython

pytestmark = pytest.mark.micropython

# every message with the values the controller fills in: one and several compartments, short and long lockouts
SAMPLES = [M.ENTER_CODE, M.SAFE_ENTER_CODE, M.LOCKED % (30, 30), M.LOCKED % (900, 900),
           M.TAKE_PARCEL % ("3", "3"), M.TAKE_PARCEL % ("1,2", "1,2"), M.TAKE_PARCEL % ("10,11,12", "10,11,12"),
           M.NOTHING_TO_COLLECT, M.WRONG_CODE, M.DEPOSIT_IN % ("7", "7"), M.DEPOSIT_IN % ("4,12", "4,12"),
           M.NONE_FREE, "*", "******"]

PROG = r'''
import gc, json, sys
import ssd1306
from jc.display import Display, Glyphs

class Bus:
    def __init__(self):
        self.frame = bytearray(1024)  # made once, so the copy of each frame sent takes no heap
    def writeto(self, addr, data):
        pass
    def writevto(self, addr, parts):
        self.frame[:] = parts[1]

texts = json.load(open("texts.json"))
bus = Bus()
oled = ssd1306.SSD1306_I2C(128, 64, bus, 0x3C)
gc.collect()
free0 = gc.mem_free()
disp = Display(oled, Glyphs("glyphs.bin"))
gc.collect()
free1 = gc.mem_free()
peak = 0
for t in texts:
    gc.collect()
    before = gc.mem_free()
    disp.show(t)
    peak = max(peak, before - gc.mem_free())
    print(json.dumps({"text": t, "frame": bus.frame.hex()}))
gc.collect()
free2 = gc.mem_free()
for _ in range(20):  # the steady state: the same messages again and again
    for t in texts:
        disp.show(t)
        disp.show("*")
gc.collect()
print(json.dumps({"held_b": free0 - free1, "first_b": free1 - free2, "render_peak_b": peak,
                  "growth_b": free2 - gc.mem_free()}))
'''


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    try:
        data = glyphs.build()
    except glyphs.GlyphError as e:
        pytest.fail(f"the glyph file cannot be built here: {e}")
    d = tmp_path_factory.mktemp("display")
    (d / "glyphs.bin").write_bytes(data)
    (d / "texts.json").write_text(json.dumps(SAMPLES, ensure_ascii=False))
    (d / "prog.py").write_text(PROG)
    out = subprocess.run([_find_micropython(), "prog.py"], cwd=d, capture_output=True, text=True, timeout=60,
                         env={"MICROPYPATH": fwtools.micropypath()})
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    return data, lines[:-1], lines[-1]


def test_checked_in_glyph_file_is_current_and_small(built):
    data, _, _ = built
    assert (fwtools.FIRMWARE / fwtools.GLYPHS).read_bytes() == data, "run `jincun firmware glyphs`"
    assert len(data) < 4096
    assert fwtools.check_glyphs() == "current"


def test_every_message_on_the_display_equals_its_build_time_image(built):
    _, frames, _ = built
    assert [f["text"] for f in frames] == SAMPLES
    seen = set()
    for f in frames:
        expected = glyphs.screen(f["text"])
        assert bytes.fromhex(f["frame"]) == expected, f["text"]
        assert any(expected)
        seen.add(expected)
    assert len(seen) == len(SAMPLES)  # each message looks different on the screen


def test_a_message_is_the_chinese_half_in_the_font(built):
    """The build-time image itself: the Chinese half, drawn by Pillow at the layout's positions."""
    img = glyphs.screen(M.WRONG_CODE)
    cells = [glyphs.render_cell(ch) for ch in "取件码错误"]
    for i, cell in enumerate(cells):
        for y in range(glyphs.HEIGHT):
            for x in range(cell.width):
                lit = bool(img[(y // 8) * 128 + i * 16 + x] >> (y % 8) & 1)
                assert lit == bool(cell.getpixel((x, y)))
    assert not any(img[256:])  # one line: the lower three are dark


def test_display_heap_stays_within_budget(built):
    _, _, heap = built
    # measured with gc.mem_free() under MicroPython (64-bit unix port: objects about twice their ESP32 size)
    assert heap["growth_b"] <= 512, heap  # drawing messages over and over keeps nothing (GC noise aside)
    assert heap["held_b"] <= 1024, heap  # the open glyph file, two glyph buffers: never the whole file
    # one message's line strings and characters, garbage once drawn (about 1 KB; one early render takes ~3 KB)
    assert heap["render_peak_b"] <= 4096, heap
    print(json.dumps(heap))


def test_glyphs_command_writes_the_file_and_check_catches_a_stale_one(built, tmp_path):
    data, _, _ = built
    out = subprocess.run([fwtools.REPO / ".venv" / "bin" / "jincun", "firmware", "glyphs", "--out",
                          str(tmp_path / "glyphs.bin")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["bytes"] == len(data)
    assert (tmp_path / "glyphs.bin").read_bytes() == data
    stale = bytearray(data)
    stale[-1] ^= 0xFF
    (tmp_path / "glyphs.bin").write_bytes(bytes(stale))
    assert fwtools.check_glyphs(tmp_path).startswith("stale")
