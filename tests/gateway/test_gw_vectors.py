"""The gateway codec against the normative vectors in tests/vectors/."""

import base64
import hashlib
import json

import pytest

from gateway import protocol
from jc import wire
from gateway.errors import ProtocolError
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

PAYLOADS = [c for f in ("payloads.json", "wire.json") for c in json.loads((VECTORS / f).read_text())["cases"]]
TOPICS = json.loads((VECTORS / "topics.json").read_text())["cases"]
CODES = json.loads((VECTORS / "codes.json").read_text())["cases"]


@pytest.mark.parametrize("case", PAYLOADS, ids=[c["name"] for c in PAYLOADS])
def test_payload(case):
    data = base64.b64decode(case["payload_b64"]) if "payload_b64" in case else case["payload"].encode("utf-8")
    if case["valid"]:
        obj = protocol.decode(case["kind"], data)
        assert obj["v"] == 1
    else:
        with pytest.raises(ProtocolError) as exc:
            protocol.decode(case["kind"], data)
        assert exc.value.code == case["error"]


RECORDS = json.loads((VECTORS / "records.json").read_text())["cases"]


@pytest.mark.parametrize("case", RECORDS, ids=[c["name"] for c in RECORDS])
def test_station_record(case):
    """§5.1 station records: what the gateway checks before it stores one of its own."""
    if case["valid"]:
        assert protocol.check_record(case["kind"], case["body"]) == case["body"]
    else:
        with pytest.raises(ProtocolError) as exc:
            protocol.check_record(case["kind"], case["body"])
        assert exc.value.code == case["error"]


@pytest.mark.parametrize("case", TOPICS, ids=[c["topic"] for c in TOPICS])
def test_topic(case):
    if "error" in case:
        with pytest.raises(ProtocolError) as exc:
            protocol.parse_topic(case["topic"])
        assert exc.value.code == case["error"]
    else:
        t = protocol.parse_topic(case["topic"])
        assert (t.station, t.locker, t.kind) == (case["station"], case["locker"], case["kind"])
        assert protocol.build_topic(t.station, t.locker, t.kind) == case["topic"]


@pytest.mark.parametrize("case", CODES, ids=[c["code"] for c in CODES])
def test_code_hash(case):
    assert protocol.code_hash(case["secret"], case["code"]) == case["h"]


def test_encoders_refuse_what_the_locker_would_refuse():
    assert json.loads(protocol.encode_cmd("c-1", "deposit", c=2, ref="p-1")) == {
        "v": 1, "id": "c-1", "op": "deposit", "c": 2, "ref": "p-1"}
    with pytest.raises(ProtocolError):
        protocol.encode_cmd("c-1", "deposit", c=2)
    assert json.loads(protocol.encode_eack("5f0c3a9e", 17)) == {"v": 1, "boot": "5f0c3a9e", "seq": 17}


@pytest.mark.parametrize("payload, error", [
    (b"[" * 2040 + b"]" * 2040, "not_json"),                      # nested past any parser's depth
    (b'{"v":1,"boot":"5f0c3a9e","seq":NaN}', "not_json"),           # the stdlib parser's extension, not JSON
    (b'{"v":1,"boot":"5f0c3a9e","seq":' + b"9" * 30 + b"}", "bad_field"),  # beyond 64 bits: JSON, out of range
    (b'{"v":1,"boot":"\\ud800","seq":1}', "bad_field"),             # a lone surrogate breaks the text rule
    (b'{"v":1,"boot":"\xff","seq":1}', "not_json"),                # not UTF-8
    (b'{"v":1,"x":"\\u0000","x":"a"}', "bad_field"),               # a NUL hidden by a duplicate key
])
def test_payloads_the_fast_parser_refuses_get_the_core_answer(payload, error):
    """The gateway parses with orjson and lets the wire core judge what orjson refuses or may hide: either
    way a clear ProtocolError (never another exception), with the code the core alone gives."""
    with pytest.raises(ProtocolError) as exc:
        protocol.decode("birth", payload)
    assert exc.value.code == error == wire.check("birth", payload)


FW = json.loads((VECTORS / "fwupdate.json").read_text())


@pytest.mark.parametrize("case", FW["payloads"], ids=[c["name"] for c in FW["payloads"]])
def test_fwupdate_payload(case):
    data = case["payload"].encode("utf-8")
    if case["valid"]:
        assert protocol.decode(case["kind"], data)["v"] == 1
    else:
        with pytest.raises(ProtocolError) as exc:
            protocol.decode(case["kind"], data)
        assert exc.value.code == case["error"]


@pytest.mark.parametrize("case", FW["pins"], ids=[c["pin"] for c in FW["pins"]])
def test_courier_pin_hash(case):
    assert protocol.courier_hash(case["secret"], case["pin"]) == case["h"]


# the vector names the files by size and hash; these are their contents
_CONTENTS = {hashlib.sha256(b).hexdigest(): b for b in (b"", b"hello", b'FW = "0.2.0"\n')}


@pytest.mark.parametrize("case", FW["macs"], ids=[c["ver"] for c in FW["macs"]])
def test_firmware_manifest_and_mac(case):
    from gateway.fwserve import FirmwareSet
    fwset = FirmwareSet(case["ver"], {f["path"]: _CONTENTS[f["sha256"]] for f in case["files"]})
    assert fwset.manifest() == case["manifest"]
    assert fwset.mac(case["secret"]) == case["mac"]
