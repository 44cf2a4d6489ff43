"""The wire core's station records (docs/protocol.md §5.1): the gateway's own ingest items, one table.

The gateway checks every record it makes with this module before it stores it, and the cloud checks every
record it receives with it, so a record the station takes is never dead-lettered for a limit the two sides
wrote differently. The controller never imports it (it ships in the package only because the core does).
"""

from jc import const as K
from jc import wire
from jc.wire import ProtoError

MAX_BODY = 2048  # bytes of compact JSON
WAYBILL_MAX, CARRIER_MAX, SENDER_NAME_MAX, DEST_MAX, PRODUCE_MAX, FEE_REASON_MAX = 64, 32, 64, 120, 40, 64
FAULT_TEXT_MAX = 300
WEIGHT_G_MAX = 100000
FEE_CENTS_MAX = 10000000
LOCKERS_MAX = 10000
COUNTERS_MAX, COUNTER_NAME_MAX = 64, 40
PHONE_MIN, PHONE_MAX = 5, 20
UPLINK_STATES = ("up", "down")
HANDOVER_HOW = ("door_to_door", "return")
# why the gateway voids a parcel it recorded (a parcel record with `void`): a keypad booking nobody used in time
VOID_WHY = ("keypad_expired",)
# the commands the cloud queues for a station and the gateway carries out (docs/protocol.md §5.2)
DOWNLINK_OPS = ("open", "disable", "enable", "code_sync", "rebirth", "fw_rollout", "config", "assist", "return")
# what a fee or an extra charge is for; a recipient is never charged one of PICKUP_FREE (the pickup-fee ban)
FEE_KINDS = ("pickup", "delivery", "remote_surcharge", "storage", "postage", "other")
PICKUP_FREE = ("pickup",)
CHARGE_TEXT_MAX = 200
ID_TAIL = 4  # an outbound sender's ID number travels and is kept as its last 4 characters only
_AGENT_CH = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
_DIGITS = "0123456789"
_BIG = 1 << 53

# (name, type, required, a, b). Types beyond jc.wire's: free (printable text a..b characters, no control
# characters), opt_free (the same, or null or "" for none), phone, opt_phone (or null or ""), nnum (a number
# a..b or null), counters (an object of at most a counters, names of the ref form up to b characters, values
# 0..2^53), code (6 digits), agent ([A-Za-z0-9_.-]{1,32}), idtail (the last 4 characters of an ID number:
# digits, or X last).
R, O = True, False
RECORDS = {
    "parcel": (("ref", "str", R, "ref"), ("locker", "str", R, "id"), ("c", "int", R, K.COMP_MIN, K.COMP_MAX),
               ("waybill", "free", O, 1, WAYBILL_MAX), ("carrier", "free", O, 1, CARRIER_MAX),
               ("phone", "phone", O), ("size", "enum", O, K.SIZES), ("void", "enum", O, VOID_WHY)),
    "code": (("ref", "str", R, "ref"), ("phone", "phone", R), ("code", "code", R), ("locker", "str", O, "id"),
             ("exp_ts", "int", O, 0, _BIG)),
    "gw_tele": (("outbox_depth", "int", R, 0, _BIG), ("oldest_unsent_s", "nnum", R, 0, _BIG),
                ("uplink", "enum", R, UPLINK_STATES), ("lockers_online", "int", R, 0, LOCKERS_MAX),
                ("lockers_total", "int", R, 0, LOCKERS_MAX), ("cpu_temp", "nnum", R, -60, 200),
                ("up_s", "int", R, 0, _BIG), ("counters", "counters", O, COUNTERS_MAX, COUNTER_NAME_MAX)),
    "outbound": (("ref", "str", R, "ref"), ("carrier", "free", R, 1, CARRIER_MAX), ("sender_phone", "phone", R),
                 ("sender_name", "free", R, 1, SENDER_NAME_MAX), ("dest", "free", R, 1, DEST_MAX),
                 ("weight_g", "int", R, 1, WEIGHT_G_MAX), ("fee_cents", "int", R, 0, FEE_CENTS_MAX),
                 ("fee_reason", "opt_free", O, 1, FEE_REASON_MAX), ("produce", "opt_free", O, 1, PRODUCE_MAX),
                 ("sender_id_tail", "idtail", O), ("inspected", "bool", O), ("by", "agent", O)),
    "collected": (("ref", "str", R, "ref"), ("carrier", "free", R, 1, CARRIER_MAX), ("by", "agent", R),
                  ("waybill", "free", O, 1, WAYBILL_MAX), ("at", "int", R, 1, _BIG)),
    "charge": (("carrier", "free", R, 1, CARRIER_MAX), ("kind", "enum", R, FEE_KINDS),
               ("cents", "int", R, 1, FEE_CENTS_MAX), ("ref", "str", O, "ref"), ("waybill", "free", O, 1, WAYBILL_MAX),
               ("phone", "opt_phone", O), ("text", "opt_free", O, 1, CHARGE_TEXT_MAX), ("by", "agent", R),
               ("at", "int", R, 1, _BIG)),
    "handover": (("ref", "str", R, "ref"), ("by", "agent", R), ("at", "int", R, 1, _BIG),
                 ("how", "enum", R, HANDOVER_HOW)),
    "fault_report": (("locker", "str", R, "id"), ("c", "nint", O, K.COMP_MIN, K.COMP_MAX),
                     ("phone", "opt_phone", O), ("text", "free", R, 1, FAULT_TEXT_MAX), ("at", "int", R, 1, _BIG)),
}
KINDS = tuple(RECORDS)


