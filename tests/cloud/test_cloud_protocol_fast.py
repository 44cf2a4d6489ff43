"""The cloud's inline item checks give exactly the wire core's verdict on generated and mutated bodies."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings

from cloud import protocol
from cloud.errors import ItemRejected
from jc import records, wire
from tests.vectors.wirecases import (
    RECORD_BASES,
    payload_bytes,
    payload_objects,
    record_objects,
)

LOCKER_KINDS = ("evt", "birth", "status", "tele")


def _core(kind: str, body) -> str:
    if not protocol._within(body, wire.K.MAX_BYTES[kind]):
        return "too_large"
    try:
        wire.judge_parsed(kind, body)
    except wire.ProtoError as exc:
        return exc.code
    return "ok"


def _item(kind: str, body) -> dict:
    evt = kind == "evt" and isinstance(body, dict)
    boot, seq = (body.get("boot"), body.get("seq")) if evt else ("a1b2c3d4", 7)
    return {"src": "l1", "boot": boot if isinstance(boot, str) and len(boot) == 8 else "5f0c3a9e",
            "seq": seq if type(seq) is int and 0 <= seq <= 2**31 else 1, "kind": kind, "rx": 1.5, "body": body}


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(payload_objects())
def test_items_get_the_core_verdict(case):
    kind, body = case
    if kind not in LOCKER_KINDS:
        kind = "tele"
    raw = _item(kind, body)
    fast = protocol._fast_item(raw)
    want = _core(kind, body)
    if fast is not None:
        assert want == "ok", f"the fast path took what the core refuses ({want})"
    try:
        protocol.parse_item(raw)
        got = "ok"
    except ItemRejected as exc:
        got = exc.code
    if got == "mismatch":  # the envelope's own check, after the core accepted the body
        assert want == "ok"
    else:
        assert got == want


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload_bytes())
def test_raw_payloads_get_the_core_verdict(case):
    kind, data = case
    if kind not in LOCKER_KINDS:
        return
    try:
        protocol.decode_locker_payload(kind, data)
        got = "ok"
    except ItemRejected as exc:
        got = exc.code
    assert got == (wire.check(kind, data) or "ok")


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_objects())
def test_station_records_get_the_core_verdict(case):
    """The inline parcel and code checks, and the rest through jc.records: the core's verdict every time."""
    kind, body = case
    raw = {"src": "gw", "boot": "a1b2c3d4", "seq": 3, "kind": kind, "rx": 1.5, "body": body}
    want = "too_large" if not protocol._within(body, records.MAX_BODY) else "ok"
    if want == "ok":
        try:
            records.check(kind, body)
        except wire.ProtoError as exc:
            want = exc.code
    if protocol._fast_item(raw) is not None:
        assert want == "ok", f"the fast path took what the core refuses ({want})"
    try:
        protocol.parse_item(raw)
        got = "ok"
    except ItemRejected as exc:
        got = exc.code
    assert got == want


def test_the_fast_path_takes_the_common_items():
    """The inline checks are worth keeping only if they take the usual event and telemetry."""
    evt = {"v": 1, "boot": "5f0c3a9e", "seq": 3, "ts": 0, "mono": 5, "type": "door", "c": 1, "open": True}
    tele = json.loads('{"v":1,"boot":"5f0c3a9e","ts":1,"mono":2,"up":1,"heap":4,"rssi":-61,"vin":12.1,'
                      '"temp":41.5,"reset":"power","outbox":0,"drops":0,"errs":0,"fw":"0.1.0","lockouts":0}')
    assert protocol._fast_item(_item("evt", evt)) is not None
    assert protocol._fast_item(_item("tele", tele)) is not None
    for kind in ("parcel", "code"):
        raw = {"src": "gw", "boot": "a1b2c3d4", "seq": 3, "kind": kind, "rx": 1.5, "body": RECORD_BASES[kind]}
        assert protocol._fast_item(raw) is not None
