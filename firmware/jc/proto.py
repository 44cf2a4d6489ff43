"""Sans-IO wire codec: topic build/parse, payload validation and encoding (docs/protocol.md)."""

import json
from jc import const as K
from jc.errors import JcError

_SEP = (",", ":")
_HEX = "0123456789abcdef"
_ID_CH = "abcdefghijklmnopqrstuvwxyz0123456789-"
_TOKEN_CH = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


class ProtoError(JcError):
    """A payload or topic broke the contract; .code is the error category."""

    def __init__(self, code, detail=""):
        super().__init__(code)
        self.code = code
        self.detail = detail


def dumps(obj):
    """Compact JSON text."""
    try:
        return json.dumps(obj, separators=_SEP)
    except TypeError:
        return json.dumps(obj)


def _chars(s, allowed, lo, hi):
    if type(s) is not str or not (lo <= len(s) <= hi):
        return False
    for ch in s:
        if ch not in allowed:
            return False
    return True


def is_ident(s):
    """Station or locker id: [a-z0-9-]{1,32}."""
    return _chars(s, _ID_CH, 1, K.ID_MAX)


def is_boot(s):
    return _chars(s, _HEX, 8, 8)


def is_cmd_id(s):
    return _chars(s, _TOKEN_CH, 1, K.CMD_ID_MAX)


def is_ref(s):
    return _chars(s, _TOKEN_CH, 1, K.REF_MAX)


def is_hash(s):
    return _chars(s, _HEX, 64, 64)


_PATH_CH = _TOKEN_CH + "./"


def is_fw_path(s):
    """A relative app-file path: no leading slash, no '..', only [A-Za-z0-9_./-]."""
    if not _chars(s, _PATH_CH, 1, K.FW_PATH_MAX):
        return False
    return s[0] != "/" and ".." not in s and "//" not in s


def is_version(s):
    return _chars(s, _TOKEN_CH + ".", 1, 24)


def _is_int(x, lo, hi):
    return type(x) is int and lo <= x <= hi


def is_comp(x):
    return _is_int(x, K.COMP_MIN, K.COMP_MAX)


def topic(station, locker, kind):
    """Build jc/v1/{station}/{locker}/{kind}."""
    return K.PREFIX + "/" + station + "/" + locker + "/" + kind


def parse_topic(t):
    """Return (station, locker, kind) or raise ProtoError('bad_topic')."""
    if isinstance(t, (bytes, bytearray)):
        try:
            t = t.decode()
        except UnicodeError:
            raise ProtoError(K.E_BAD_TOPIC, "not utf-8")
    parts = t.split("/")
    if len(parts) != 5 or parts[0] + "/" + parts[1] != K.PREFIX:
        raise ProtoError(K.E_BAD_TOPIC, t)
    st, lk, kind = parts[2], parts[3], parts[4]
    if not is_ident(st) or not is_ident(lk) or kind not in K.KINDS:
        raise ProtoError(K.E_BAD_TOPIC, t)
    return st, lk, kind


def _need(cond, what):
    if not cond:
        raise ProtoError(K.E_BAD_FIELD, what)


def _check_comps_list(cs):
    _need(type(cs) is list and 1 <= len(cs) <= K.COMP_MAX, "cs")
    for c in cs:
        _need(is_comp(c), "cs")


def _check_stamp(o):
    _need(is_boot(o.get("boot")), "boot")
    _need(_is_int(o.get("ts"), 0, 1 << 40), "ts")
    _need(_is_int(o.get("mono"), 0, 1 << 53), "mono")


def _check_evt(o):
    _check_stamp(o)
    _need(_is_int(o.get("seq"), 1, K.SEQ_MAX), "seq")
    t = o.get("type")
    _need(t in K.EVT_TYPES, "type")
    if t == K.T_DOOR:
        _need(is_comp(o.get("c")), "c")
        _need(type(o.get("open")) is bool, "open")
    elif t == K.T_LOCK:
        _need(is_comp(o.get("c")), "c")
        _need(o.get("why") in K.LOCK_WHY, "why")
    elif t in (K.T_DEPOSIT, K.T_DEPOSIT_VOID, K.T_PICKUP):
        _need(is_comp(o.get("c")), "c")
        _need(is_ref(o.get("ref")), "ref")
    elif t == K.T_CODE_OK:
        _check_comps_list(o.get("cs"))
    elif t == K.T_CODE_BAD:
        _need(_is_int(o.get("fails"), 0, K.SEQ_MAX), "fails")
    elif t == K.T_LOCKOUT:
        _need(_is_int(o.get("secs"), 0, 1 << 31), "secs")
        _need(_is_int(o.get("count"), 0, 1 << 31), "count")
    elif t == K.T_ALARM:
        _need(o.get("kind") in K.ALARM_KINDS, "kind")
        _need("c" not in o or is_comp(o["c"]), "c")
    elif t == K.T_STATE:
        _need(is_comp(o.get("c")), "c")
        _need(o.get("st") in K.STATES, "st")
    elif t == K.T_FW:
        _need(is_version(o.get("ver")), "ver")
        _need(o.get("result") in K.FW_RESULTS, "result")
    elif t == K.T_COURIER:
        _check_comps_list(o.get("cs"))


