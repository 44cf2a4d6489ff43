"""The cloud's ingest codec agrees with the normative vectors and judges item envelopes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from cloud.errors import BatchRejected, ItemRejected
from cloud.protocol import decode_batch, decode_locker_payload, parse_item

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CASES = [c for f in ("payloads.json", "wire.json") for c in json.loads((VECTORS / f).read_text())["cases"]
         if c["kind"] in ("evt", "birth", "status", "tele")]


def _data(case: dict) -> bytes:
    return base64.b64decode(case["payload_b64"]) if "payload_b64" in case else case["payload"].encode("utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_locker_payload_vectors(case):
    data = _data(case)
    if case["valid"]:
        assert decode_locker_payload(case["kind"], data)["v"] == 1
    else:
        with pytest.raises(ItemRejected) as info:
            decode_locker_payload(case["kind"], data)
        assert info.value.code == case["error"]


RECORDS = json.loads((VECTORS / "records.json").read_text())["cases"]


@pytest.mark.parametrize("case", RECORDS, ids=[c["name"] for c in RECORDS])
def test_station_record_vectors(case):
    """§5.1 station records, judged as ingest items (the inline checks first, then the core's table)."""
    raw = {"src": "gw", "boot": "a1b2c3d4", "seq": 1, "kind": case["kind"], "rx": 1.5, "body": case["body"]}
    if case["valid"]:
        assert parse_item(raw).body == case["body"]
    else:
        with pytest.raises(ItemRejected) as info:
            parse_item(raw)
        assert info.value.code == case["error"]


@pytest.mark.parametrize("case", [c for c in CASES if c["valid"]], ids=lambda c: c["name"])
def test_valid_vectors_accepted_as_items(case):
    body = json.loads(_data(case))
    seq = body.get("seq", 1) if case["kind"] == "evt" else 7
    item = parse_item({"src": "l1", "boot": "5f0c3a9e", "seq": seq, "kind": case["kind"], "rx": 1.5, "body": body})
    assert (item.kind, item.rx, item.body) == (case["kind"], 1.5, body)


@pytest.mark.parametrize("raw,code", [
    ({"src": "gw", "boot": "a1b2c3d4", "seq": 1, "kind": "evt", "rx": 1, "body": {}}, "bad_item"),
    ({"src": "l1", "boot": "a1b2c3d4", "seq": 1, "kind": "parcel", "rx": 1, "body": {}}, "bad_item"),
    ({"src": "L1", "boot": "a1b2c3d4", "seq": 1, "kind": "tele", "rx": 1, "body": {}}, "bad_item"),
    ({"src": "l1", "boot": "a1b2c3d4", "seq": -1, "kind": "tele", "rx": 1, "body": {}}, "bad_item"),
    ({"src": "l1", "boot": "a1b2c3d4", "seq": 1, "kind": "tele", "rx": "now", "body": {}}, "bad_item"),
    ({"src": "l1", "boot": "a1b2c3d4", "seq": 1, "kind": "tele", "rx": 1}, "bad_item"),
    ({"src": "l1", "boot": "a1b2c3d4", "seq": 1, "kind": "cmd", "rx": 1, "body": {}}, "unknown_kind"),
    ({"src": "l1", "boot": "5f0c3a9e", "seq": 2, "kind": "evt", "rx": 1,
      "body": {"v": 1, "boot": "5f0c3a9e", "seq": 3, "ts": 0, "mono": 0, "type": "door", "c": 1, "open": True}},
     "mismatch"),
    ({"src": "gw", "boot": "a1b2c3d4", "seq": 1, "kind": "code", "rx": 1,
      "body": {"ref": "p-1", "phone": "138", "code": "123456"}}, "bad_field"),
    ({"src": "gw", "boot": "a1b2c3d4", "seq": 1, "kind": "parcel", "rx": 1,
      "body": {"ref": "p-1", "locker": "l1", "c": 1, "waybill": "a\nb"}}, "bad_field"),
    ({"src": "gw", "boot": "a1b2c3d4", "seq": 1, "kind": "parcel", "rx": 1, "body": [1]}, "not_object"),
])
def test_bad_items(raw, code):
    with pytest.raises(ItemRejected) as info:
        parse_item(raw)
    assert info.value.code == code
    assert info.value.wire.startswith(code + ": ")


def test_batch_envelope():
    ok = decode_batch(b'{"station":"lz-fengjia-01","batch":"3f2a","items":[]}')
    assert (ok.station, ok.batch, ok.items) == ("lz-fengjia-01", "3f2a", [])
    for data, status in [(b"[]", 422), (b"\xff", 422), (b'{"station":"A B","batch":"x","items":[]}', 422),
                         (b'{"station":"s","batch":"x","items":{}}', 422),
                         (b'{"station":"s","batch":"x","items":[' + b",".join([b"1"] * 501) + b"]}", 413),
                         (b" " * (1024 * 1024 + 1), 413)]:
        with pytest.raises(BatchRejected) as info:
            decode_batch(data)
        assert info.value.status_code == status
