"""The carriers: one table of codes, display names and the names people write, shared by gateway and cloud.

A carrier is a code everywhere (terminal deposits, station records, manifests, webhooks, statistics); names
are only for display. China Post and its EMS service are one carrier here, `EMS`: a village point takes both
from the same postman, and the cloud's carrier table has always named EMS 中国邮政EMS.
"""

from __future__ import annotations

import re

# code, Chinese name, English name, other names people write (matched ignoring case and spaces)
TABLE: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("EMS", "中国邮政", "China Post / EMS", ("中国邮政EMS", "邮政", "邮政EMS", "邮政快递", "EMS快递", "CPOST",
                                           "CHINAPOST", "CHINA POST", "中国邮政速递")),
    ("SF", "顺丰速运", "SF Express", ("顺丰", "顺丰快递", "SFEXPRESS", "SF EXPRESS")),
    ("ZTO", "中通快递", "ZTO Express", ("中通", "ZTO EXPRESS")),
    ("YTO", "圆通速递", "YTO Express", ("圆通", "圆通快递", "YTO EXPRESS")),
    ("STO", "申通快递", "STO Express", ("申通", "STO EXPRESS")),
    ("YUNDA", "韵达快递", "Yunda Express", ("韵达", "韵达速递", "YD")),
    ("JT", "极兔速递", "J&T Express", ("极兔", "极兔快递", "J&T", "JNT", "J&T EXPRESS")),
    ("JD", "京东物流", "JD Logistics", ("京东", "京东快递", "JD LOGISTICS")),
)
CODES = tuple(code for code, *_ in TABLE)
NAMES = {code: (zh, en) for code, zh, en, _ in TABLE}
# a carrier added in the cloud beyond the table keeps a code of this form
CODE_RE = re.compile(r"^[A-Z0-9_-]{1,16}$")


def _key(name: str) -> str:
    return "".join(name.split()).upper()


_ALIASES = {_key(a): code for code, zh, en, more in TABLE for a in (code, zh, en, *more)}


def code_of(name: str | None) -> str | None:
    """The carrier code a name stands for (`中通` -> `ZTO`, `zto` -> `ZTO`); an unknown code-like name is
    upper-cased (a carrier the cloud added), and other text is kept as written, stripped. None for nothing."""
    if name is None:
        return None
    text = name.strip()
    if not text:
        return None
    code = _ALIASES.get(_key(text))
    if code is not None:
        return code
    return text.upper() if CODE_RE.match(text.upper()) else text


def known(name: str | None) -> bool:
    """Whether a name is one of the table's carriers."""
    return name is not None and _key(name) in _ALIASES


def display(code: str | None, lang: str = "zh") -> str:
    """A carrier's display name in Chinese or English; an unknown code is shown as it is."""
    if not code:
        return "—"
    names = NAMES.get(code)
    if names is None:
        return code
    return names[1] if lang == "en" else names[0]

