"""Property fuzz of every codec at an edge: whatever the bytes, each answers with its own error, never a crash.

MQTT payloads (gateway side), the benchmark load's MQTT packet parser, RS-485 lock-board frames, ingest batches
and items (cloud side), and terminal request bodies. derandomize keeps every run the same, so a failure repeats.
"""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from cloud.errors import BatchRejected, ItemRejected
from cloud.protocol import decode_batch, parse_item
from gateway import const as C
from gateway import protocol, terminal
from gateway.errors import ProtocolError
from gateway.lockboard_sim import FrameSplitter
from bench.mqttwire import MqttProtocolError, Parser
from jc.lockboard import MODELS, BoardError, parse, parse_open, parse_status
from jincun.httpedge import MAX_DEPTH, too_deep

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=6), max_leaves=30)
# objects shaped like the real ones (the right keys, wrong values), so the checks past the envelope run too
EVT_KEYS = ["v", "boot", "seq", "ts", "mono", "type", "c", "ref", "code_h", "kind", "st", "door", "occ", "comps",
            "fw", "outbox", "vault", "state", "id", "ok", "err", "ver", "off", "n"]
shaped = st.dictionaries(st.sampled_from(EVT_KEYS), json_values, max_size=12).map(lambda d: {"v": 1, **d})


@FUZZ
@given(kind=st.sampled_from(C.UP_KINDS), body=st.binary(max_size=600) | shaped.map(lambda d: json.dumps(d).encode()))
def test_mqtt_payload_decode_answers_only_protocol_errors(kind, body):
    try:
        out = protocol.decode(kind, body)
    except ProtocolError:
        return
    assert isinstance(out, dict) and out["v"] == 1


@FUZZ
@given(chunks=st.lists(st.binary(max_size=300), max_size=8))
def test_mqtt_packet_parser_answers_only_its_error(chunks):
    p = Parser()
    try:
        for c in chunks:
            p.feed(c)
    except MqttProtocolError:
        return
    assert p.buffered <= sum(map(len, chunks))


@FUZZ
@given(raw=st.binary(max_size=64), model=st.sampled_from(sorted(MODELS)), addr=st.integers(0, 31),
       lock=st.integers(1, 16))
def test_lockboard_frames_answer_only_board_errors(raw, model, addr, lock):
    m = MODELS[model]
    for fn in (lambda: parse(raw), lambda: parse_status(m, addr, raw), lambda: parse_open(m, addr, lock, raw)):
        try:
            fn()
        except BoardError:
            pass
    s = FrameSplitter(max_buffer=128)
    s.feed(raw)
    while s.take_request() is not None:
        pass


@FUZZ
@given(body=st.binary(max_size=400) | st.fixed_dictionaries(
    {"station": st.text(max_size=10) | st.just("lz-fengjia-01"), "batch": st.text(max_size=10) | st.just("b-1"),
     "items": st.lists(st.fixed_dictionaries({"src": st.text(max_size=6), "kind": st.sampled_from(
         ["evt", "birth", "tele", "status", "ack", "parcel", "code", "handover", "gw_tele", "x"]),
         "body": shaped, "seq": json_values, "boot": json_values, "rx": json_values}), max_size=4)}
).map(lambda d: json.dumps(d).encode()))
def test_ingest_batches_and_items_answer_only_rejections(body):
    try:
        batch = decode_batch(body)
    except BatchRejected as exc:
        assert exc.status_code in (400, 413, 422)
        return
    for raw in batch.items:
        try:
            parse_item(raw)
        except ItemRejected:
            pass


def test_a_batch_nested_past_the_bound_is_refused_not_crashed():
    deep = b'{"station": "s", "batch": "b", "items": ' + b"[" * 1100 + b"]" * 1100 + b"}"
    assert too_deep(deep)
    try:
        decode_batch(deep)
    except (BatchRejected, RecursionError):
        pass  # the HTTP edge answers both with 4xx (tests/security/test_bodies.py)


TERMINAL_MODELS = [terminal.LoginIn, terminal.TermDepositIn, terminal.DepositIn, terminal.OutboundIn,
                   terminal.FaultIn, terminal.HandoverIn, terminal.PickupIn]


@FUZZ
@given(model=st.sampled_from(TERMINAL_MODELS), body=json_values)
def test_terminal_requests_are_valid_or_refused_by_their_model(model: type[BaseModel], body):
    text = json.dumps(body).encode()
    if too_deep(text, MAX_DEPTH):
        return  # refused at the edge before any model sees it
    try:
        model.model_validate_json(text)
    except ValidationError:
        pass
