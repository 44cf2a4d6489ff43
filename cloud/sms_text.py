"""The texts the cloud sends by SMS: one template per kind, the facts it carries, one segment each (sans-IO).

A Chinese SMS is sent in UCS-2: 70 units make one segment, and a longer text is split into segments of 67 at
a segment's price each. The carriers count the signature (【进村】) and every character, ASCII included, as one
unit (a character outside the Basic Multilingual Plane as two). Each text here is built to fit one segment:
the station name gives way (shortened as people shorten it, then cut), never the pickup code.

The same template is registered with the SMS provider (docs/cloud.md lists the texts): the provider fills in
the parameters and prepends the signature, so what it sends is exactly `Message.text`. Providers refuse a
link in a parameter, so the link to the villager's page is fixed text in the template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Mapping

from .constants import SMS_SEGMENT_UNITS

# kind -> the template body (without the signature); {names} are the parameters, in this order for providers
# that number their parameters (Tencent Cloud's {1}, {2}, ...)
TEMPLATES: dict[str, str] = {
    "pickup": "{carrier}包裹已到{station} {box}，取件码 {code}，查件 {link}",
    "reminder": "{carrier}包裹在{station} {box}已放{hours}小时，请凭码取件 {link}",
    "recode": "您在{station}的新取件码 {code}，旧码已作废 {link}",
    "otp": "查件验证码 {code}，{minutes}分钟内有效，请勿告诉他人",
    "returning": "{carrier}包裹在{station}超期未取，已退回快递公司，取件码作废 {link}",
    # to the station's maintenance phone (cloud/alerts.py): an episode starts, and it is over
    "alert": "告警：{station}{box}{what}，{at}起，请尽快处理",
    "alert_ok": "恢复：{station}{box}{what}已解除，{at}",
}
KINDS = tuple(TEMPLATES)
_FIELD = re.compile(r"\{(\w+)\}")
# the parameters of each kind, in template order; `link` is fixed template text, not a parameter
PARAMS: dict[str, tuple[str, ...]] = {k: tuple(n for n in _FIELD.findall(t) if n != "link")
                                      for k, t in TEMPLATES.items()}

CARRIER_CHARS = 4        # 顺丰速运, 中国邮政(EMS): the name people use
PARAM_CHARS = 12         # Tencent Cloud refuses a parameter longer than 12 characters
STATION_MIN_CHARS = 4    # below this a station is no longer recognisable; settings refuse such a link
# the longest values the fixed parameters take (settings check that the station still gets its minimum)
WORST = {"carrier": "快" * CARRIER_CHARS, "box": "999号柜 999号格口", "code": "0" * 8, "hours": "999",
         "minutes": "99", "what": "快" * 7, "at": "12-31 23:59"}

# what people drop or shorten when they name a station
_ADMIN_PREFIX = re.compile(r"^.{2,}?(?:自治区|自治州|自治县|特别行政区|省|市|州|盟|县|区|旗|街道|镇|乡)(?=.{2,})")
_SHORTER = (("党群服务中心", "党群中心"), ("村民委员会", "村委会"), ("便民服务站", "便民站"),
            ("便民服务点", "便民点"), ("综合服务站", "服务站"), ("快递服务站", "快递站"), ("快递服务点", "快递点"),
            ("服务中心", "中心"), ("有限公司", ""))


@dataclass(frozen=True)
class Message:
    """One SMS: the text as the villager reads it, and the template kind with its parameters."""

    text: str
    kind: str
    params: Mapping[str, str]
    key: str = ""  # the outbox row's id, which the provider echoes back (OutId, SessionContext)
    ref: str | None = None  # the parcel it is about, if any


def units(text: str) -> int:
    """UCS-2 units as the carriers count them (a character beyond U+FFFF is a surrogate pair: two)."""
    return len(text.encode("utf-16-le")) // 2


def segments(text: str) -> int:
    """How many SMS the carriers bill for this text (70 units in one, 67 per segment beyond)."""
    n = units(text)
    return 1 if n <= SMS_SEGMENT_UNITS else -(-n // (SMS_SEGMENT_UNITS - 3))


def link(public_url: str) -> str:
    """The villager's page, as written in every text."""
    return public_url.rstrip("/") + "/m"


def box(locker: str | None, c: int | None) -> str:
    """The locker and compartment as people say them: `3号柜 12号格口`."""
    parts = []
    if locker:
        digits = re.search(r"(\d+)\D*$", locker)
        parts.append(f"{int(digits.group(1))}号柜" if digits else f"{locker}柜")
    if c is not None:
        parts.append(f"{c}号格口")
    return " ".join(parts) or "快递柜"


