"""SSD1306 display: init sequence, English half of bilingual text, redraw only on change."""

from check import eq, true
from jc.display import Ssd1306, english, wrap


class Bus:
    """Records I2C writes (there is no display here)."""

    def __init__(self):
        self.writes = []

    def writeto(self, addr, data):
        self.writes.append((addr, bytes(data)))


def test_english_half_and_wrapping():
    eq(english("请输入取件码 / Enter code"), "Enter code")
    eq(english("已锁定 30秒 / Locked 30s"), "Locked 30s")
    eq(english("******"), "******")
    eq(wrap("Take parcel: 1,2,3,4,5,6,7,8,9,10,11,12"), ["Take parcel:", "1,2,3,4,5,6,7,8,", "9,10,11,12"])


def test_frame_sent_once_per_change():
    bus = Bus()
    d = Ssd1306(bus, 0x3C)
    true(all(a == 0x3C and w[0] == 0x80 for a, w in bus.writes))
    true((0x3C, b"\x80\xaf") in bus.writes)  # display on
    n = len(bus.writes)
    d.show("请输入取件码 / Enter code")
    frames = [w for _, w in bus.writes[n:] if w[0] == 0x40]
    eq(len(frames), 1)
    eq(len(frames[0]), 1 + 1024)
    true(any(frames[0][1:]))  # something is lit
    d.show("请输入取件码 / Enter code")
    eq(d.writes, 1)
    d.show("***")
    eq(d.writes, 2)
