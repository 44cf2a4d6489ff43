"""Sans-IO codec for protocol v1: topics, payload validation, code hashes, command and eack encoding."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from . import const as C
from .errors import ProtocolError

_ID = re.compile(C.ID_RE)
_BOOT = re.compile(C.BOOT_RE)
_CMD_ID = re.compile(C.CMD_ID_RE)
_REF = re.compile(C.REF_RE)
_HASH = re.compile(C.HASH_RE)
_FW_VER = re.compile(C.FW_VER_RE)
_FW_PATH = re.compile(C.FW_PATH_RE)


@dataclass(frozen=True)
class Topic:
    """A parsed jc/v1 topic."""

    station: str
    locker: str
    kind: str


def parse_topic(topic: str) -> Topic:
    """Split `jc/v1/{station}/{locker}/{kind}` or raise ProtocolError(bad_topic)."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != C.PREFIX:
        raise ProtocolError(C.E_BAD_TOPIC, topic)
    station, locker, kind = parts[2], parts[3], parts[4]
    if not _ID.match(station) or not _ID.match(locker) or kind not in C.KINDS:
        raise ProtocolError(C.E_BAD_TOPIC, topic)
    return Topic(station, locker, kind)


def build_topic(station: str, locker: str, kind: str) -> str:
    """Build a jc/v1 topic, refusing ids the contract does not allow."""
    if not _ID.match(station) or not _ID.match(locker) or kind not in C.KINDS:
        raise ProtocolError(C.E_BAD_TOPIC, f"{station}/{locker}/{kind}")
    return f"{C.PREFIX}/{station}/{locker}/{kind}"


# ---- field checks (each raises bad_field) ----

def _bad(msg: str) -> ProtocolError:
    return ProtocolError(C.E_BAD_FIELD, msg)


def _req(d: dict, name: str) -> Any:
    if name not in d:
        raise _bad(f"missing {name}")
    return d[name]


def _int(d: dict, name: str, lo: int, hi: int, *, required: bool = True) -> int | None:
    if not required and name not in d:
        return None
    v = _req(d, name)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _bad(f"{name} must be an integer in {lo}..{hi}")
    return v


