"""The locker display's glyph file: the characters of every message in jc/msgs.py, rendered at build time.

The SSD1306's built-in 8x8 font has no Chinese. At build time Pillow renders each character the messages
use (and the digits, comma, star and space that run-time values are made of) from WenQuanYi Micro Hei
(Apache-2.0 or GPLv3 with the font exception; Debian's fonts-wqy-microhei) into a 16-pixel-high bitmap:
16 wide for Chinese, 8 for the rest. The firmware (jc/display.py) reads the file one glyph at a time with
seek + read and never loads it whole.

File layout (little-endian):
  header  b"JCG1", u8 height, u8 0, u16 count
  index   count x (u16 code point, u8 width, u8 0, u16 offset of the bitmap), sorted by code point
  bitmaps MONO_HLSB rows (ceil(width / 8) bytes each) x height, one after another
"""

from __future__ import annotations

import struct
from pathlib import Path

from jincun.fwtools import FIRMWARE

MAGIC = b"JCG1"
HEIGHT = 16
WIDE = 16  # a Chinese character's cell
NARROW = 8  # a digit's, comma's, star's or space's
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT_SIZE = 15  # leaves a pixel between Chinese characters in a 16-pixel cell
FONT_Y = -1  # the font's ascent puts glyph tops at row 3: lift them so the descenders stay in the cell
GLYPH_FILE = FIRMWARE / "glyphs.bin"
SCREEN_W, SCREEN_H = 128, 64


class GlyphError(Exception):
    """Pillow or the CJK font is missing, or a message needs a character the font cannot draw."""


def chinese(text: str) -> str:
    """The half of a bilingual 'zh / en' message the display draws in Chinese."""
    return text.split(" / ", 1)[0]


def charset() -> str:
    """Every character the display may draw: those of the messages' Chinese halves plus the value characters."""
    from jc import msgs

    chars = set(msgs.VALUE_CHARS)
    for m in msgs.ALL:
        chars |= set(chinese(m).replace("%d", "").replace("%s", ""))
    return "".join(sorted(chars))


def cell_width(ch: str) -> int:
    return NARROW if ord(ch) < 0x80 else WIDE


def _font():
    try:
        from PIL import ImageFont
    except ImportError as e:
        raise GlyphError("Pillow is needed to build the glyph file: pip install 'jincun[firmware]'") from e
    if not FONT.exists():
        raise GlyphError(f"no CJK font at {FONT}: apt-get install fonts-wqy-microhei")
    return ImageFont.truetype(str(FONT), FONT_SIZE, index=0)


def render_cell(ch: str, font=None):
    """One character in its cell as a 1-bit Pillow image (no anti-aliasing)."""
    from PIL import Image, ImageDraw

    font = font or _font()
    img = Image.new("1", (cell_width(ch), HEIGHT))
    ImageDraw.Draw(img).text((0, FONT_Y), ch, font=font, fill=1)
    return img


def build() -> bytes:
    """The glyph file's bytes for the current message list."""
    font = _font()
    chars = charset()
    for ch in chars:
        if ch != " " and not font.getmask(ch).getbbox():
            raise GlyphError(f"the font has no glyph for {ch!r}")
    index, bitmaps = [], []
    offset = 8 + 6 * len(chars)
    for ch in chars:
        img = render_cell(ch, font)
        w = img.width
        row = (w + 7) // 8
        bits = bytearray(row * HEIGHT)
        for y in range(HEIGHT):
            for x in range(w):
                if img.getpixel((x, y)):
                    bits[y * row + x // 8] |= 0x80 >> (x % 8)
        index.append(struct.pack("<HBxH", ord(ch), w, offset))
        bitmaps.append(bytes(bits))
        offset += len(bits)
    if offset > 0xFFFF:
        raise GlyphError("glyph file over 64 KiB: too many characters")
    return MAGIC + struct.pack("<BxH", HEIGHT, len(chars)) + b"".join(index) + b"".join(bitmaps)


def write(path: Path = GLYPH_FILE) -> dict:
    data = build()
    path.write_bytes(data)
    return {"path": str(path), "bytes": len(data), "glyphs": len(charset())}


def lines(text: str, width: int = SCREEN_W) -> list[str]:
    """The display's line breaking (jc/display.py does the same): greedy at spaces, a word wider than the
    screen cut where it must; at most SCREEN_H // HEIGHT lines."""
    out: list[str] = []
    for word in text.split(" "):
        while sum(cell_width(c) for c in word) > width:
            n, w = 0, 0
            while w + cell_width(word[n]) <= width:
                w += cell_width(word[n])
                n += 1
            out.append(word[:n])
            word = word[n:]
        if out and sum(cell_width(c) for c in out[-1] + " " + word) <= width:
            out[-1] += " " + word
        else:
            out.append(word)
    return out[:SCREEN_H // HEIGHT]


def screen(text: str) -> bytes:
    """The build-time image of a message: the 128x64 frame, MONO_VLSB as the SSD1306 takes it."""
    from PIL import Image

    font = _font()
    img = Image.new("1", (SCREEN_W, SCREEN_H))
    for i, line in enumerate(lines(chinese(text))):
        x = 0
        for ch in line:
            img.paste(render_cell(ch, font), (x, i * HEIGHT))
            x += cell_width(ch)
    buf = bytearray(SCREEN_W * SCREEN_H // 8)
    for y in range(SCREEN_H):
        for x in range(SCREEN_W):
            if img.getpixel((x, y)):
                buf[(y // 8) * SCREEN_W + x] |= 1 << (y % 8)
    return bytes(buf)
