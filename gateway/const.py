"""Constants of protocol v1 as the gateway uses them; the wire's own come from the wire core (jc.const)."""

from jc import const as K
from jc import records as R

PREFIX = K.PREFIX
VERSION = K.V

# the wire core's identifier forms as patterns, for pydantic fields and the few regex users
ID_RE = rf"^[a-z0-9-]{{1,{K.ID_MAX}}}$"
BOOT_RE = r"^[0-9a-f]{8}$"
CMD_ID_RE = rf"^[A-Za-z0-9_-]{{1,{K.CMD_ID_MAX}}}$"
REF_RE = rf"^[A-Za-z0-9_-]{{1,{K.REF_MAX}}}$"
HASH_RE = r"^[0-9a-f]{64}$"

SEQ_MAX = K.SEQ_MAX
COMP_MIN, COMP_MAX = K.COMP_MIN, K.COMP_MAX

# topic kinds, by direction
UP_KINDS = K.UP_KINDS
DOWN_KINDS = K.DOWN_KINDS
KINDS = K.KINDS
# the only kind a locker publishes retained (online, and its last will); a retained message of any other
# kind is ignored: it would replay whatever a board once left at the broker after every gateway restart
RETAINED_SUFFIX = "/status"

LIMITS = K.MAX_BYTES

SIZES = K.SIZES
COMP_STATES = K.STATES
STATUS_STATES = (K.STATUS_ONLINE, K.STATUS_LOST)

EVT_TYPES = K.EVT_TYPES
LOCK_WHY = K.LOCK_WHY
ALARM_KINDS = K.ALARM_KINDS

CMD_OPS = K.OPS
ACK_ERRORS = (K.ERR_BAD_REQUEST, K.ERR_UNKNOWN_OP, K.ERR_NO_SUCH_COMP, K.ERR_BUSY, K.ERR_FULL, K.ERR_BAD_MAC,
              K.ERR_NO_SPACE)

# firmware update (§3.7)
FW_VER_RE = r"^[A-Za-z0-9_.-]{1,24}$"
FW_MANIFEST = K.FW_MANIFEST
FW_CHUNK_MAX = K.FW_CHUNK_MAX
FW_FILES_MAX = K.FW_FILES_MAX
FW_MSIZE_MAX = K.FW_MSIZE_MAX
FW_FILE_MAX = K.FW_FILE_MAX
FW_RESULTS = K.FW_RESULTS
# a locker's last word on one update: everything but `staged`
FW_FINAL = ("ok", "rolled_back", "bad_mac", "bad_hash", "no_space", "timeout")
COURIER_MSG_PREFIX = K.PIN_MSG_PREFIX

# protocol error categories (tests/vectors)
E_TOO_LARGE = K.E_TOO_LARGE
E_NOT_JSON = K.E_NOT_JSON
E_NOT_OBJECT = K.E_NOT_OBJECT
E_BAD_VERSION = K.E_BAD_VERSION
E_BAD_FIELD = K.E_BAD_FIELD
E_BAD_TOPIC = K.E_BAD_TOPIC

CODE_DIGITS = K.CODE_LEN
CODE_MSG_PREFIX = K.CODE_MSG_PREFIX

# gateway <-> cloud (§5)
SRC_GATEWAY = "gw"
INGEST_PATH = "/api/v1/gateway/ingest"
INGEST_MAX_ITEMS = 500
INGEST_MAX_BYTES = 1024 * 1024
RESULT_DONE = ("applied", "duplicate", "rejected")
KIND_PARCEL, KIND_CODE, KIND_GW_TELE = "parcel", "code", "gw_tele"
KIND_OUTBOUND, KIND_HANDOVER, KIND_FAULT_REPORT = "outbound", "handover", "fault_report"
KIND_COLLECTED, KIND_CHARGE = "collected", "charge"
GW_KINDS = (KIND_PARCEL, KIND_CODE, KIND_GW_TELE, KIND_OUTBOUND, KIND_HANDOVER, KIND_FAULT_REPORT, KIND_COLLECTED,
            KIND_CHARGE)
LOCKER_KINDS = ("evt", "birth", "status", "tele")

# cloud -> gateway downlink (§5.2, §5.3)
COMMANDS_PATH = "/api/v1/gateway/commands"
COMMAND_ACK_PATH = "/api/v1/gateway/commands/{id}/ack"
DOWNLINK_WAIT_MAX_S = 30
DOWNLINK_OPS = R.DOWNLINK_OPS
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
