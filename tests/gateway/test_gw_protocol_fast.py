"""The gateway's orjson path gives exactly the wire core's verdict on generated and mutated payloads."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, example, given, settings

from gateway import protocol
from gateway.errors import ProtocolError
from jc import wire
from tests.vectors.wirecases import payload_bytes


def _verdict(kind: str, data: bytes) -> str:
    try:
        protocol.decode(kind, data)
    except ProtocolError as exc:
        return exc.code
    return "ok"


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload_bytes())
def test_gateway_decode_gives_the_core_verdict(case):
    kind, data = case
    assert _verdict(kind, data) == (wire.check(kind, data) or "ok")


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload_bytes())
@example(("evt", b'{"v":1,"x":-9223372036854775809}'))  # orjson reads it as a float
@example(("evt", b'{"v":1,"x":"\\u0000","x":1}'))
def test_orjson_reading_gives_the_core_value(case):
    """Where the fast reader is taken, it reads the same value and text verdict as the core's parser."""
    _, data = case
    try:
        alone = wire.parse(data)
    except wire.ProtoError:
        alone = None
    try:
        fast = wire.parse(data, orjson.loads)
    except wire.ProtoError:
        fast = None
    assert fast == alone