def _num(d: dict, name: str, *, required: bool = False) -> None:
    if not required and name not in d:
        return
    v = _req(d, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(f"{name} must be a number")


def _str(d: dict, name: str, *, pattern: re.Pattern | None = None, choices=None,
         required: bool = True, max_len: int = 256) -> str | None:
    if not required and name not in d:
        return None
    v = _req(d, name)
    if not isinstance(v, str) or len(v) > max_len:
        raise _bad(f"{name} must be a string")
    if pattern is not None and not pattern.match(v):
        raise _bad(f"{name} malformed")
    if choices is not None and v not in choices:
        raise _bad(f"{name} must be one of {', '.join(choices)}")
    return v


def _bool(d: dict, name: str) -> bool:
    v = _req(d, name)
    if not isinstance(v, bool):
        raise _bad(f"{name} must be true or false")
    return v


def _comp(d: dict, name: str = "c", *, required: bool = True) -> int | None:
    return _int(d, name, C.COMP_MIN, C.COMP_MAX, required=required)


def _comp_list(d: dict, name: str) -> list[int]:
    v = _req(d, name)
    if not isinstance(v, list) or not v or len(v) > C.COMP_MAX:
        raise _bad(f"{name} must be a non-empty list of compartments")
    for x in v:
        if isinstance(x, bool) or not isinstance(x, int) or not C.COMP_MIN <= x <= C.COMP_MAX:
            raise _bad(f"{name} holds a bad compartment")
    return v


_TS_MAX = 2**40


def _check_evt(p: dict) -> None:
    _str(p, "boot", pattern=_BOOT)
    _int(p, "seq", 1, C.SEQ_MAX)
    _int(p, "ts", 0, _TS_MAX)
    _int(p, "mono", 0, _TS_MAX)
    t = _str(p, "type", choices=C.EVT_TYPES)
    if t == "door":
        _comp(p)
        _bool(p, "open")
    elif t == "lock":
        _comp(p)
        _str(p, "why", choices=C.LOCK_WHY)
    elif t in ("deposit", "deposit_void", "pickup"):
        _comp(p)
        _str(p, "ref", pattern=_REF)
    elif t == "code_ok":
        _comp_list(p, "cs")
    elif t == "code_bad":
        _int(p, "fails", 0, C.SEQ_MAX)
    elif t == "lockout":
        _int(p, "secs", 0, C.SEQ_MAX)
        _int(p, "count", 0, C.SEQ_MAX)
    elif t == "alarm":
        _str(p, "kind", choices=C.ALARM_KINDS)
        _comp(p, required=False)
        if "occ" in p:
            _bool(p, "occ")
    elif t == "state":
        _comp(p)
        _str(p, "st", choices=C.COMP_STATES)
    elif t == "courier":
        _comp_list(p, "cs")
    elif t == "fw":
        _str(p, "ver", pattern=_FW_VER)
        _str(p, "result", choices=C.FW_RESULTS)


def _check_birth(p: dict) -> None:
    _str(p, "boot", pattern=_BOOT)
    _str(p, "fw", max_len=32)
    _int(p, "seq", 0, C.SEQ_MAX)
    _int(p, "ts", 0, _TS_MAX)
    _int(p, "mono", 0, _TS_MAX)
    comps = _req(p, "comps")
    if not isinstance(comps, list) or len(comps) > C.COMP_MAX:
        raise _bad("comps must be a list of at most 32 compartments")
    seen = set()
    for c in comps:
        if not isinstance(c, dict):
            raise _bad("comps holds a non-object")
        n = _comp(c, "n")
        if n in seen:
            raise _bad(f"compartment {n} listed twice")
        seen.add(n)
        _str(c, "size", choices=C.SIZES)
        _str(c, "st", choices=C.COMP_STATES)
        _str(c, "door", max_len=16)
        _bool(c, "occ")
        if "mm" in c:
            _bool(c, "mm")
        _str(c, "ref", pattern=_REF, required=False)
    _int(p, "outbox", 0, C.SEQ_MAX, required=False)
    _int(p, "vault", 0, C.SEQ_MAX, required=False)


def _check_status(p: dict) -> None:
    st = _str(p, "state", choices=C.STATUS_STATES)
    if st == "online":
        _str(p, "boot", pattern=_BOOT)


def _check_tele(p: dict) -> None:
    _str(p, "boot", pattern=_BOOT)
    _int(p, "ts", 0, _TS_MAX)
    _int(p, "mono", 0, _TS_MAX)
    for name in ("up", "heap", "heap_max", "rssi", "vin", "temp", "outbox", "drops", "errs"):
        _num(p, name)


def _check_ack(p: dict) -> None:
    _str(p, "id", pattern=_CMD_ID)
    _bool(p, "ok")
    _str(p, "err", required=False, max_len=64)


def _check_cmd(p: dict) -> None:
    _str(p, "id", pattern=_CMD_ID)
    op = _str(p, "op", choices=C.CMD_OPS)
    if op in ("deposit", "adopt"):
        _comp(p)
        _str(p, "ref", pattern=_REF)
    elif op == "code_put":
        _str(p, "h", pattern=_HASH)
        _comp_list(p, "cs")
        _int(p, "exp", 1, C.SEQ_MAX)
    elif op == "code_del":
        _str(p, "h", pattern=_HASH)
    elif op == "open":
        _comp(p)
        _str(p, "by", max_len=64)
        _str(p, "why", max_len=200)
    elif op in ("disable", "enable"):
        _comp(p)
    elif op == "time":
        _int(p, "ts", 0, _TS_MAX)
    elif op == "courier_put":
        _str(p, "h", pattern=_HASH)
        deps = _req(p, "deps")
        if not isinstance(deps, list) or not 1 <= len(deps) <= C.COMP_MAX:
            raise _bad("deps must be a non-empty list of deposits")
        for d in deps:
            if not isinstance(d, dict):
                raise _bad("deps holds a non-object")
            _comp(d)
            _str(d, "ref", pattern=_REF)
        _int(p, "exp", 1, C.SEQ_MAX)
    elif op == "fw_offer":
        _str(p, "ver", pattern=_FW_VER)
        _str(p, "mac", pattern=_HASH)
        if "files" in p:
            files = p["files"]
            if not isinstance(files, list) or not 1 <= len(files) <= C.FW_FILES_MAX:
                raise _bad(f"files must be a list of 1 to {C.FW_FILES_MAX} files")
            for f in files:
                if not isinstance(f, dict):
                    raise _bad("files holds a non-object")
                _fw_path(f, "path")
                _int(f, "size", 0, C.FW_FILE_MAX)
                _str(f, "sha256", pattern=_HASH)
        else:
            _int(p, "msize", 1, C.FW_MSIZE_MAX)
    elif op == "fw_chunk":
        _str(p, "ver", pattern=_FW_VER)
        _fw_path(p, "file", manifest=True)
        _int(p, "off", 0, C.FW_FILE_MAX)
        _str(p, "data", max_len=(C.FW_CHUNK_MAX + 2) // 3 * 4)
    elif op == "fw_abort":
        _str(p, "ver", pattern=_FW_VER)


def _fw_path(d: dict, name: str, *, manifest: bool = False) -> None:
    """A relative app-file path (§3.7): no leading slash, no `..`, no `//`."""
    v = _req(d, name)
    if manifest and v == C.FW_MANIFEST:
        return
    if not isinstance(v, str) or not _FW_PATH.match(v) or ".." in v or "//" in v:
        raise _bad(f"{name} must be a relative app-file path")


def _check_fwreq(p: dict) -> None:
    _str(p, "ver", pattern=_FW_VER)
    _fw_path(p, "file", manifest=True)
    _int(p, "off", 0, C.FW_FILE_MAX)
    _int(p, "len", 1, C.FW_CHUNK_MAX)


def _check_eack(p: dict) -> None:
    _str(p, "boot", pattern=_BOOT)
    _int(p, "seq", 1, C.SEQ_MAX)


_CHECKS = {
    "evt": _check_evt, "birth": _check_birth, "status": _check_status, "tele": _check_tele,
    "ack": _check_ack, "cmd": _check_cmd, "eack": _check_eack, "fwreq": _check_fwreq,
}


def decode(kind: str, payload: bytes) -> dict:
    """Validate a payload of `kind`; return the dict or raise ProtocolError in the vector order."""
    if kind not in _CHECKS:
        raise ProtocolError(C.E_BAD_TOPIC, kind)
    if len(payload) > C.LIMITS[kind]:
        raise ProtocolError(C.E_TOO_LARGE, f"{len(payload)} > {C.LIMITS[kind]} bytes")
    try:
        # orjson for speed (the intake's largest cost after the socket); what it refuses (NaN, integers
        # beyond 64 bits, lone surrogates, bad UTF-8) the stdlib parser judges, so answers stay the vectors'
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:
            obj = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            # RecursionError: arrays nested past the parser's depth, which a 4 KiB birth can hold
            raise ProtocolError(C.E_NOT_JSON, str(exc)[:80]) from None
    if not isinstance(obj, dict):
        raise ProtocolError(C.E_NOT_OBJECT, type(obj).__name__)
    v = obj.get("v")
    if isinstance(v, bool) or v != C.VERSION:
        raise ProtocolError(C.E_BAD_VERSION, repr(v)[:20])
    _CHECKS[kind](obj)
    return obj


def encode(kind: str, obj: dict) -> bytes:
    """Encode and validate an outgoing payload, so the gateway never sends what it would refuse."""
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    decode(kind, data)
    return data


def encode_cmd(cmd_id: str, op: str, **fields: Any) -> bytes:
    """Encode a command (§3.4)."""
    return encode("cmd", {"v": C.VERSION, "id": cmd_id, "op": op, **fields})


def encode_eack(boot: str, seq: int) -> bytes:
    """Encode a cumulative event ack (§3.6)."""
    return encode("eack", {"v": C.VERSION, "boot": boot, "seq": seq})


def courier_hash(secret_hex: str, pin: str) -> str:
    """h = hex(HMAC-SHA256(device_secret, "courier:" + pin)) (§4.1)."""
    return hmac.new(bytes.fromhex(secret_hex), C.COURIER_MSG_PREFIX + pin.encode("ascii"),
                    hashlib.sha256).hexdigest()


def code_hash(secret_hex: str, code: str) -> str:
    """h = hex(HMAC-SHA256(device_secret, "pickup:" + code)) (§4)."""
    return hmac.new(bytes.fromhex(secret_hex), C.CODE_MSG_PREFIX + code.encode("ascii"),
                    hashlib.sha256).hexdigest()
