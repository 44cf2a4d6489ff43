"""The device's side of the wire: payload encoders; topics and validation come from the wire core (jc.wire)."""

import json

from jc import const as K
from jc import wire
from jc.wire import (  # noqa: F401
    ProtoError,
    check,
    is_comp,
    is_fw_path,
    is_ident,
    parse_topic,
    topic,
    validate,
)

_SEP = (",", ":")


def dumps(obj):
    """Compact JSON text."""
    try:
        return json.dumps(obj, separators=_SEP)
    except TypeError:
        return json.dumps(obj)


def is_cmd_id(s):
    return wire.is_form(s, "cmd_id")


def is_hash(s):
    return wire.is_form(s, "hash")


# ---- encoders (locker side) ----

def enc_evt(boot, seq, ts, mono, etype, fields):
    """Event payload bytes; fields holds the type's own fields."""
    o = {"v": K.V, "boot": boot, "seq": seq, "ts": ts, "mono": mono, "type": etype}
    for k in fields:
        o[k] = fields[k]
    return dumps(o).encode()


def enc_birth(boot, seq, ts, mono, comps, outbox, vault, safe=False):
    o = {"v": K.V, "boot": boot, "fw": K.FW, "seq": seq, "ts": ts, "mono": mono,
         "comps": comps, "outbox": outbox, "vault": vault}
    if safe:
        o["safe"] = True
    return dumps(o).encode()


def enc_fwreq(ver, file, off, n):
    return dumps({"v": K.V, "ver": ver, "file": file, "off": off, "len": n}).encode()


def enc_status_online(boot):
    return dumps({"v": K.V, "state": K.STATUS_ONLINE, "boot": boot}).encode()


def enc_status_lost():
    return dumps({"v": K.V, "state": K.STATUS_LOST}).encode()


def enc_tele(boot, ts, mono, fields):
    o = {"v": K.V, "boot": boot, "ts": ts, "mono": mono, "fw": K.FW}
    for k in fields:
        o[k] = fields[k]
    return dumps(o).encode()


def enc_ack(cid, ok, err=None):
    o = {"v": K.V, "id": cid, "ok": ok}
    if err:
        o["err"] = err
    return dumps(o).encode()