def is_free(s, lo, hi):
    """Printable text: lo..hi characters, none below U+0020, no U+007F, no surrogate."""
    if type(s) is not str or not lo <= len(s) <= hi:
        return False
    for ch in s:
        o = ord(ch)
        if o < 0x20 or o == 0x7F or 0xD800 <= o <= 0xDFFF:
            return False
    return True


def is_phone(s):
    """A phone number: an optional +, then 5 to 20 digits."""
    if type(s) is not str:
        return False
    d = s[1:] if s[:1] == "+" else s
    if not PHONE_MIN <= len(d) <= PHONE_MAX:
        return False
    for ch in d:
        if ch not in _DIGITS:
            return False
    return True


def _ok(x, f):
    t = f[1]
    if t == "free":
        return is_free(x, f[3], f[4])
    if t == "opt_free":
        return x is None or x == "" or is_free(x, f[3], f[4])
    if t == "phone":
        return is_phone(x)
    if t == "opt_phone":
        return x is None or x == "" or is_phone(x)
    if t == "nnum":
        return x is None or ((type(x) is int or type(x) is float) and f[3] <= x <= f[4])
    if t == "nint":
        return x is None or (type(x) is int and f[3] <= x <= f[4])
    if t == "code":
        return type(x) is str and len(x) == K.CODE_LEN and _all_in(x, _DIGITS)
    if t == "agent":
        return type(x) is str and 1 <= len(x) <= 32 and _all_in(x, _AGENT_CH)
    if t == "idtail":
        return type(x) is str and len(x) == ID_TAIL and _all_in(x[:-1], _DIGITS) and _all_in(x[-1:], _DIGITS + "X")
    if t == "counters":
        if type(x) is not dict or len(x) > f[3]:
            return False
        for k in x:
            v = x[k]
            if len(k) > f[4] or not wire.is_form(k, "ref") or type(v) is not int or not 0 <= v <= _BIG:
                return False
        return True
    return wire._ok(x, f)


def _all_in(s, allowed):
    for ch in s:
        if ch not in allowed:
            return False
    return True


def _why(x, f):
    t, k = f[1], f[0]
    if t in ("free", "opt_free"):
        if type(x) is str and len(x) > f[4]:
            return k + " is longer than " + str(f[4]) + " characters"
        return k + " must be printable text of " + str(f[3]) + ".." + str(f[4]) + " characters"
    if t in ("phone", "opt_phone"):
        return k + " must be a phone number (+ and 5..20 digits)"
    if t in ("nnum", "nint"):
        return k + " must be a number " + str(f[3]) + ".." + str(f[4]) + " or null"
    if t == "code":
        return k + " must be 6 digits"
    if t == "agent":
        return k + " must be an agent id ([A-Za-z0-9_.-]{1,32})"
    if t == "idtail":
        return k + " must be the last 4 characters of an ID number (digits, X last)"
    if t == "counters":
        return k + " must be an object of at most " + str(f[3]) + " counters (ref names, integers 0..2^53)"
    return wire._why(x, f)


def check(kind, body):
    """Check a record body already parsed (its size is the caller's); raise ProtoError or return body."""
    if type(body) is not dict:
        raise ProtoError(K.E_NOT_OBJECT, kind + " body must be a JSON object")
    for f in RECORDS[kind]:
        k = f[0]
        if k in body:
            if not _ok(body[k], f):
                raise ProtoError(K.E_BAD_FIELD, _why(body[k], f))
        elif f[2]:
            raise ProtoError(K.E_BAD_FIELD, k + " is missing")
    if kind == "gw_tele" and body["lockers_online"] > body["lockers_total"]:
        raise ProtoError(K.E_BAD_FIELD, "lockers_online must not exceed lockers_total")
    if kind == "outbound" and body["fee_cents"] and not body.get("fee_reason"):
        raise ProtoError(K.E_BAD_FIELD, "fee_reason is required when fee_cents is not 0, so the fee can be audited")
    return body
