"""The wire core of protocol v1: topics, the field table, text rules and payload validation (docs/protocol.md).

One implementation, in the MicroPython subset: the firmware runs it on the device, and the gateway and the
cloud import this same module. Their faster paths are tested to give exactly its verdicts.

Checks run in this order, and the first that fails names the error: too_large (byte size), not_json (strict
UTF-8 and RFC 8259 JSON, at most MAX_DEPTH nested containers), not_object, bad_version, bad_field (the text
rule, then the field table).
"""

from jc import const as K
from jc.errors import JcError

_HEX = "0123456789abcdef"
_ID_CH = "abcdefghijklmnopqrstuvwxyz0123456789-"
_TOKEN_CH = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_PATH_CH = _TOKEN_CH + "./"

# string forms: allowed characters, shortest, longest
FORMS = {
    "id": (_ID_CH, 1, K.ID_MAX),
    "boot": (_HEX, 8, 8),
    "cmd_id": (_TOKEN_CH, 1, K.CMD_ID_MAX),
    "ref": (_TOKEN_CH, 1, K.REF_MAX),
    "hash": (_HEX, 64, 64),
    "ver": (_TOKEN_CH + ".", 1, 24),
    "path": (_PATH_CH, 1, K.FW_PATH_MAX),
}


class ProtoError(JcError):
    """A payload or topic broke the contract; .code is the error category."""

    def __init__(self, code, detail=""):
        super().__init__(code)
        self.code = code
        self.detail = detail


# ---- the field table (docs/protocol.md §3.8 carries the same table) ----
# A field is (name, type, required, a, b). required: True, False, or the name of a field whose absence makes
# this one required. Types: int a..b; num (integer or finite float) a..b; bool; enum (a = choices); str (a =
# form); text (any string, a..b characters); comps (a..b compartment numbers); objs (a..b objects checked
# with table `sub`; key fields unique among them); key (int a..b, unique within its list); file (a path or
# the manifest name).
R, O = True, False
_STAMP = (("boot", "str", R, "boot"), ("ts", "int", R, 0, K.TS_MAX), ("mono", "int", R, 0, K.MONO_MAX))
_C = ("c", "int", R, K.COMP_MIN, K.COMP_MAX)
_REF = ("ref", "str", R, "ref")
_H = ("h", "str", R, "hash")
_VER = ("ver", "str", R, "ver")
_EXP = ("exp", "int", R, 1, K.SEQ_MAX)
_CS = ("cs", "comps", R, 1, K.COMP_MAX)

