"""Sans-IO codec for the gateway → cloud ingest contract (docs/protocol.md §3, §5.1): pure validation."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard, overload

import orjson

from jc import const as W
from jc import records, wire

from . import constants as K
from .errors import BatchRejected, ItemRejected


@dataclass(slots=True)
class Item:
    """One validated ingest item; `body` has passed the checks for its kind (not changed after validation)."""

    src: str
    boot: str
    seq: int
    kind: str
    rx: float
    body: dict[str, Any]
    # the body as compact JSON, when validation wrote it out (the ledger stores this text)
    text: bytes | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch envelope; items are still raw so each can be judged on its own."""

    station: str
    batch: str
    items: list[Any]


def _bad(detail: str) -> ItemRejected:
    return ItemRejected(K.E_BAD_FIELD, detail)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> TypeGuard[float]:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


@overload
def _int(d: dict, key: str, lo: int, hi: int, *, required: Literal[True] = ...) -> int: ...
@overload
def _int(d: dict, key: str, lo: int, hi: int, *, required: bool) -> int | None: ...
def _int(d: dict, key: str, lo: int, hi: int, *, required: bool = True) -> int | None:
    value = d.get(key)
    if value is None and not required and key not in d:
        return None
    if not _is_int(value) or not lo <= value <= hi:
        raise _bad(f"{key} must be an integer {lo}..{hi}")
    return value


@overload
def _num(d: dict, key: str, *, required: Literal[True]) -> float: ...
@overload
def _num(d: dict, key: str, *, required: bool = False) -> float | None: ...
def _num(d: dict, key: str, *, required: bool = False) -> float | None:
    if key not in d and not required:
        return None
    value = d.get(key)
    if not _is_num(value):
        raise _bad(f"{key} must be a number")
    return value


@overload
def _str(d: dict, key: str, pattern=None, *, required: Literal[True] = ..., choices=None,
         max_len: int = K.MAX_STR) -> str: ...
@overload
def _str(d: dict, key: str, pattern=None, *, required: bool, choices=None,
         max_len: int = K.MAX_STR) -> str | None: ...
def _str(d: dict, key: str, pattern=None, *, required: bool = True, choices=None,
         max_len: int = K.MAX_STR) -> str | None:
    if key not in d and not required:
        return None
    value = d.get(key)
    if not isinstance(value, str):
        raise _bad(f"{key} must be a string")
    if choices is not None and value not in choices:
        raise _bad(f"{key} must be one of {', '.join(choices)}")
    if pattern is not None and not pattern.fullmatch(value):
        raise _bad(f"{key} has a bad format")
    if len(value) > max_len:
        raise _bad(f"{key} is longer than {max_len} characters")
    return value


def _bool(d: dict, key: str) -> bool:
    value = d.get(key)
    if not isinstance(value, bool):
        raise _bad(f"{key} must be true or false")
    return value


@overload
def _c(d: dict, *, required: Literal[True] = ...) -> int: ...
@overload
def _c(d: dict, *, required: bool) -> int | None: ...
def _c(d: dict, *, required: bool = True) -> int | None:
    return _int(d, "c", K.COMPARTMENT_MIN, K.COMPARTMENT_MAX, required=required)


def _compact_len(obj: Any) -> int:
    # surrogatepass: a lone surrogate (refused later by the text rule) must not break the count
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


# the longest text Python gives a finite float, less the shortest orjson gives one ("0.0")
_FLOAT_SLACK = 24 - 3


def _within(obj: Any, limit: int) -> bool:
    """Whether the compact JSON of `obj` (as `_compact_len` counts it) is at most `limit` bytes.

    orjson writes the same text as the stdlib except for floats (exponent format) and non-finite floats
    (null instead of Infinity); every float it writes holds a '.' or an 'e', so counting those bounds
    the difference. Only when that bound does not settle it is the exact length computed.
    """
    try:
        text = orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return _compact_len(obj) <= limit
    if b"null" not in text:
        marks = text.count(b".") + text.count(b"e") + text.count(b"E")
        if len(text) + _FLOAT_SLACK * marks <= limit:
            return True
    return _compact_len(obj) <= limit


