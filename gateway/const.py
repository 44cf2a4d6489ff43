"""Wire constants of protocol v1 as the gateway sees them (mirror of docs/protocol.md)."""

PREFIX = "jc/v1"
VERSION = 1

ID_RE = r"^[a-z0-9-]{1,32}$"
BOOT_RE = r"^[0-9a-f]{8}$"
CMD_ID_RE = r"^[A-Za-z0-9_-]{1,24}$"
REF_RE = r"^[A-Za-z0-9_-]{1,40}$"
HASH_RE = r"^[0-9a-f]{64}$"

SEQ_MAX = 2**31 - 1
COMP_MIN, COMP_MAX = 1, 32

# topic kinds, by direction
UP_KINDS = ("birth", "status", "evt", "tele", "ack", "fwreq")
DOWN_KINDS = ("cmd", "eack")
# the only kind a locker publishes retained (online, and its last will); a retained message of any other
# kind is ignored: it would replay whatever a board once left at the broker after every gateway restart
RETAINED_SUFFIX = "/status"
KINDS = UP_KINDS + DOWN_KINDS

LIMITS = {
    "birth": 4096,
    "evt": 512,
    "ack": 512,
    "status": 512,
    "tele": 1024,
    "cmd": 1024,
    "eack": 1024,
    "fwreq": 512,
}

SIZES = ("S", "M", "L")
COMP_STATES = ("empty", "deposit", "occupied", "pickup", "disabled", "fault")
STATUS_STATES = ("online", "lost")

EVT_TYPES = (
    "door", "lock", "deposit", "deposit_void", "pickup",
    "code_ok", "code_bad", "lockout", "alarm", "state", "courier", "fw",
)
LOCK_WHY = ("deposit", "pickup", "remote", "courier")
ALARM_KINDS = ("door_ajar", "forced_open", "lock_jam", "occupancy_mismatch", "sensor_fault", "lockout")

CMD_OPS = ("deposit", "code_put", "code_del", "open", "disable", "enable", "time", "rebirth",
           "courier_put", "fw_offer", "fw_chunk", "fw_abort")
ACK_ERRORS = ("bad_request", "unknown_op", "no_such_compartment", "busy", "full", "bad_mac", "no_space")

# firmware update (§3.7)
FW_VER_RE = r"^[A-Za-z0-9_.-]{1,24}$"
FW_PATH_RE = r"^[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,63}$"
FW_MANIFEST = "@manifest"
FW_CHUNK_MAX = 512
FW_FILES_MAX = 40
FW_MSIZE_MAX = 1 << 16
FW_FILE_MAX = 1 << 24
FW_RESULTS = ("staged", "ok", "rolled_back", "bad_mac", "bad_hash", "no_space", "timeout")
# a locker's last word on one update: everything but `staged`
FW_FINAL = ("ok", "rolled_back", "bad_mac", "bad_hash", "no_space", "timeout")
COURIER_MSG_PREFIX = b"courier:"

# protocol error categories (tests/vectors)
E_TOO_LARGE = "too_large"
E_NOT_JSON = "not_json"
E_NOT_OBJECT = "not_object"
E_BAD_VERSION = "bad_version"
E_BAD_FIELD = "bad_field"
E_BAD_TOPIC = "bad_topic"

CODE_DIGITS = 6
CODE_MSG_PREFIX = b"pickup:"

# gateway <-> cloud (§5)
SRC_GATEWAY = "gw"
INGEST_PATH = "/api/v1/gateway/ingest"
INGEST_MAX_ITEMS = 500
INGEST_MAX_BYTES = 1024 * 1024
RESULT_DONE = ("applied", "duplicate", "rejected")
KIND_PARCEL, KIND_CODE, KIND_GW_TELE = "parcel", "code", "gw_tele"
KIND_OUTBOUND, KIND_HANDOVER, KIND_FAULT_REPORT = "outbound", "handover", "fault_report"
GW_KINDS = (KIND_PARCEL, KIND_CODE, KIND_GW_TELE, KIND_OUTBOUND, KIND_HANDOVER, KIND_FAULT_REPORT)
LOCKER_KINDS = ("evt", "birth", "status", "tele")

# cloud -> gateway downlink (§5.2, §5.3)
COMMANDS_PATH = "/api/v1/gateway/commands"
COMMAND_ACK_PATH = "/api/v1/gateway/commands/{id}/ack"
DOWNLINK_WAIT_MAX_S = 30
DOWNLINK_OPS = ("open", "disable", "enable", "code_sync", "rebirth", "fw_rollout", "config")
DOWNLINK_ERRORS = ("expired", "rate_limited", "unknown_locker", "busy", "offline", "bad_command")
REMOTE_OPEN_PER_MIN = 3
REMOTE_OPEN_PER_DAY = 20
REMOTE_OPEN_PER_OPERATOR_DAY = 10
REMOTE_OPEN_PER_LOCKER_HOUR = 2
# settings a `config` command may change, with their bounds (nothing that weakens a limit above)
REMOTE_SETTABLE = {
    "gateway.tele_s": (10.0, 3600.0),
    "gateway.time_s": (60.0, 86400.0),
    "cloud.catchup_per_s": (10.0, 100000.0),
    "cloud.remote_open_per_min": (0, REMOTE_OPEN_PER_MIN),
    "cloud.remote_open_per_day": (0, REMOTE_OPEN_PER_DAY),
    "terminal.assist_phones": None,
}
