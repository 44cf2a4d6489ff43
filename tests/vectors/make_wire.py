"""Write tests/vectors/wire.json: boundary, text-rule and depth cases of every payload field (protocol §3.8).

Each expected verdict follows from the rule it tests (max is taken, max+1 is bad_field, ...), written here
by hand from docs/protocol.md; the file is normative once written. Run: python tests/vectors/make_wire.py
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

OUT = Path(__file__).with_name("wire.json")
LIMITS = {"birth": 4096, "evt": 512, "ack": 512, "status": 512, "tele": 1024, "cmd": 1024, "eack": 1024, "fwreq": 512}
BOOT, H = "5f0c3a9e", "ab" * 32
STAMP = {"v": 1, "boot": BOOT, "ts": 1764355260, "mono": 61000}
COMP = {"n": 1, "size": "S", "st": "empty", "door": "closed", "occ": False}
BASES = {
    "evt door": ("evt", {**STAMP, "seq": 17, "type": "door", "c": 2, "open": True}),
    "evt lock": ("evt", {**STAMP, "seq": 17, "type": "lock", "c": 2, "why": "remote"}),
    "evt deposit": ("evt", {**STAMP, "seq": 17, "type": "deposit", "c": 2, "ref": "p-1"}),
    "evt code_ok": ("evt", {**STAMP, "seq": 17, "type": "code_ok", "cs": [1, 2]}),
    "evt code_bad": ("evt", {**STAMP, "seq": 17, "type": "code_bad", "fails": 3}),
    "evt lockout": ("evt", {**STAMP, "seq": 17, "type": "lockout", "secs": 30, "count": 1}),
    "evt alarm": ("evt", {**STAMP, "seq": 17, "type": "alarm", "kind": "lock_jam", "c": 4}),
    "evt state": ("evt", {**STAMP, "seq": 17, "type": "state", "c": 4, "st": "disabled"}),
    "evt fw": ("evt", {**STAMP, "seq": 17, "type": "fw", "ver": "0.2.0", "result": "ok"}),
    "evt courier": ("evt", {**STAMP, "seq": 17, "type": "courier", "cs": [3]}),
    "birth": ("birth", {**STAMP, "fw": "0.1.0", "seq": 3, "comps": [COMP], "outbox": 0, "vault": 1}),
    "status online": ("status", {"v": 1, "state": "online", "boot": BOOT}),
    "status lost": ("status", {"v": 1, "state": "lost"}),
    "tele": ("tele", {**STAMP, "up": 61, "heap": 41000, "heap_max": 30000, "rssi": -61, "vin": 12.1, "temp": 41.5,
                      "reset": "power", "outbox": 0, "drops": 0, "errs": 0, "fw": "0.1.0"}),
    "ack": ("ack", {"v": 1, "id": "c-1", "ok": False, "err": "busy"}),
    "cmd deposit": ("cmd", {"v": 1, "id": "c-1", "op": "deposit", "c": 2, "ref": "p-1"}),
    "cmd code_put": ("cmd", {"v": 1, "id": "c-1", "op": "code_put", "h": H, "cs": [2], "exp": 86400}),
    "cmd open": ("cmd", {"v": 1, "id": "c-1", "op": "open", "c": 2, "by": "ops-li", "why": "door stuck"}),
    "cmd time": ("cmd", {"v": 1, "id": "c-1", "op": "time", "ts": 1764355260}),
    "cmd courier_put": ("cmd", {"v": 1, "id": "c-1", "op": "courier_put", "h": H,
                                "deps": [{"c": 1, "ref": "p-1"}], "exp": 3600}),
    "cmd fw_offer": ("cmd", {"v": 1, "id": "c-1", "op": "fw_offer", "ver": "0.2.0", "mac": H,
                             "files": [{"path": "jc/app.py", "size": 10, "sha256": H}]}),
    "cmd fw_offer msize": ("cmd", {"v": 1, "id": "c-1", "op": "fw_offer", "ver": "0.2.0", "mac": H, "msize": 900}),
    "cmd fw_chunk": ("cmd", {"v": 1, "id": "c-1", "op": "fw_chunk", "ver": "0.2.0", "file": "jc/app.py", "off": 0,
                             "data": "aGVsbG8="}),
    "eack": ("eack", {"v": 1, "boot": BOOT, "seq": 17}),
    "fwreq": ("fwreq", {"v": 1, "ver": "0.2.0", "file": "@manifest", "off": 0, "len": 512}),
}
# (base, path to the field, lowest, highest) of every integer range; path items are keys or list indexes
INT_RANGES = [
    ("evt door", ["seq"], 1, 2**31 - 1), ("evt door", ["ts"], 0, 2**40), ("evt door", ["mono"], 0, 2**53),
    ("evt door", ["c"], 1, 32), ("evt code_bad", ["fails"], 0, 2**31 - 1), ("evt lockout", ["secs"], 0, 2**31 - 1),
    ("evt lockout", ["count"], 0, 2**31 - 1), ("evt alarm", ["c"], 1, 32), ("evt code_ok", ["cs", 0], 1, 32),
    ("birth", ["seq"], 0, 2**31 - 1), ("birth", ["outbox"], 0, 2**31 - 1), ("birth", ["vault"], 0, 2**31 - 1),
    ("birth", ["comps", 0, "n"], 1, 32), ("tele", ["up"], 0, 2**53), ("tele", ["heap"], 0, 2**53),
    ("tele", ["rssi"], -200, 50), ("tele", ["errs"], 0, 2**53), ("cmd code_put", ["exp"], 1, 2**31 - 1),
    ("cmd time", ["ts"], 0, 2**40), ("cmd fw_offer msize", ["msize"], 1, 2**16),
    ("cmd fw_offer", ["files", 0, "size"], 0, 2**24), ("cmd fw_chunk", ["off"], 0, 2**24),
    ("eack", ["seq"], 1, 2**31 - 1), ("fwreq", ["len"], 1, 512), ("fwreq", ["off"], 0, 2**24),
]
# (base, field, shortest, longest, a character the field allows)
STR_LENGTHS = [
    ("evt deposit", ["ref"], 1, 40, "p"), ("evt fw", ["ver"], 1, 24, "1"), ("birth", ["fw"], 1, 24, "1"),
    ("ack", ["id"], 1, 24, "c"), ("ack", ["err"], 0, 64, "e"), ("tele", ["reset"], 0, 64, "r"),
    ("cmd open", ["by"], 1, 64, "o"), ("cmd open", ["why"], 0, 200, "w"), ("cmd fw_chunk", ["data"], 0, 684, "A"),
    ("fwreq", ["file"], 1, 64, "a"),
]
# (base, path, a list's shortest and longest length, one good element)
LIST_LENGTHS = [
    ("evt code_ok", ["cs"], 1, 32, 1), ("birth", ["comps"], 1, 32, None), ("cmd code_put", ["cs"], 1, 32, 1),
    ("cmd courier_put", ["deps"], 1, 32, {"c": 1, "ref": "p-1"}),
    ("cmd fw_offer", ["files"], 1, 40, {"path": "a", "size": 1, "sha256": H}),
]
REQUIRED = {"evt door": ["v", "boot", "seq", "ts", "mono", "type", "c", "open"], "birth": ["fw", "comps"],
            "status online": ["state", "boot"], "tele": ["boot", "ts", "mono"], "ack": ["id", "ok"],
            "cmd deposit": ["id", "op", "ref"], "cmd fw_offer msize": ["msize", "mac"], "eack": ["boot", "seq"],
            "fwreq": ["ver", "file", "off", "len"]}
OPTIONAL = {"evt alarm": ["c"], "birth": ["outbox", "vault"], "ack": ["err"],
            "tele": ["up", "heap", "heap_max", "rssi", "vin", "temp", "reset", "outbox", "drops", "errs", "fw"]}

cases: list[dict] = []


def dump(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def add(name: str, kind: str, payload: str | bytes, error: str | None) -> None:
    c: dict = {"name": name, "kind": kind}
    if isinstance(payload, bytes):
        c["payload_b64"] = base64.b64encode(payload).decode()
    else:
        c["payload"] = payload
    c["valid"] = error is None
    if error is not None:
        c["error"] = error
    cases.append(c)


def with_value(base: str, path: list, value) -> tuple[str, dict]:
    kind, obj = BASES[base]
    obj = json.loads(json.dumps(obj))
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return kind, obj


_DROP = object()


def field_cases() -> None:
    for base, path, lo, hi in INT_RANGES:
        name = f"{base} {'.'.join(map(str, path))}"
        for value, error in ((lo, None), (hi, None), (lo - 1, "bad_field"), (hi + 1, "bad_field"),
                             (str(lo), "bad_field"), (float(lo), "bad_field"), (True, "bad_field"),
                             (None, "bad_field")):
            kind, obj = with_value(base, path, value)
            add(f"{name} = {value!r}", kind, dump(obj), error)
    for base, path, lo, hi, ch in STR_LENGTHS:
        name = f"{base} {'.'.join(map(str, path))}"
        for n, error in ((lo, None), (hi, None), (hi + 1, "bad_field")) + (((lo - 1, "bad_field"),) if lo else ()):
            kind, obj = with_value(base, path, ch * n)
            add(f"{name} of {n} characters", kind, dump(obj), error)
        kind, obj = with_value(base, path, 7)
        add(f"{name} as a number", kind, dump(obj), "bad_field")
    for base, path, lo, hi, good in LIST_LENGTHS:
        name = f"{base} {'.'.join(map(str, path))}"
        for n, error in ((lo, None), (hi, None), (hi + 1, "bad_field"), (lo - 1, "bad_field")):
            items = ([dict(COMP, n=i + 1) for i in range(n)] if good is None
                     else [(i % 32) + 1 for i in range(n)] if good == 1 else [good] * n)
            kind, obj = with_value(base, path, items)
            size = len(dump(obj).encode())
            add(f"{name} with {n} items", kind, dump(obj), "too_large" if size > LIMITS[kind] else error)
        kind, obj = with_value(base, path, {"0": good})
        add(f"{name} as an object", kind, dump(obj), "bad_field")
    for base, fields in REQUIRED.items():
        for field in fields:
            kind, obj = with_value(base, [field], _DROP)
            add(f"{base} without {field}", kind, dump(obj), "bad_version" if field == "v" else "bad_field")
    for base, fields in OPTIONAL.items():
        for field in fields:
            kind, obj = with_value(base, [field], _DROP)
            add(f"{base} without optional {field}", kind, dump(obj), None)
    # the rest of the table, one case each
    for base, path, value, error in [
        ("evt door", ["open"], 1, "bad_field"), ("evt door", ["type"], "teleport", "bad_field"),
        ("evt door", ["boot"], "5F0C3A9E", "bad_field"), ("evt door", ["boot"], "5f0c3a9", "bad_field"),
        ("evt lock", ["why"], "bored", "bad_field"), ("evt deposit", ["ref"], "p 1", "bad_field"),
        ("evt alarm", ["kind"], "fire", "bad_field"), ("evt state", ["st"], "gone", "bad_field"),
        ("evt fw", ["result"], "maybe", "bad_field"), ("birth", ["comps", 0, "door"], "ajar", "bad_field"),
        ("birth", ["comps", 0, "size"], "XL", "bad_field"), ("birth", ["comps", 0, "occ"], "no", "bad_field"),
        ("birth", ["comps", 0, "ref"], "p-1", None), ("birth", ["comps", 0, "ref"], None, "bad_field"),
        ("birth", ["safe"], True, None), ("birth", ["safe"], 1, "bad_field"),
        ("birth", ["comps"], [COMP, COMP], "bad_field"),
        ("status online", ["state"], "away", "bad_field"), ("status lost", ["boot"], BOOT, None),
        ("status lost", ["boot"], "nope", "bad_field"),
        ("tele", ["vin"], 1000, None), ("tele", ["vin"], 1000.5, "bad_field"), ("tele", ["temp"], -1000.0, None),
        ("tele", ["temp"], "hot", "bad_field"), ("tele", ["fw"], "0.1 beta", "bad_field"),
        ("tele", ["extra_counter"], 5, None), ("ack", ["ok"], "yes", "bad_field"),
        ("cmd deposit", ["op"], "explode", "bad_field"), ("cmd code_put", ["h"], "AB" * 32, "bad_field"),
        ("cmd code_put", ["h"], "ab" * 31, "bad_field"), ("cmd courier_put", ["deps", 0, "ref"], 5, "bad_field"),
        ("cmd fw_offer", ["files", 0, "path"], "/jc/app.py", "bad_field"),
        ("cmd fw_offer", ["files", 0, "path"], "jc/../boot.py", "bad_field"),
        ("cmd fw_offer", ["files", 0, "path"], "jc//app.py", "bad_field"),
        ("cmd fw_offer", ["files", 0, "path"], "@manifest", "bad_field"),
        ("cmd fw_chunk", ["file"], "@manifest", None), ("fwreq", ["file"], "jc/app.py", None),
        ("fwreq", ["file"], "@other", "bad_field"), ("eack", ["v"], True, "bad_version"),
        ("eack", ["v"], 1.0, "bad_version"),
    ]:
        kind, obj = with_value(base, path, value)
        add(f"{base} {'.'.join(map(str, path))} = {value!r}"[:120], kind, dump(obj), error)


def size_cases() -> None:
    for kind, limit in LIMITS.items():
        base = next(b for b, (k, _) in BASES.items() if k == kind)
        obj = dict(BASES[base][1], pad="")
        pad = limit - len(dump(obj).encode())
        add(f"{kind} of exactly {limit} bytes", kind, dump(dict(obj, pad="x" * pad)), None)
        add(f"{kind} of {limit + 1} bytes", kind, dump(dict(obj, pad="x" * (pad + 1))), "too_large")
        add(f"{kind} of {limit} bytes of spaces", kind, " " * limit, "not_json")
    add("empty payload", "evt", "", "not_json")
    add("empty object", "evt", "{}", "bad_version")


def text_cases() -> None:
    door = dump(BASES["evt door"][1])[:-1]
    ack = '{"v":1,"id":"c-1","ok":false,"err":'
    for name, tail, error in [
        ("a lone high surrogate in an extra field", ',"x":"\\ud800"}', "bad_field"),
        ("a lone low surrogate in an extra field", ',"x":"\\udc00"}', "bad_field"),
        ("a high surrogate before a non-surrogate", ',"x":"\\ud83dx"}', "bad_field"),
        ("two high surrogates", ',"x":"\\ud83d\\ud83d"}', "bad_field"),
        ("a surrogate pair", ',"x":"\\ud83d\\ude00"}', None),
        ("a lone surrogate in a key", ',"\\ud800":1}', "bad_field"),
        ("a NUL escape in an extra field", ',"x":"a\\u0000b"}', "bad_field"),
        ("a NUL escape in a key", ',"\\u0000":1}', "bad_field"),
        ("a NUL escape hidden by a duplicate key", ',"x":"\\u0000","x":"a"}', "bad_field"),
        ("an escaped backslash before u0000", ',"x":"\\\\u0000"}', None),
        ("a surrogate deep in a list", ',"x":[[["\\udfff"]]]}', "bad_field"),
        ("a raw tab in a string", ',"x":"a\tb"}', "not_json"),
        ("an unknown escape", ',"x":"\\q"}', "not_json"),
        ("a short unicode escape", ',"x":"\\u12"}', "not_json"),
        ("a trailing comma", ',}', "not_json"),
        ("a missing colon", ',"x" 1}', "not_json"),
        ("two values without a comma", ',"x":1 2}', "not_json"),
        ("a leading zero", ',"x":01}', "not_json"),
        ("a bare decimal point", ',"x":1.}', "not_json"),
        ("NaN", ',"x":NaN}', "not_json"),
        ("Infinity", ',"x":-Infinity}', "not_json"),
        ("a number beyond 64 bits", ',"x":' + "9" * 30 + '}', None),
        ("a number just below the 64-bit range", ',"x":-9223372036854775809}', None),
        ("a float beyond double", ',"x":1e400}', None),
        ("data after the object", '}x', "not_json"),
        ("whitespace around the object", '} \r\n\t', None),
        ("unicode text in an extra field", ',"x":"进村 é"}', None),
    ]:
        add(f"evt with {name}", "evt", door + tail, error)
    add("ack err with a lone surrogate", "ack", ack + '"\\ud800"}', "bad_field")
    add("ack err with unicode text", "ack", ack + '"门卡住了"}', None)
    add("a leading byte order mark", "evt", b"\xef\xbb\xbf" + dump(BASES["evt door"][1]).encode(), "not_json")
    for name, raw in [("an over-long slash", b"\xc0\xaf"), ("an over-long three-byte form", b"\xe0\x80\xaf"),
                      ("an encoded surrogate", b"\xed\xa0\x80"), ("a code point above U+10FFFF", b"\xf4\x90\x80\x80"),
                      ("a stray continuation byte", b"\x80"), ("a truncated sequence", b"\xe8\xbf"),
                      ("an invalid byte", b"\xff"), ("a raw NUL", b"\x00")]:
        add(f"evt with {name}", "evt", door.encode() + b',"x":"' + raw + b'"}', "not_json")
    add("evt with a valid four-byte character", "evt", door.encode() + b',"x":"\xf0\x9f\x98\x80"}', None)


def depth_cases() -> None:
    door = dump(BASES["evt door"][1])[:-1]
    for depth, error in ((8, None), (9, "not_json")):
        add(f"evt nested {depth} deep", "evt", door + ',"x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}", error)
        add(f"evt nested {depth} deep in objects", "evt",
            door + ',"x":' + '{"a":' * (depth - 2) + "{}" + "}" * (depth - 2) + "}", error)
    add("evt nested 9 deep behind a duplicate key", "evt", door + ',"x":' + "[" * 8 + "]" * 8 + ',"x":1}', "not_json")
    add("a list nested 300 deep", "evt", "[" * 250 + "]" * 250, "not_json")


RECORD_BASES = {
    "parcel": {"ref": "p-1", "waybill": "SF1234567890", "carrier": "SF", "phone": "13800138000", "locker": "l1",
               "c": 3, "size": "M"},
    "code": {"ref": "p-1", "locker": "l1", "phone": "13800138000", "code": "482913", "exp_ts": 1764960000},
    "gw_tele": {"outbox_depth": 3, "oldest_unsent_s": 1.5, "uplink": "up", "lockers_online": 2, "lockers_total": 2,
                "cpu_temp": 48.2, "up_s": 3600, "counters": {"rejected_payloads": 0}},
    "outbound": {"ref": "o-1", "carrier": "EMS", "sender_phone": "13700000001", "sender_name": "王大妈",
                 "dest": "成都市", "weight_g": 2500, "fee_cents": 1200, "fee_reason": "EMS 3 kg", "produce": "核桃"},
    "handover": {"ref": "p-1", "by": "agent-li", "at": 1764355200, "how": "door_to_door"},
    "collected": {"ref": "o-1", "carrier": "EMS", "by": "courier-ems", "waybill": "EA123456789CN", "at": 1764355200},
    "charge": {"carrier": "ZTO", "kind": "pickup", "cents": 200, "ref": "p-1", "waybill": "ZT1234567890",
               "phone": "13800138000", "text": "取件收了两元", "by": "agent-li", "at": 1764355200},
    "fault_report": {"locker": "l1", "c": 2, "phone": "13800138000", "text": "门打不开", "at": 1764355200},
}
RECORD_INTS = [("parcel", "c", 1, 32), ("code", "exp_ts", 0, 2**53), ("gw_tele", "outbox_depth", 0, 2**53),
               ("gw_tele", "lockers_total", 2, 10000), ("gw_tele", "up_s", 0, 2**53),
               ("outbound", "weight_g", 1, 100000), ("outbound", "fee_cents", 0, 10000000),
               ("handover", "at", 1, 2**53), ("fault_report", "c", 1, 32), ("fault_report", "at", 1, 2**53),
               ("collected", "at", 1, 2**53), ("charge", "cents", 1, 10000000), ("charge", "at", 1, 2**53)]
RECORD_TEXT = [("parcel", "waybill", 64), ("parcel", "carrier", 32), ("outbound", "carrier", 32),
               ("outbound", "sender_name", 64), ("outbound", "dest", 120), ("outbound", "fee_reason", 64),
               ("outbound", "produce", 40), ("fault_report", "text", 300), ("collected", "carrier", 32),
               ("collected", "waybill", 64), ("charge", "carrier", 32), ("charge", "text", 200)]
RECORD_REQUIRED = {"parcel": ["ref", "locker", "c"], "code": ["ref", "phone", "code"],
                   "gw_tele": ["outbox_depth", "oldest_unsent_s", "uplink", "lockers_online", "lockers_total",
                               "cpu_temp", "up_s"],
                   "outbound": ["ref", "carrier", "sender_phone", "sender_name", "dest", "weight_g", "fee_cents"],
                   "handover": ["ref", "by", "at", "how"], "fault_report": ["locker", "text", "at"],
                   "collected": ["ref", "carrier", "by", "at"], "charge": ["carrier", "kind", "cents", "by", "at"]}
RECORD_OPTIONAL = {"parcel": ["waybill", "carrier", "phone", "size"], "code": ["locker", "exp_ts"],
                   "gw_tele": ["counters"], "outbound": ["produce"], "fault_report": ["c", "phone"],
                   "collected": ["waybill"], "charge": ["ref", "waybill", "phone", "text"]}


def record_cases() -> list[dict]:
    out: list[dict] = []

    def rec(name: str, kind: str, body, error: str | None) -> None:
        c = {"name": name, "kind": kind, "body": body, "valid": error is None}
        if error is not None:
            c["error"] = error
        out.append(c)

    def with_(kind: str, /, **changes) -> dict:  # positional: a charge has a field named kind
        body = dict(RECORD_BASES[kind])
        for k, v in changes.items():
            if v is _DROP:
                body.pop(k, None)
            else:
                body[k] = v
        return body

    for kind in RECORD_BASES:
        rec(f"{kind} as sent", kind, with_(kind), None)
        rec(f"{kind} as a list", kind, [with_(kind)], "not_object")
    for kind, field, lo, hi in RECORD_INTS:
        for value, error in ((lo, None), (hi, None), (lo - 1, "bad_field"), (hi + 1, "bad_field"),
                             (str(lo), "bad_field"), (True, "bad_field")):
            rec(f"{kind} {field} = {value!r}", kind, with_(kind, **{field: value}), error)
    for kind, field, hi in RECORD_TEXT:
        for n, error in ((1, None), (hi, None), (hi + 1, "bad_field")):
            rec(f"{kind} {field} of {n} characters", kind, with_(kind, **{field: "字" * n}), error)
        for text, what in (("a\nb", "a newline"), ("a\x7fb", "DEL"), ("a\ud800b", "a lone surrogate"),
                           ("a\x00b", "NUL")):
            rec(f"{kind} {field} with {what}", kind, with_(kind, **{field: text}), "bad_field")
    for kind, fields in RECORD_REQUIRED.items():
        for field in fields:
            rec(f"{kind} without {field}", kind, with_(kind, **{field: _DROP}), "bad_field")
    for kind, fields in RECORD_OPTIONAL.items():
        for field in fields:
            rec(f"{kind} without optional {field}", kind, with_(kind, **{field: _DROP}), None)
    for name, kind, changes, error in [
        ("parcel phone too short", "parcel", {"phone": "1234"}, "bad_field"),
        ("parcel phone of 20 digits with +", "parcel", {"phone": "+" + "1" * 20}, None),
        ("parcel phone of 21 digits", "parcel", {"phone": "1" * 21}, "bad_field"),
        ("parcel phone with a space", "parcel", {"phone": "138 0013 8000"}, "bad_field"),
        ("parcel phone null", "parcel", {"phone": None}, "bad_field"),
        ("parcel size XL", "parcel", {"size": "XL"}, "bad_field"),
        ("parcel locker upper case", "parcel", {"locker": "L1"}, "bad_field"),
        ("code of 5 digits", "code", {"code": "12345"}, "bad_field"),
        ("code of 7 digits", "code", {"code": "1234567"}, "bad_field"),
        ("code as a number", "code", {"code": 482913}, "bad_field"),
        ("gw_tele more online than total", "gw_tele", {"lockers_online": 3, "lockers_total": 2}, "bad_field"),
        ("gw_tele oldest_unsent_s null", "gw_tele", {"oldest_unsent_s": None}, None),
        ("gw_tele cpu_temp null", "gw_tele", {"cpu_temp": None}, None),
        ("gw_tele cpu_temp 200", "gw_tele", {"cpu_temp": 200}, None),
        ("gw_tele cpu_temp 200.5", "gw_tele", {"cpu_temp": 200.5}, "bad_field"),
        ("gw_tele cpu_temp -61", "gw_tele", {"cpu_temp": -61}, "bad_field"),
        ("gw_tele uplink sideways", "gw_tele", {"uplink": "sideways"}, "bad_field"),
        ("gw_tele 64 counters", "gw_tele", {"counters": {f"c{i}": i for i in range(64)}}, None),
        ("gw_tele 65 counters", "gw_tele", {"counters": {f"c{i}": i for i in range(65)}}, "bad_field"),
        ("gw_tele counter name of 40", "gw_tele", {"counters": {"c" * 40: 1}}, None),
        ("gw_tele counter name of 41", "gw_tele", {"counters": {"c" * 41: 1}}, "bad_field"),
        ("gw_tele counter name with a space", "gw_tele", {"counters": {"a b": 1}}, "bad_field"),
        ("gw_tele negative counter", "gw_tele", {"counters": {"a": -1}}, "bad_field"),
        ("gw_tele counters as a list", "gw_tele", {"counters": [1]}, "bad_field"),
        ("outbound fee without reason", "outbound", {"fee_reason": ""}, "bad_field"),
        ("outbound fee with null reason", "outbound", {"fee_reason": None}, "bad_field"),
        ("outbound no fee and no reason", "outbound", {"fee_cents": 0, "fee_reason": None}, None),
        ("outbound empty produce", "outbound", {"produce": ""}, None),
        ("outbound null produce", "outbound", {"produce": None}, None),
        ("outbound sender_phone text", "outbound", {"sender_phone": "call me"}, "bad_field"),
        ("outbound with real name and inspection", "outbound", {"sender_id_tail": "002X", "inspected": True,
                                                                "by": "agent-li"}, None),
        ("outbound id tail of digits", "outbound", {"sender_id_tail": "0014"}, None),
        ("outbound id tail of 5", "outbound", {"sender_id_tail": "10014"}, "bad_field"),
        ("outbound id tail with X first", "outbound", {"sender_id_tail": "X014"}, "bad_field"),
        ("outbound id tail lower x", "outbound", {"sender_id_tail": "001x"}, "bad_field"),
        ("outbound full id number", "outbound", {"sender_id_tail": "11010519491231002X"}, "bad_field"),
        ("outbound inspected as text", "outbound", {"inspected": "yes"}, "bad_field"),
        ("collected by a bad courier id", "collected", {"by": "courier ems"}, "bad_field"),
        ("charge kind tea", "charge", {"kind": "tea"}, "bad_field"),
        ("charge kind remote_surcharge", "charge", {"kind": "remote_surcharge"}, None),
        ("charge of 0 cents", "charge", {"cents": 0}, "bad_field"),
        ("charge empty phone", "charge", {"phone": ""}, None),
        ("charge bad phone", "charge", {"phone": "123"}, "bad_field"),
        ("handover by a bad agent id", "handover", {"by": "agent li"}, "bad_field"),
        ("handover how courier", "handover", {"how": "courier"}, "bad_field"),
        ("fault_report without compartment", "fault_report", {"c": None}, None),
        ("fault_report empty phone", "fault_report", {"phone": ""}, None),
        ("fault_report null phone", "fault_report", {"phone": None}, None),
        ("fault_report bad phone", "fault_report", {"phone": "123"}, "bad_field"),
        ("fault_report empty text", "fault_report", {"text": ""}, "bad_field"),
        ("parcel body of 2048 bytes", "parcel", {"pad": "x" * (2048 - 115)}, None),
        ("parcel body of 2049 bytes", "parcel", {"pad": "x" * (2049 - 115)}, "too_large"),
    ]:
        rec(name, kind, with_(kind, **changes), error)
    return out


if __name__ == "__main__":
    records = record_cases()
    sizes = {c["name"]: len(json.dumps(c["body"], separators=(",", ":"), ensure_ascii=False).encode())
             for c in records if "bytes" in c["name"]}
    assert sizes == {"parcel body of 2048 bytes": 2048, "parcel body of 2049 bytes": 2049}, sizes
    OUT.with_name("records.json").write_text(json.dumps(
        {"doc": "docs/protocol.md section 5.1, station records; written by make_wire.py", "cases": records},
        indent=1) + "\n")  # escaped: some cases hold lone surrogates, which UTF-8 cannot
    field_cases()
    size_cases()
    text_cases()
    depth_cases()
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    OUT.write_text(json.dumps({"doc": "docs/protocol.md sections 2, 3 and 3.8; written by make_wire.py",
                               "cases": cases}, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cases)} cases in {OUT}")