def validate_locker_payload(kind: str, payload: Any, *, size: int | None = None) -> dict:
    """Check a locker payload already parsed from JSON with the wire core; `size` is its byte length if known."""
    limit = K.MAX_PAYLOAD_BYTES[kind]
    if (size > limit) if size is not None else not _within(payload, limit):
        raise ItemRejected(K.E_TOO_LARGE, f"{kind} payload is over {limit} bytes")
    try:
        return wire.judge_parsed(kind, payload)
    except wire.ProtoError as exc:
        raise ItemRejected(exc.code, exc.detail or f"{kind} payload") from None


def decode_locker_payload(kind: str, data: bytes) -> dict:
    """Decode and check raw locker payload bytes with the wire core (the order of tests/vectors/payloads.json)."""
    limit = K.MAX_PAYLOAD_BYTES[kind]
    if len(data) > limit:
        raise ItemRejected(K.E_TOO_LARGE, f"{kind} payload is over {limit} bytes")
    try:
        obj, bad_text = wire.parse(data, orjson.loads)
        return wire.judge(kind, obj, bad_text)
    except wire.ProtoError as exc:
        raise ItemRejected(exc.code, exc.detail or f"{kind} payload") from None


def validate_gateway_record(kind: str, body: Any) -> dict:
    """Check the body of a station record (§5.1: parcel, code, gw_tele, outbound, handover, fault_report) with
    the wire core's table (jc.records), the one the gateway checks its records with before storing them."""
    if not _within(body, K.MAX_GW_BODY_BYTES):
        raise ItemRejected(K.E_TOO_LARGE, f"{kind} body is over {K.MAX_GW_BODY_BYTES} bytes")
    try:
        return records.check(kind, body)
    except wire.ProtoError as exc:
        raise ItemRejected(exc.code, exc.detail) from None


def item_key(raw: Any) -> tuple[str, str, int] | None:
    """The (src, boot, seq) of a raw item when they are well-formed, to echo in its result."""
    if not isinstance(raw, dict):
        return None
    src, boot, seq = raw.get("src"), raw.get("boot"), raw.get("seq")
    if isinstance(src, str) and isinstance(boot, str) and _is_int(seq) and len(src) <= 64 and len(boot) <= 64:
        return src, boot, seq
    return None


# ---- fast acceptance ------------------------------------------------------------------------------
# The wire core and the checks above call a function per field, which costs more than the checks
# themselves. Below, the common items (locker events and telemetry, parcel and code records) are checked
# inline; these checks only ever accept what the core and the checks above accept (property-tested in
# tests/cloud/test_cloud_protocol_fast.py). Anything they do not accept goes through the full checks, which
# give the exact answer (error code, message, order of the checks).

_MAX_INT = 2**53


# the texts each pattern has matched, by pattern: a batch names the same few lockers, boots and refs again
# and again, and a set look-up costs a fraction of a match. Bounded: a set that grows past the limit starts afresh
_MATCHED: dict[Any, set[str]] = {}
_MATCHED_MAX = 4096


def _s(value: Any, pattern, max_len: int = K.MAX_STR) -> TypeGuard[str]:
    if type(value) is not str or len(value) > max_len:
        return False
    seen = _MATCHED.get(pattern)
    if seen is None:
        seen = _MATCHED[pattern] = set()
    elif value in seen:
        return True
    if pattern.fullmatch(value) is None:
        return False
    if len(seen) >= _MATCHED_MAX:
        seen.clear()
    seen.add(value)
    return True


def _n(value: Any, lo: int, hi: int) -> TypeGuard[int]:
    return type(value) is int and lo <= value <= hi


def _c_ok(value: Any) -> bool:
    return type(value) is int and K.COMPARTMENT_MIN <= value <= K.COMPARTMENT_MAX


def _fast_evt(p: dict) -> bool:
    kind = p.get("type")
    if not (_s(p.get("boot"), K.BOOT_RE) and _n(p.get("seq"), 1, K.SEQ_MAX) and _n(p.get("ts"), 0, K.TS_MAX)
            and _n(p.get("mono"), 0, K.MONO_MAX) and type(kind) is str and kind in K.EVT_TYPES):
        return False
    if kind == "door":
        return _c_ok(p.get("c")) and type(p.get("open")) is bool
    if kind == "lock":
        why = p.get("why")
        return _c_ok(p.get("c")) and type(why) is str and why in K.LOCK_WHY
    if kind in ("deposit", "deposit_void", "pickup"):
        return _c_ok(p.get("c")) and _s(p.get("ref"), K.REF_RE)
    if kind in ("code_ok", "courier"):
        cs = p.get("cs")
        return type(cs) is list and 1 <= len(cs) <= K.COMPARTMENT_MAX and all(_c_ok(c) for c in cs)
    return False


