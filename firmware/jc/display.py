"""Optional SSD1306 128x64 OLED: each message in Chinese, drawn glyph by glyph from the glyph file.

The driver is micropython-lib's `ssd1306` (a framebuf.FrameBuffer); this module decides what goes in the
frame. The Chinese half of a bilingual 'zh / en' message (jc/msgs.py) is drawn from `glyphs.bin`, built
at build time by `jincun firmware glyphs`: 16-pixel-high cells, 16 wide for Chinese, 8 for digits, comma,
star and space, so compartment numbers and seconds are composed at run time. The file is read one glyph
at a time (seek + read into a buffer made once), never whole. A message with a character the file lacks,
or no glyph file at all, falls back to the English half in the built-in 8x8 font.
"""

import framebuf
import struct

WIDTH = 128
HEIGHT = 64
COLS = WIDTH // 8
ROWS = HEIGHT // 8
MAGIC = b"JCG1"
NARROW = 8
WIDE = 16


def english(text):
    """The part of a bilingual 'zh / en' message the built-in font can draw."""
    if " / " in text:
        text = text.split(" / ", 1)[1]
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def chinese(text):
    """The half of a bilingual 'zh / en' message drawn from the glyph file."""
    return text.split(" / ", 1)[0]


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


def cell_width(ch):
    return NARROW if ord(ch) < 0x80 else WIDE


def _width(s):
    w = 0
    for ch in s:
        w += cell_width(ch)
    return w


def lines(text, width=WIDTH, rows=HEIGHT // 16):
    """Greedy line breaking at spaces by pixel width; a word wider than the screen is cut where it must."""
    out = []
    for word in text.split(" "):
        while _width(word) > width:
            n, w = 0, 0
            while w + cell_width(word[n]) <= width:
                w += cell_width(word[n])
                n += 1
            out.append(word[:n])
            word = word[n:]
        if out and _width(out[-1]) + NARROW + _width(word) <= width:
            out[-1] += " " + word
        else:
            out.append(word)
    return out[:rows]


class Glyphs:
    """The glyph file, open for reading: a binary search over its index and one glyph read per character."""

    def __init__(self, path):
        self.f = open(path, "rb")
        head = self.f.read(8)
        if len(head) != 8 or head[:4] != MAGIC:
            self.f.close()
            raise ValueError("not a glyph file: " + path)
        self.height, self.count = struct.unpack("<BxH", head[4:])
        self.entry = bytearray(6)
        self.cells = {}
        for w in (NARROW, WIDE):
            buf = bytearray((w + 7) // 8 * self.height)
            self.cells[w] = (buf, framebuf.FrameBuffer(buf, w, self.height, framebuf.MONO_HLSB))

    def find(self, cp):
        """(width, offset) of a code point's bitmap, or None."""
        lo, hi = 0, self.count - 1
        e = self.entry
        while lo <= hi:
            mid = (lo + hi) // 2
            self.f.seek(8 + 6 * mid)
            self.f.readinto(e)
            c = e[0] | (e[1] << 8)
            if c == cp:
                return e[2], e[4] | (e[5] << 8)
            if c < cp:
                lo = mid + 1
            else:
                hi = mid - 1
        return None

    def draw(self, fb, ch, x, y):
        """Blit one character at (x, y); return its width, or 0 when the file has no glyph for it."""
        found = self.find(ord(ch))
        if found is None:
            return 0
        w, off = found
        buf, cell = self.cells[w]
        self.f.seek(off)
        self.f.readinto(buf)
        fb.blit(cell, x, y)
        return w

    def close(self):
        self.f.close()


def draw(fb, glyphs, text):
    """Draw a message into a cleared 128x64 frame: Chinese from the glyph file where it has every character,
    else the English half in the built-in font."""
    fb.fill(0)
    if glyphs is not None:
        for i, line in enumerate(lines(chinese(text))):
            x = 0
            for ch in line:
                w = glyphs.draw(fb, ch, x, i * glyphs.height)
                if not w:
                    break
                x += w
            else:
                continue
            fb.fill(0)  # a character the file lacks: the whole message in English instead
            break
        else:
            return
    for i, line in enumerate(wrap(english(text))):
        fb.text(line, 0, i * 10, 1)


class Display:
    """A framebuffer display (the ssd1306 driver, or a plain framebuf in a test) redrawn only on a change."""

    def __init__(self, fb, glyphs=None):
        self.fb = fb
        self.glyphs = glyphs
        self.push = getattr(fb, "show", None)
        self.shown = None
        self.writes = 0

    def show(self, text):
        if text == self.shown:
            return
        self.shown = text
        draw(self.fb, self.glyphs, text)
        if self.push is not None:
            self.push()
        self.writes += 1