def carrier_name(name: str | None) -> str:
    """The carrier as people name it, at most CARRIER_CHARS characters (中国邮政EMS -> 中国邮政)."""
    return (name or "快递")[:CARRIER_CHARS]


def shorten_station(name: str, room: int) -> str:
    """The station name in at most `room` characters: drop the town and county, shorten the kind, then cut."""
    name = name.strip()
    if units(name) <= room:
        return name
    while True:
        # 临泽镇冯家村便民店 -> 冯家村便民店 (each step keeps at least two characters)
        cut = _ADMIN_PREFIX.sub("", name, count=1)
        if cut == name:
            break
        name = cut
        if units(name) <= room:
            return name
    for long, short in _SHORTER:
        name = name.replace(long, short)
        if units(name) <= room:
            return name
    out = ""
    for ch in name:
        if units(out + ch) > room - 1:
            break
        out += ch
    return out + "…"


def render(kind: str, params: Mapping[str, str], *, signature: str, public_url: str) -> str:
    """The text a provider sends for this template and these parameters: 【signature】 + the filled template."""
    return f"【{signature}】" + TEMPLATES[kind].format(link=link(public_url), **params)


def build(kind: str, *, station: str | None = None, signature: str, public_url: str, **params: str) -> Message:
    """A one-segment message of `kind`; the station name (if the kind has one) takes the room that is left."""
    if set(params) | ({"station"} if station is not None else set()) != set(PARAMS[kind]):
        raise ValueError(f"{kind} takes {PARAMS[kind]}, got {sorted(params)}")
    if station is not None:
        fixed = render(kind, {**params, "station": ""}, signature=signature, public_url=public_url)
        params["station"] = shorten_station(station, min(PARAM_CHARS, SMS_SEGMENT_UNITS - units(fixed)))
    text = render(kind, params, signature=signature, public_url=public_url)
    if units(text) > SMS_SEGMENT_UNITS:
        # only an over-long link or signature gets here, and settings refuse those at start-up
        raise ValueError(f"{kind} SMS is {units(text)} units, more than one segment")
    return Message(text=text, kind=kind, params={k: params[k] for k in PARAMS[kind]})


def check_fits(*, signature: str, public_url: str) -> None:
    """Refuse a signature and link that leave a station fewer than STATION_MIN_CHARS in some text."""
    for kind, names in PARAMS.items():
        worst = {n: WORST.get(n, "冯" * STATION_MIN_CHARS) for n in names}
        n = units(render(kind, worst, signature=signature, public_url=public_url))
        if n > SMS_SEGMENT_UNITS:
            raise ValueError(f"the {kind} SMS would be {n} units with the link {link(public_url)} and the "
                             f"signature {signature}: one segment holds {SMS_SEGMENT_UNITS}; use a shorter address")


@dataclass(frozen=True)
class Style:
    """The county's registered signature and the address of the villagers' page, which the texts carry."""

    signature: str
    public_url: str

    def pickup(self, *, carrier: str | None, station: str, locker: str | None, c: int | None,
               code: str) -> Message:
        """A parcel is in the locker: where it is and the code that opens it."""
        return build("pickup", station=station, signature=self.signature, public_url=self.public_url,
                     carrier=carrier_name(carrier), box=box(locker, c), code=code)

    def reminder(self, *, carrier: str | None, station: str, locker: str | None, c: int | None,
                 hours: int) -> Message:
        """A parcel still waits after `hours`; the code is not repeated (the villager has it, or asks /m)."""
        return build("reminder", station=station, signature=self.signature, public_url=self.public_url,
                     carrier=carrier_name(carrier), box=box(locker, c), hours=str(hours))

    def recode(self, *, station: str, code: str) -> Message:
        """A replacement code for every parcel the villager has waiting at a station."""
        return build("recode", station=station, signature=self.signature, public_url=self.public_url, code=code)

    def returning(self, *, carrier: str | None, station: str) -> Message:
        """An overdue parcel goes back to its carrier: the villager's code no longer opens it."""
        return build("returning", station=station, signature=self.signature, public_url=self.public_url,
                     carrier=carrier_name(carrier))

    def otp(self, *, code: str, minutes: int) -> Message:
        """The one-time code that logs the villager in on /m."""
        return build("otp", signature=self.signature, public_url=self.public_url, code=code,
                     minutes=str(minutes))


def provider_template(kind: str, *, numbered: bool, public_url: str) -> str:
    """The template body to register with a provider: ${name} (Alibaba Cloud) or {1}, {2}... (Tencent Cloud)."""
    order = PARAMS[kind]
    fill = {n: (f"{{{order.index(n) + 1}}}" if numbered else f"${{{n}}}") for n in order}
    return TEMPLATES[kind].format(link=link(public_url), **fill)
