"""Hypothesis strategies for wire payloads: good ones from every table, then mutated as objects and as bytes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_wire import BASES, LIMITS, RECORD_BASES

TOPIC = "jc/v1/s1/l1/{}"
# values chosen to sit on and around the table's limits, plus text that breaks the text rule
EDGE_INTS = [0, 1, -1, 32, 33, 40, 64, 200, 512, 684, 685, 2**16, 2**24, 2**31 - 1, 2**31, 2**40, 2**40 + 1,
             2**53, 2**53 + 1, 2**64, -(2**63) - 1]
EDGE_TEXT = ["", "x", "\x00", "\ud800", "\udfff", "\ud83d\ude00", "é", "进村", "p-1", "5f0c3a9e", "@manifest",
             "jc/app.py", "/abs", "a/../b", "0.1.0", "S", "open", "empty", "door", "online", "lost", "ab" * 32]
KEYS = sorted({k for _, obj in BASES.values() for k in obj} | {"x", "\ud800", "\x00", "", "cs", "files", "deps"})

scalars = (st.none() | st.booleans() | st.sampled_from(EDGE_INTS) | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False) | st.sampled_from(EDGE_TEXT) | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=4),
                           max_leaves=12)
# containers nested around the depth limit
deep = st.integers(6, 11).map(lambda n: json.loads("[" * n + "]" * n))


@st.composite
def payload_objects(draw) -> tuple[str, object]:
    """(kind, value): a good payload of a random table with a few of its fields changed, added or dropped."""
    kind, obj = BASES[draw(st.sampled_from(sorted(BASES)))]
    obj = json.loads(json.dumps(obj))
    for _ in range(draw(st.integers(0, 3))):
        target = obj
        # sometimes reach into a nested object (birth comps, deps, files)
        for key in ("comps", "deps", "files"):
            if key in obj and isinstance(obj[key], list) and obj[key] and draw(st.booleans()):
                target = obj[key][0] if isinstance(obj[key][0], dict) else obj
        if not isinstance(target, dict):
            break
        key = draw(st.sampled_from(sorted(target) or KEYS) | st.sampled_from(KEYS))
        action = draw(st.sampled_from(["set", "set", "drop", "deep"]))
        if action == "drop":
            target.pop(key, None)
        else:
            target[key] = draw(deep if action == "deep" else json_values)
    if draw(st.integers(0, 20)) == 0:
        obj = draw(json_values)
    return kind, obj


def _dump(obj, draw) -> bytes:
    style = draw(st.sampled_from(["compact", "ascii", "spaced"]))
    if style == "compact":
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    elif style == "ascii":
        text = json.dumps(obj, separators=(",", ":"))
    else:
        text = json.dumps(obj, indent=1, ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def payload_bytes(draw) -> tuple[str, bytes]:
    """(kind, bytes): a payload object written out, sometimes padded to its size limit or cut and spliced."""
    kind, obj = draw(payload_objects())
    data = _dump(obj, draw)
    how = draw(st.sampled_from(["as is", "as is", "pad", "mutate"]))
    if how == "pad" and isinstance(obj, dict):
        room = LIMITS[kind] - len(_dump(dict(obj, pad=""), draw))
        obj = dict(obj, pad="x" * max(0, room + draw(st.integers(-1, 1))))
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    elif how == "mutate" and data:
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(data)))
            piece = draw(st.sampled_from([b"", b",", b"]", b"}", b"{", b"[", b'"', b"\\", b"\\u0000", b"\\ud800",
                                          b"\xc0\xaf", b"\xed\xa0\x80", b"\xff", b"\x00", b"0", b"-", b"e5",
                                          b"NaN", b" ", b"\t", b"true", b"null", b"1.5"]))
            cut = draw(st.integers(0, 2))
            data = data[:i] + piece + data[i + cut:]
    return kind, data


RECORD_KEYS = sorted({k for body in RECORD_BASES.values() for k in body} | {"x", "\ud800", "\x00"})
RECORD_TEXT = ["", "p-1", "l1", "L1", "13800138000", "+8613800138000", "1234", "482913", "48291", "a\nb", "a\x7f",
               "\ud800", "王大妈", "x" * 65, "x" * 300, "door_to_door", "up", "S", "M"]


@st.composite
def record_objects(draw) -> tuple[str, object]:
    """(kind, body): a good station record with a few of its fields changed, added or dropped."""
    kind = draw(st.sampled_from(sorted(RECORD_BASES)))
    body = json.loads(json.dumps(RECORD_BASES[kind]))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(body) or RECORD_KEYS) | st.sampled_from(RECORD_KEYS))
        if draw(st.integers(0, 3)) == 0:
            body.pop(key, None)
        else:
            body[key] = draw(st.sampled_from(RECORD_TEXT) | scalars | json_values)
    return kind, body