def _check_birth(o):
    _check_stamp(o)
    _need(type(o.get("fw")) is str, "fw")
    _need(_is_int(o.get("seq"), 0, K.SEQ_MAX), "seq")
    comps = o.get("comps")
    _need(type(comps) is list and 1 <= len(comps) <= K.COMP_MAX, "comps")
    for c in comps:
        _need(type(c) is dict, "comps")
        _need(is_comp(c.get("n")), "n")
        _need(c.get("size") in K.SIZES, "size")
        _need(c.get("st") in K.STATES, "st")
        _need(c.get("door") in ("open", "closed"), "door")
        _need(type(c.get("occ")) is bool, "occ")
        _need("ref" not in c or is_ref(c["ref"]), "ref")
    _need(_is_int(o.get("outbox"), 0, K.SEQ_MAX), "outbox")
    _need(_is_int(o.get("vault"), 0, K.SEQ_MAX), "vault")


def _check_status(o):
    s = o.get("state")
    _need(s in (K.STATUS_ONLINE, K.STATUS_LOST), "state")
    if s == K.STATUS_ONLINE:
        _need(is_boot(o.get("boot")), "boot")


def _check_tele(o):
    _check_stamp(o)


def _check_ack(o):
    _need(is_cmd_id(o.get("id")), "id")
    _need(type(o.get("ok")) is bool, "ok")
    _need("err" not in o or type(o["err"]) is str, "err")


def _check_cmd(o):
    _need(is_cmd_id(o.get("id")), "id")
    op = o.get("op")
    _need(op in K.OPS, "op")
    if op == K.OP_DEPOSIT or op == K.OP_ADOPT:
        _need(is_comp(o.get("c")), "c")
        _need(is_ref(o.get("ref")), "ref")
    elif op == K.OP_CODE_PUT:
        _need(is_hash(o.get("h")), "h")
        _check_comps_list(o.get("cs"))
        _need(_is_int(o.get("exp"), 1, 1 << 31), "exp")
    elif op == K.OP_CODE_DEL:
        _need(is_hash(o.get("h")), "h")
    elif op == K.OP_OPEN:
        _need(is_comp(o.get("c")), "c")
        _need(type(o.get("by")) is str and 0 < len(o["by"]) <= 64, "by")
        _need(type(o.get("why")) is str and len(o["why"]) <= 200, "why")
    elif op in (K.OP_DISABLE, K.OP_ENABLE):
        _need(is_comp(o.get("c")), "c")
    elif op == K.OP_TIME:
        _need(_is_int(o.get("ts"), 0, 1 << 40), "ts")
    elif op == K.OP_COURIER_PUT:
        _need(is_hash(o.get("h")), "h")
        deps = o.get("deps")
        _need(type(deps) is list and 1 <= len(deps) <= K.COMP_MAX, "deps")
        for d in deps:
            _need(type(d) is dict and is_comp(d.get("c")) and is_ref(d.get("ref")), "deps")
        _need(_is_int(o.get("exp"), 1, 1 << 31), "exp")
    elif op == K.OP_FW_OFFER:
        _need(is_version(o.get("ver")), "ver")
        _need(is_hash(o.get("mac")), "mac")
        files = o.get("files")
        if files is None:
            _need(_is_int(o.get("msize"), 1, 1 << 16), "msize")
        else:
            _need(type(files) is list and 1 <= len(files) <= K.FW_FILES_MAX, "files")
            for f in files:
                _need(type(f) is dict and is_fw_path(f.get("path")), "files.path")
                _need(_is_int(f.get("size"), 0, 1 << 24), "files.size")
                _need(is_hash(f.get("sha256")), "files.sha256")
    elif op == K.OP_FW_CHUNK:
        _need(is_version(o.get("ver")), "ver")
        _need(o.get("file") == K.FW_MANIFEST or is_fw_path(o.get("file")), "file")
        _need(_is_int(o.get("off"), 0, 1 << 24), "off")
        _need(type(o.get("data")) is str and len(o["data"]) <= (K.FW_CHUNK_MAX + 2) // 3 * 4, "data")
    elif op == K.OP_FW_ABORT:
        _need(is_version(o.get("ver")), "ver")


def _check_fwreq(o):
    _need(is_version(o.get("ver")), "ver")
    _need(o.get("file") == K.FW_MANIFEST or is_fw_path(o.get("file")), "file")
    _need(_is_int(o.get("off"), 0, 1 << 24), "off")
    _need(_is_int(o.get("len"), 1, K.FW_CHUNK_MAX), "len")


def _check_eack(o):
    _need(is_boot(o.get("boot")), "boot")
    _need(_is_int(o.get("seq"), 1, K.SEQ_MAX), "seq")


_CHECKS = {
    K.EVT: _check_evt, K.BIRTH: _check_birth, K.STATUS: _check_status, K.TELE: _check_tele,
    K.ACK: _check_ack, K.CMD: _check_cmd, K.EACK: _check_eack, K.FWREQ: _check_fwreq,
}


def validate(kind, payload):
    """Return the decoded object or raise ProtoError with the category from the contract."""
    if isinstance(payload, str):
        payload = payload.encode()
    if len(payload) > K.MAX_BYTES[kind]:
        raise ProtoError(K.E_TOO_LARGE, str(len(payload)))
    try:
        text = bytes(payload).decode()
        obj = json.loads(text)
    except (ValueError, UnicodeError):
        # MicroPython raises ValueError for bad JSON, CPython a ValueError subclass
        raise ProtoError(K.E_NOT_JSON)
    if type(obj) is not dict:
        raise ProtoError(K.E_NOT_OBJECT)
    if obj.get("v") != K.V or type(obj.get("v")) is not int:
        raise ProtoError(K.E_BAD_VERSION)
    _CHECKS[kind](obj)
    return obj


def check(kind, payload):
    """Return None if valid, else the error category."""
    try:
        validate(kind, payload)
    except ProtoError as e:
        return e.code
    return None


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