def _opt_n(p: dict, key: str, lo: int, hi: int) -> bool:
    return key not in p or _n(p[key], lo, hi)


def _fast_tele(p: dict) -> bool:
    if not (_s(p.get("boot"), K.BOOT_RE) and _n(p.get("ts"), 0, K.TS_MAX) and _n(p.get("mono"), 0, K.MONO_MAX)):
        return False
    for key in ("up", "heap", "heap_max", "outbox", "drops", "errs"):
        if key in p and not _n(p[key], 0, K.COUNT_MAX):
            return False
    if not _opt_n(p, "rssi", -200, 50):
        return False
    for key in ("vin", "temp"):
        if key in p:
            value = p[key]
            if not ((type(value) is float or type(value) is int) and -1000 <= value <= 1000):
                return False
    if "reset" in p and not (type(p["reset"]) is str and len(p["reset"]) <= K.TEXT_MAX):
        return False
    if "fw" in p and not _s(p["fw"], K.FW_VER_RE, 24):
        return False
    return "safe" not in p or type(p["safe"]) is bool


def _opt_s(b: dict, key: str, pattern, max_len: int = K.MAX_STR) -> bool:
    return key not in b or _s(b[key], pattern, max_len)


def _fast_parcel(b: dict) -> bool:
    size = b.get("size")
    return (_s(b.get("ref"), K.REF_RE) and _s(b.get("locker"), K.LOCKER_ID_RE) and _c_ok(b.get("c"))
            and _opt_s(b, "waybill", K.FREE_TEXT_RE, K.MAX_WAYBILL)
            and _opt_s(b, "carrier", K.FREE_TEXT_RE, K.MAX_CARRIER) and _opt_s(b, "phone", K.PHONE_RE)
            and ("size" not in b or (type(size) is str and size in K.SIZES))
            and ("void" not in b or (type(b["void"]) is str and b["void"] in records.VOID_WHY)))


def _fast_code(b: dict) -> bool:
    return (_s(b.get("ref"), K.REF_RE) and _s(b.get("phone"), K.PHONE_RE) and _s(b.get("code"), K.CODE_RE)
            and _opt_s(b, "locker", K.LOCKER_ID_RE) and _opt_n(b, "exp_ts", 0, _MAX_INT))


_FAST = {"evt": (_fast_evt, K.MAX_PAYLOAD_BYTES["evt"]), "tele": (_fast_tele, K.MAX_PAYLOAD_BYTES["tele"]),
         "parcel": (_fast_parcel, K.MAX_GW_BODY_BYTES), "code": (_fast_code, K.MAX_GW_BODY_BYTES)}


def _fast_item(raw: Any) -> Item | None:
    """The item if the inline checks accept it, else None (the full checks then judge it)."""
    if type(raw) is not dict:
        return None
    src, boot, seq, kind, rx = raw.get("src"), raw.get("boot"), raw.get("seq"), raw.get("kind"), raw.get("rx")
    if type(kind) is not str or "body" not in raw:
        return None
    found = _FAST.get(kind)
    if found is None:
        return None
    if not (_s(src, K.LOCKER_ID_RE) and _s(boot, K.ITEM_BOOT_RE) and _n(seq, 0, K.ITEM_SEQ_MAX)
            and (type(rx) is float or type(rx) is int) and math.isfinite(rx) and rx >= 0):
        return None
    if (src == K.GATEWAY_SRC) != (kind in K.GATEWAY_KINDS):
        return None
    body = raw["body"]
    if type(body) is not dict:
        return None
    check, limit = found
    if kind in K.LOCKER_KINDS:
        v = body.get("v")
        if type(v) is not int or v != K.PROTOCOL_VERSION:
            return None
    if not check(body):
        return None
    if kind == "evt" and (body["boot"] != boot or body["seq"] != seq):
        return None
    # the size last: it writes the body out, which costs more than all the checks above
    try:
        text = orjson.dumps(body)
    except orjson.JSONEncodeError:
        return None
    if b"null" in text or len(text) + _FLOAT_SLACK * (text.count(b".") + text.count(b"e") + text.count(b"E")) > limit:
        return None
    # the wire core's text rule and depth limit, read off the text: orjson cannot write a lone surrogate,
    # writes U+0000 as an escape, and no value nests deeper than the brackets counted
    if b"\\u0000" in text or text.count(b"[") + text.count(b"{") > W.MAX_DEPTH:
        return None
    return Item(src=src, boot=boot, seq=seq, kind=kind, rx=float(rx), body=body, text=text)


