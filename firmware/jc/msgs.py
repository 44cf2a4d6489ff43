"""Every message the locker's display shows: Chinese first, then " / " and English.

The display draws the Chinese half from the glyph file built from this list (`jincun firmware glyphs`);
`%d`/`%s` are compartment numbers or seconds, drawn from the file's digit glyphs at run time. The serial
log and the simulator see the whole text. A message added here needs a new glyph file (a test checks
that the checked-in one is current).
"""

ENTER_CODE = "请输入取件码 / Enter code"
SAFE_ENTER_CODE = "维护模式 请输入取件码 / Safe mode: enter code"
LOCKED = "已锁定 %d秒 / Locked %ds"
TAKE_PARCEL = "请取件 %s号格口 / Take parcel: %s"
NOTHING_TO_COLLECT = "无待取包裹 / Nothing to collect"
WRONG_CODE = "取件码错误 / Wrong code"
DEPOSIT_IN = "请投递 %s号格口 / Deposit in: %s"
NONE_FREE = "无可用格口 / No compartment free"

ALL = (ENTER_CODE, SAFE_ENTER_CODE, LOCKED, TAKE_PARCEL, NOTHING_TO_COLLECT, WRONG_CODE, DEPOSIT_IN, NONE_FREE)
# what run-time values are drawn with: compartment lists ("3", "1,2"), seconds, and the typed code's stars
VALUE_CHARS = "0123456789,* "
