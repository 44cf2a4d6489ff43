"""Display: micropython-lib's SSD1306 driver on a recording I2C bus, Chinese from the glyph file, redraw on change."""

import sys

import framebuf
import ssd1306
from check import eq, true
from jc import msgs as M
from jc.display import Display, Glyphs, draw, english, lines, wrap


class Bus:
    """Records I2C writes (there is no display here)."""

    def __init__(self):
        self.writes = []

    def writeto(self, addr, data):
        self.writes.append((addr, bytes(data)))

    def writevto(self, addr, parts):
        self.writes.append((addr, b"".join(bytes(p) for p in parts)))


def _glyph_file():
    for d in sys.path:
        try:
            open(d + "/glyphs.bin").close()
            return d + "/glyphs.bin"
        except OSError:
            pass
    raise AssertionError("glyphs.bin not on the path")


def test_english_half_and_wrapping():
    eq(english("请输入取件码 / Enter code"), "Enter code")
    eq(english("已锁定 30秒 / Locked 30s"), "Locked 30s")
    eq(english("******"), "******")
    eq(wrap("Take parcel: 1,2,3,4,5,6,7,8,9,10,11,12"), ["Take parcel:", "1,2,3,4,5,6,7,8,", "9,10,11,12"])


def test_lines_break_by_pixel_width():
    eq(lines("请取件 1,2号格口"), ["请取件 1,2号格口"])  # 48 + 8 + 24 + 48 = 128: fits
    eq(lines("请取件 10,12号格口"), ["请取件", "10,12号格口"])
    eq(lines("维护模式 请输入取件码"), ["维护模式", "请输入取件码"])
    eq(lines("1,2,3,4,5,6,7,8,9,10,11,12号格口"), ["1,2,3,4,5,6,7,8,", "9,10,11,12号格口"])


def test_driver_sends_the_frame_once_per_change():
    bus = Bus()
    oled = ssd1306.SSD1306_I2C(128, 64, bus, 0x3C)
    true((0x3C, b"\x80\xaf") in bus.writes)  # display on
    d = Display(oled, Glyphs(_glyph_file()))
    n = len(bus.writes)
    d.show(M.ENTER_CODE)
    frames = [w for _, w in bus.writes[n:] if w[0] == 0x40]
    eq(len(frames), 1)
    eq(len(frames[0]), 1 + 1024)
    eq(frames[0][1:], bytes(oled.buffer))  # what the driver sent is the frame drawn
    true(any(frames[0][1:]))
    d.show(M.ENTER_CODE)
    eq(d.writes, 1)
    d.show("***")
    eq(d.writes, 2)


def test_chinese_drawn_from_glyphs_english_without_them():
    buf = bytearray(1024)
    fb = framebuf.FrameBuffer(buf, 128, 64, framebuf.MONO_VLSB)
    g = Glyphs(_glyph_file())
    draw(fb, g, M.WRONG_CODE)
    zh = bytes(buf)
    draw(fb, None, M.WRONG_CODE)
    en = bytes(buf)
    fb.fill(0)
    fb.text("Wrong code", 0, 0, 1)
    eq(en, bytes(buf))  # no glyph file: the English half in the built-in font
    true(zh != en and any(zh))
    draw(fb, g, "未知 / Unknown")  # characters the file lacks: English
    fb2 = framebuf.FrameBuffer(bytearray(1024), 128, 64, framebuf.MONO_VLSB)
    fb2.text("Unknown", 0, 0, 1)
    eq(bytes(buf), bytes(fb2))  # same picture as the built-in font draws


def test_glyph_lookup_reads_one_glyph_at_a_time():
    g = Glyphs(_glyph_file())
    true(g.count >= 40)
    eq(g.find(ord("取"))[0], 16)
    eq(g.find(ord("7"))[0], 8)
    eq(g.find(ord("未")), None)
    g.close()