def parse_item(raw: Any) -> Item:
    """Validate one raw ingest item (envelope, then body for its kind)."""
    item = _fast_item(raw)
    if item is not None:
        return item
    if not isinstance(raw, dict):
        raise ItemRejected(K.E_BAD_ITEM, "item must be a JSON object")
    try:
        src = _str(raw, "src", K.LOCKER_ID_RE)
        boot = _str(raw, "boot", K.ITEM_BOOT_RE)
        seq = _int(raw, "seq", 0, K.ITEM_SEQ_MAX)
        kind = _str(raw, "kind")
        rx = _num(raw, "rx", required=True)
    except ItemRejected as exc:
        raise ItemRejected(K.E_BAD_ITEM, exc.detail) from exc
    if rx < 0:
        raise ItemRejected(K.E_BAD_ITEM, "rx must not be negative")
    if kind not in K.ITEM_KINDS:
        raise ItemRejected(K.E_UNKNOWN_KIND, f"kind must be one of {', '.join(K.ITEM_KINDS)}")
    if "body" not in raw:
        raise ItemRejected(K.E_BAD_ITEM, "item has no body")
    body = raw["body"]
    if kind in K.GATEWAY_KINDS:
        if src != K.GATEWAY_SRC:
            raise ItemRejected(K.E_BAD_ITEM, f'{kind} records come from src "{K.GATEWAY_SRC}"')
        body = validate_gateway_record(kind, body)
    else:
        if src == K.GATEWAY_SRC:
            raise ItemRejected(K.E_BAD_ITEM, f'{kind} items come from a locker, not "{K.GATEWAY_SRC}"')
        body = validate_locker_payload(kind, body)
        if kind == "evt" and (body["boot"] != boot or body["seq"] != seq):
            raise ItemRejected(K.E_MISMATCH, "evt item boot/seq differ from the event's own boot/seq")
    return Item(src=src, boot=boot, seq=seq, kind=kind, rx=float(rx), body=body)


def _non_finite(name: str) -> str:
    # NaN/Infinity are not JSON; kept as text so only the item holding one is rejected (as bad_field)
    return f"<{name}>"


_SLOW = object()
# orjson reads integers beyond 64 bits as floats; such a batch takes the exact (stdlib) path. A run of 19
# digits is looked for with every digit mapped to "0" and a substring search, both in C and far quicker
# than a regular expression over the whole body
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_LONG_RUN = b"0" * 19


def _loads_fast(data: bytes) -> Any:
    """orjson for the common batch; _SLOW when the stdlib parser must judge it (NaN, lone surrogates, big ints)."""
    if _LONG_RUN in data.translate(_DIGITS_TO_ZERO):
        return _SLOW
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # the stdlib parser decides: it keeps NaN/Infinity as text for a per-item answer, or refuses the batch
        return _SLOW


def decode_batch(data: bytes) -> Batch:
    """Decode a batch envelope; refuses the whole batch with an HTTP status when it is unusable."""
    if len(data) > K.MAX_BATCH_BYTES:
        raise BatchRejected(413, f"batch is over {K.MAX_BATCH_BYTES} bytes")
    obj = _loads_fast(data)
    if obj is _SLOW:
        try:
            obj = json.loads(data.decode("utf-8"), parse_constant=_non_finite)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BatchRejected(422, "batch is not UTF-8 JSON") from exc
    if not isinstance(obj, dict):
        raise BatchRejected(422, "batch must be a JSON object")
    station, batch, items = obj.get("station"), obj.get("batch"), obj.get("items")
    if not isinstance(station, str) or not K.STATION_ID_RE.fullmatch(station):
        raise BatchRejected(422, "station must be a station id ([a-z0-9-]{1,32})")
    if not isinstance(batch, str) or not K.BATCH_ID_RE.fullmatch(batch):
        raise BatchRejected(422, "batch must be an id of 1..64 characters [A-Za-z0-9_.:-]")
    if not isinstance(items, list):
        raise BatchRejected(422, "items must be a list")
    if len(items) > K.MAX_BATCH_ITEMS:
        raise BatchRejected(413, f"batch has {len(items)} items, at most {K.MAX_BATCH_ITEMS} are allowed")
    return Batch(station=station, batch=batch, items=items)
