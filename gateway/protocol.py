"""Sans-IO codec for protocol v1: topics, payloads (judged by the wire core, jc.wire), code hashes, encoders."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import orjson

from jc import records, wire

from . import const as C
from .errors import ProtocolError


@dataclass(frozen=True)
class Topic:
    """A parsed jc/v1 topic."""

    station: str
    locker: str
    kind: str


def parse_topic(topic: str) -> Topic:
    """Split `jc/v1/{station}/{locker}/{kind}` or raise ProtocolError(bad_topic)."""
    try:
        station, locker, kind = wire.parse_topic(topic)
    except wire.ProtoError:
        raise ProtocolError(C.E_BAD_TOPIC, topic) from None
    return Topic(station, locker, kind)


def build_topic(station: str, locker: str, kind: str) -> str:
    """Build a jc/v1 topic, refusing ids the contract does not allow."""
    if not wire.is_ident(station) or not wire.is_ident(locker) or kind not in C.KINDS:
        raise ProtocolError(C.E_BAD_TOPIC, f"{station}/{locker}/{kind}")
    return f"{C.PREFIX}/{station}/{locker}/{kind}"


# ---- payloads: the wire core judges, orjson reads the common case quickly ----


def decode(kind: str, payload: bytes) -> dict:
    """Validate a payload of `kind` with the wire core (orjson reads the common case); raise ProtocolError."""
    try:
        return wire.validate(kind, payload, orjson.loads)
    except wire.ProtoError as exc:
        raise ProtocolError(exc.code, exc.detail) from None


def check_record(kind: str, body: dict) -> dict:
    """Check a station record (§5.1) with the wire core's table before it is stored; raise ProtocolError."""
    size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > records.MAX_BODY:
        raise ProtocolError(C.E_TOO_LARGE, f"{kind} body is {size} bytes, over {records.MAX_BODY}")
    try:
        return records.check(kind, body)
    except wire.ProtoError as exc:
        raise ProtocolError(exc.code, exc.detail) from None


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
