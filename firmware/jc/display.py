"""Optional SSD1306 128x64 OLED on the I2C bus: the English half of each message, drawn with framebuf.

The built-in 8x8 font has no Chinese glyphs, so the display shows the part after " / " and the keypad
prompt stays readable; the buzzer and LED carry the rest.
"""

import framebuf

WIDTH = 128
HEIGHT = 64
COLS = WIDTH // 8
ROWS = HEIGHT // 8

_INIT = (
    0xAE,  # display off
    0x20, 0x00,  # horizontal addressing
    0x40,  # start line 0
    0xA1,  # segment remap
    0xA8, HEIGHT - 1,  # multiplex
    0xC8,  # COM scan reversed
    0xD3, 0x00,  # display offset
    0xDA, 0x12,  # COM pins
    0xD5, 0x80,  # clock divide
    0xD9, 0xF1,  # pre-charge
    0xDB, 0x30,  # VCOMH
    0x81, 0xFF,  # contrast
    0xA4,  # follow RAM
    0xA6,  # not inverted
    0x8D, 0x14,  # charge pump on
    0xAF,  # display on
)


def english(text):
    """The part of a bilingual 'zh / en' message the font can draw."""
    if " / " in text:
        text = text.split(" / ", 1)[1]
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def wrap(text, cols=COLS, rows=ROWS):
    """Split into at most `rows` lines of `cols` characters, breaking at spaces where possible."""
    lines = []
    for word in text.split(" "):
        while len(word) > cols:
            lines.append(word[:cols])
            word = word[cols:]
        if lines and len(lines[-1]) + 1 + len(word) <= cols:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines[:rows]


class Ssd1306:
    """Draws into a RAM frame and sends it over I2C only when the text changed."""

    def __init__(self, i2c, addr=0x3C):
        self.i2c = i2c
        self.addr = addr
        self.buf = bytearray(WIDTH * HEIGHT // 8)
        self.fb = framebuf.FrameBuffer(self.buf, WIDTH, HEIGHT, framebuf.MONO_VLSB)
        self.shown = None
        self.writes = 0
        for c in _INIT:
            self._cmd(c)

    def _cmd(self, c):
        self.i2c.writeto(self.addr, bytes((0x80, c)))

    def show(self, text):
        t = english(text)
        if t == self.shown:
            return
        self.shown = t
        self.fb.fill(0)
        for i, line in enumerate(wrap(t)):
            self.fb.text(line, 0, i * 10, 1)
        for c in (0x21, 0, WIDTH - 1, 0x22, 0, HEIGHT // 8 - 1):  # whole screen window
            self._cmd(c)
        self.i2c.writeto(self.addr, b"\x40" + self.buf)
        self.writes += 1