FIELDS = {
    "evt": _STAMP + (("seq", "int", R, 1, K.SEQ_MAX), ("type", "enum", R, K.EVT_TYPES)),
    "evt.door": (_C, ("open", "bool", R)),
    "evt.lock": (_C, ("why", "enum", R, K.LOCK_WHY)),
    "evt.deposit": (_C, _REF),
    "evt.deposit_void": (_C, _REF),
    "evt.pickup": (_C, _REF),
    "evt.code_ok": (_CS,),
    "evt.code_bad": (("fails", "int", R, 0, K.SEQ_MAX),),
    "evt.lockout": (("secs", "int", R, 0, K.SEQ_MAX), ("count", "int", R, 0, K.SEQ_MAX)),
    "evt.alarm": (("kind", "enum", R, K.ALARM_KINDS), ("c", "int", O, K.COMP_MIN, K.COMP_MAX),
                  ("occ", "bool", O)),
    "evt.state": (_C, ("st", "enum", R, K.STATES)),
    "evt.fw": (_VER, ("result", "enum", R, K.FW_RESULTS)),
    "evt.courier": (_CS,),
    "birth": _STAMP + (("fw", "str", R, "ver"), ("seq", "int", R, 0, K.SEQ_MAX),
                       ("comps", "objs", R, 1, K.COMP_MAX, "birth.comp"), ("outbox", "int", O, 0, K.SEQ_MAX),
                       ("vault", "int", O, 0, K.SEQ_MAX), ("safe", "bool", O)),
    "birth.comp": (("n", "key", R, K.COMP_MIN, K.COMP_MAX), ("size", "enum", R, K.SIZES),
                   ("st", "enum", R, K.STATES), ("door", "enum", R, K.DOORS), ("occ", "bool", R),
                   ("ref", "str", O, "ref"), ("mm", "bool", O)),
    "status": (("state", "enum", R, (K.STATUS_ONLINE, K.STATUS_LOST)),),
    "status.online": (("boot", "str", R, "boot"),),
    "status.lost": (("boot", "str", O, "boot"),),
    "tele": _STAMP + (("up", "int", O, 0, K.COUNT_MAX), ("heap", "int", O, 0, K.COUNT_MAX),
                      ("heap_max", "int", O, 0, K.COUNT_MAX), ("rssi", "int", O, -200, 50),
                      ("vin", "num", O, -1000, 1000), ("temp", "num", O, -1000, 1000),
                      ("reset", "text", O, 0, K.TEXT_MAX), ("outbox", "int", O, 0, K.COUNT_MAX),
                      ("drops", "int", O, 0, K.COUNT_MAX), ("errs", "int", O, 0, K.COUNT_MAX),
                      ("fw", "str", O, "ver"), ("safe", "bool", O)),
    "ack": (("id", "str", R, "cmd_id"), ("ok", "bool", R), ("err", "text", O, 0, K.TEXT_MAX)),
    "cmd": (("id", "str", R, "cmd_id"), ("op", "enum", R, K.OPS)),
    "cmd.deposit": (_C, _REF),
    "cmd.adopt": (_C, _REF),
    "cmd.code_put": (_H, _CS, _EXP),
    "cmd.code_del": (_H,),
    "cmd.open": (_C, ("by", "text", R, 1, 64), ("why", "text", R, 0, 200)),
    "cmd.disable": (_C,),
    "cmd.enable": (_C,),
    "cmd.time": (("ts", "int", R, 0, K.TS_MAX),),
    "cmd.rebirth": (),
    "cmd.courier_put": (_H, ("deps", "objs", R, 1, K.COMP_MAX, "cmd.dep"), _EXP),
    "cmd.dep": (_C, _REF),
    "cmd.fw_offer": (_VER, ("mac", "str", R, "hash"), ("files", "objs", O, 1, K.FW_FILES_MAX, "cmd.fw_file"),
                     ("msize", "int", "files", 1, K.FW_MSIZE_MAX)),
    "cmd.fw_file": (("path", "file", R, 0), ("size", "int", R, 0, K.FW_FILE_MAX), ("sha256", "str", R, "hash")),
    "cmd.fw_chunk": (_VER, ("file", "file", R, 1), ("off", "int", R, 0, K.FW_FILE_MAX),
                     ("data", "text", R, 0, (K.FW_CHUNK_MAX + 2) // 3 * 4)),
    "cmd.fw_abort": (_VER,),
    "eack": (("boot", "str", R, "boot"), ("seq", "int", R, 1, K.SEQ_MAX)),
    "fwreq": (_VER, ("file", "file", R, 1), ("off", "int", R, 0, K.FW_FILE_MAX),
              ("len", "int", R, 1, K.FW_CHUNK_MAX)),
}
# the field whose value picks a kind's second table ("evt" + "." + type)
SWITCH = {"evt": "type", "cmd": "op", "status": "state"}


# ---- identifiers ----

def is_form(s, form):
    """Whether s is a string of the named form (FORMS)."""
    allowed, lo, hi = FORMS[form]
    if type(s) is not str or not (lo <= len(s) <= hi):
        return False
    for ch in s:
        if ch not in allowed:
            return False
    return True


def is_ident(s):
    """Station or locker id: [a-z0-9-]{1,32}."""
    return is_form(s, "id")


def is_fw_path(s):
    """A relative app-file path: no leading slash, no '..' or '//', only [A-Za-z0-9_./-]."""
    return is_form(s, "path") and s[0] != "/" and ".." not in s and "//" not in s


def is_comp(x):
    return type(x) is int and K.COMP_MIN <= x <= K.COMP_MAX


def topic(station, locker, kind):
    """Build jc/v1/{station}/{locker}/{kind}."""
    return K.PREFIX + "/" + station + "/" + locker + "/" + kind


def parse_topic(t):
    """Return (station, locker, kind) or raise ProtoError('bad_topic')."""
    if isinstance(t, (bytes, bytearray)):
        if not utf8_ok(t):
            raise ProtoError(K.E_BAD_TOPIC, "not utf-8")
        t = bytes(t).decode()
    parts = t.split("/")
    if len(parts) != 5 or parts[0] + "/" + parts[1] != K.PREFIX:
        raise ProtoError(K.E_BAD_TOPIC, t)
    st, lk, kind = parts[2], parts[3], parts[4]
    if not is_ident(st) or not is_ident(lk) or kind not in K.KINDS:
        raise ProtoError(K.E_BAD_TOPIC, t)
    return st, lk, kind


# ---- text: strict UTF-8 and strict JSON ----

def utf8_ok(b):
    """Strict UTF-8: no over-long forms, no encoded surrogates, nothing above U+10FFFF."""
    n = len(b)
    if n == 0 or max(b) < 0x80:
        return True
    i = 0
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        lo, hi = 0x80, 0xBF
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif 0xE0 <= c <= 0xEF:
            k = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            k = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return False
        if i + k >= n or not lo <= b[i + 1] <= hi:
            return False
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= b[j] <= 0xBF:
                return False
        i += k + 1
    return True


def text_ok(s):
    """The text rule for one string: no U+0000 and no surrogate code point."""
    if "\x00" in s:
        return False
    for ch in s:
        if 0xD800 <= ord(ch) <= 0xDFFF:
            return False
    return True


def _nj(detail=""):
    return ProtoError(K.E_NOT_JSON, detail)


_ESC = {0x22: '"', 0x5C: "\\", 0x2F: "/", 0x62: "\b", 0x66: "\f", 0x6E: "\n", 0x72: "\r", 0x74: "\t"}
_HEX_B = b"0123456789abcdefABCDEF"


class _Parser:
    """RFC 8259 JSON over bytes already known to be UTF-8; notes strings that break the text rule."""

    def __init__(self, b):
        self.b = b
        self.n = len(b)
        self.bad_text = False
        # no byte below 0x20 anywhere (the usual compact payload): a string needs no byte-by-byte scan
        self.plain = self.n > 0 and min(b) >= 0x20

    def ws(self, i):
        b, n = self.b, self.n
        while i < n and b[i] in (0x20, 0x09, 0x0A, 0x0D):
            i += 1
        return i

    def value(self, i, depth):
        b = self.b
        i = self.ws(i)
        if i >= self.n:
            raise _nj("ends early")
        c = b[i]
        if c == 0x7B or c == 0x5B:
            if depth >= K.MAX_DEPTH:
                raise _nj("nested too deep")
            return self.container(i, depth + 1, c == 0x7B)
        if c == 0x22:
            return self.string(i)
        for word, val in ((b"true", True), (b"false", False), (b"null", None)):
            if b[i:i + len(word)] == word:
                return val, i + len(word)
        return self.number(i)

    def container(self, i, depth, obj):
        b = self.b
        out = {} if obj else []
        close = 0x7D if obj else 0x5D
        i = self.ws(i + 1)
        if i < self.n and b[i] == close:
            return out, i + 1
        while True:
            if obj:
                if i >= self.n or b[i] != 0x22:
                    raise _nj("key")
                k, i = self.string(i)
                i = self.ws(i)
                if i >= self.n or b[i] != 0x3A:
                    raise _nj("colon")
                v, i = self.value(i + 1, depth)
                out[k] = v
            else:
                v, i = self.value(i, depth)
                out.append(v)
            i = self.ws(i)
            if i >= self.n:
                raise _nj("ends early")
            if b[i] == close:
                return out, i + 1
            if b[i] != 0x2C:
                raise _nj("comma")
            i = self.ws(i + 1)

    def hex4(self, i):
        h = self.b[i:i + 4]
        if len(h) != 4:
            raise _nj("escape")
        for c in h:
            if c not in _HEX_B:
                raise _nj("escape")
        return int(h.decode(), 16)

    def string(self, i):
        b, n = self.b, self.n
        i += 1
        if self.plain:
            q = b.find(b'"', i)
            if q >= 0 and b.find(b"\\", i, q) < 0:
                return str(b[i:q], "utf-8"), q + 1
        start = i
        parts = []
        while True:
            if i >= n:
                raise _nj("string ends early")
            c = b[i]
            if c == 0x22:
                break
            if c < 0x20:
                raise _nj("control character")
            if c != 0x5C:
                i += 1
                continue
            parts.append(str(b[start:i], "utf-8"))
            if i + 1 >= n:
                raise _nj("escape")
            e = b[i + 1]
            if e == 0x75:
                cp = self.hex4(i + 2)
                i += 6
                if 0xD800 <= cp <= 0xDBFF and b[i:i + 2] == b"\\u":
                    lo = self.hex4(i + 2)
                    if 0xDC00 <= lo <= 0xDFFF:
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                        i += 6
                if cp == 0 or 0xD800 <= cp <= 0xDFFF:
                    self.bad_text = True
                parts.append(chr(cp))
            elif e in _ESC:
                parts.append(_ESC[e])
                i += 2
            else:
                raise _nj("escape")
            start = i
        s = str(b[start:i], "utf-8")
        if parts:
            parts.append(s)
            s = "".join(parts)
        return s, i + 1

    def number(self, i):
        b, n = self.b, self.n
        start = i
        if b[i] == 0x2D:
            i += 1
        i2 = self.digits(i)
        if i2 == i or (b[i] == 0x30 and i2 > i + 1):
            raise _nj("number")
        i = i2
        flt = False
        if i < n and b[i] == 0x2E:
            i2 = self.digits(i + 1)
            if i2 == i + 1:
                raise _nj("number")
            i, flt = i2, True
        if i < n and b[i] in (0x65, 0x45):
            i += 1
            if i < n and b[i] in (0x2B, 0x2D):
                i += 1
            i2 = self.digits(i)
            if i2 == i:
                raise _nj("number")
            i, flt = i2, True
        t = str(b[start:i], "utf-8")
        return (float(t) if flt else int(t)), i

    def digits(self, i):
        b, n = self.b, self.n
        while i < n and 0x30 <= b[i] <= 0x39:
            i += 1
        return i


_DIGIT_TO_0 = []


def _long_number(b):
    """Whether b holds 19 digits in a row: a number a 64-bit reader may turn into a float (CPython only)."""
    if not _DIGIT_TO_0:
        _DIGIT_TO_0.append(bytes(48 if 48 <= i <= 57 else i for i in range(256)))
    return b"0" * 19 in b.translate(_DIGIT_TO_0[0])


def parse(data, fast=None):
    """Decode payload bytes as strict JSON; return (value, bad_text) or raise ProtoError('not_json').

    `fast` (CPython's orjson.loads) may read the common payload first. It must refuse, with a ValueError,
    what this parser refuses: bad UTF-8, lone surrogates, anything not RFC 8259 JSON. What it reads is taken
    only without a U+0000 escape, with no more brackets than MAX_DEPTH and without 19 digits in a row, so
    that nothing it parsed can break the text rule or the depth limit, not even in a value a duplicate key
    replaced, and no integer beyond 64 bits comes back as a float.
    """
    b = bytes(data)
    if fast is not None and not _long_number(b):
        try:
            v = fast(b)
        except ValueError:
            pass
        else:
            if b"\\u0000" not in b and b.count(b"[") + b.count(b"{") <= K.MAX_DEPTH:
                return v, False
    if not utf8_ok(b):
        raise _nj("not utf-8")
    p = _Parser(b)
    try:
        v, i = p.value(0, 0)
    except (ValueError, IndexError):
        raise _nj()
    if p.ws(i) != p.n:
        raise _nj("extra data")
    return v, p.bad_text


def scan(x, depth=0):
    """For a value parsed elsewhere: 1 if nested deeper than MAX_DEPTH, 2 if a string breaks the text rule."""
    t = type(x)
    if t is str:
        return 0 if text_ok(x) else 2
    if t is not dict and t is not list:
        return 0
    if depth >= K.MAX_DEPTH:
        return 1
    out = 0
    if t is dict:
        for k in x:
            if not text_ok(k):
                out = 2
            r = scan(x[k], depth + 1)
            if r == 1:
                return 1
            out |= r
    else:
        for v in x:
            r = scan(v, depth + 1)
            if r == 1:
                return 1
            out |= r
    return out


# ---- the field checks ----

def _bad(what):
    return ProtoError(K.E_BAD_FIELD, what)


def _ok(x, f):
    t = f[1]
    if t == "int" or t == "key":
        return type(x) is int and f[3] <= x <= f[4]
    if t == "str":
        return is_form(x, f[3])
    if t == "enum":
        return type(x) is str and x in f[3]
    if t == "bool":
        return type(x) is bool
    if t == "num":
        return (type(x) is int or type(x) is float) and f[3] <= x <= f[4]
    if t == "text":
        return type(x) is str and f[3] <= len(x) <= f[4]
    if t == "file":
        return (f[3] and x == K.FW_MANIFEST) or is_fw_path(x)
    if t == "comps":
        if type(x) is not list or not f[3] <= len(x) <= f[4]:
            return False
        for c in x:
            if not is_comp(c):
                return False
        return True
    # objs
    if type(x) is not list or not f[3] <= len(x) <= f[4]:
        return False
    seen = []
    for o in x:
        if type(o) is not dict:
            return False
        check_table(o, f[5])
        for g in FIELDS[f[5]]:
            if g[1] == "key":
                if o[g[0]] in seen:
                    raise _bad(f[0] + ": " + g[0] + " twice")
                seen.append(o[g[0]])
    return True


def _why(x, f):
    """Why field f refused value x, for people."""
    t, k = f[1], f[0]
    if t == "int" or t == "key":
        return k + " must be an integer " + str(f[3]) + ".." + str(f[4])
    if t == "num":
        if type(x) is int or type(x) is float:
            return k + " must be " + str(f[3]) + ".." + str(f[4])
        return k + " must be a number"
    if t == "bool":
        return k + " must be true or false"
    if t == "enum":
        return k + " must be one of " + ", ".join(f[3])
    if t == "text":
        return k + " must be text of " + str(f[3]) + ".." + str(f[4]) + " characters"
    if t == "comps":
        return k + " must be a list of " + str(f[3]) + ".." + str(f[4]) + " compartment numbers"
    if t == "objs":
        return k + " must be a list of " + str(f[3]) + ".." + str(f[4]) + " objects"
    return k + " has a bad format (" + ("path" if t == "file" else f[3]) + ")"


def check_table(o, name):
    """Check the fields of table `name` (and of the second table its switch field picks) in object o."""
    for f in FIELDS[name]:
        k = f[0]
        if k in o:
            if not _ok(o[k], f):
                raise _bad(_why(o[k], f))
        elif f[2] is True or (f[2] is not False and f[2] not in o):
            raise _bad(k + " is missing")
    sw = SWITCH.get(name)
    if sw is not None:
        check_table(o, name + "." + o[sw])


def judge(kind, obj, bad_text=False):
    """The checks after parsing, in order: not_object, bad_version, bad_field; return obj."""
    if type(obj) is not dict:
        raise ProtoError(K.E_NOT_OBJECT, "payload must be a JSON object")
    v = obj.get("v")
    if type(v) is not int or v != K.V:
        raise ProtoError(K.E_BAD_VERSION, 'payload must carry "v":1')
    if bad_text:
        raise _bad("text holds U+0000 or a lone surrogate")
    check_table(obj, kind)
    return obj


def judge_parsed(kind, obj):
    """judge() for a value another JSON parser made: depth and text rule from scan()."""
    r = scan(obj)
    if r == 1:
        raise _nj("nested too deep")
    return judge(kind, obj, r == 2)


def validate(kind, payload, fast=None):
    """Return the decoded object or raise ProtoError with the category from the contract (fast: see parse)."""
    if isinstance(payload, str):
        payload = payload.encode()
    if kind not in K.MAX_BYTES:
        raise ProtoError(K.E_BAD_TOPIC, kind)
    if len(payload) > K.MAX_BYTES[kind]:
        raise ProtoError(K.E_TOO_LARGE, str(len(payload)))
    obj, bad_text = parse(payload, fast)
    return judge(kind, obj, bad_text)


def check(kind, payload):
    """Return None if valid, else the error category."""
    try:
        validate(kind, payload)
    except ProtoError as e:
        return e.code
    return None
