"""Wire constants: topics, payload fields, limits and versions (docs/protocol.md).

Part of the wire core with jc.wire: the firmware, the gateway and the cloud all import these names.
"""

FW = "0.1.0"
V = 1
PREFIX = "jc/v1"

# topic kinds
BIRTH = "birth"
STATUS = "status"
EVT = "evt"
TELE = "tele"
ACK = "ack"
CMD = "cmd"
EACK = "eack"
FWREQ = "fwreq"
KINDS = (BIRTH, STATUS, EVT, TELE, ACK, CMD, EACK, FWREQ)
UP_KINDS = (BIRTH, STATUS, EVT, TELE, ACK, FWREQ)
DOWN_KINDS = (CMD, EACK)

MAX_BYTES = {BIRTH: 4096, EVT: 512, ACK: 512, STATUS: 512, TELE: 1024, CMD: 1024, EACK: 1024, FWREQ: 512}
QOS = {BIRTH: 1, STATUS: 1, EVT: 1, TELE: 0, ACK: 1, FWREQ: 0}

# validation error categories, in the order they are checked
E_TOO_LARGE = "too_large"
E_NOT_JSON = "not_json"
E_NOT_OBJECT = "not_object"
E_BAD_VERSION = "bad_version"
E_BAD_FIELD = "bad_field"
E_BAD_TOPIC = "bad_topic"

ID_MAX = 32
CMD_ID_MAX = 24
REF_MAX = 40
COMP_MIN = 1
COMP_MAX = 32
SEQ_MAX = 2147483647
SIZES = ("S", "M", "L")
DOORS = ("open", "closed")
TS_MAX = 1 << 40  # wall-clock seconds
MONO_MAX = 1 << 53  # monotonic milliseconds since boot
COUNT_MAX = 1 << 53  # tele counters
FW_FILE_MAX = 1 << 24
FW_MSIZE_MAX = 1 << 16
TEXT_MAX = 64  # free text in a payload (ack err, tele reset)
# containers (objects and arrays) nested deeper than this are not JSON the protocol takes
MAX_DEPTH = 8

# compartment states
ST_EMPTY = "empty"
ST_DEPOSIT = "deposit"
ST_OCCUPIED = "occupied"
ST_PICKUP = "pickup"
ST_DISABLED = "disabled"
ST_FAULT = "fault"
STATES = (ST_EMPTY, ST_DEPOSIT, ST_OCCUPIED, ST_PICKUP, ST_DISABLED, ST_FAULT)

# event types
T_DOOR = "door"
T_LOCK = "lock"
T_DEPOSIT = "deposit"
T_DEPOSIT_VOID = "deposit_void"
T_PICKUP = "pickup"
T_CODE_OK = "code_ok"
T_CODE_BAD = "code_bad"
T_LOCKOUT = "lockout"
T_ALARM = "alarm"
T_STATE = "state"
T_FW = "fw"
T_COURIER = "courier"
EVT_TYPES = (T_DOOR, T_LOCK, T_DEPOSIT, T_DEPOSIT_VOID, T_PICKUP, T_CODE_OK, T_CODE_BAD,
             T_LOCKOUT, T_ALARM, T_STATE, T_FW, T_COURIER)
LOCK_WHY = ("deposit", "pickup", "remote", "courier")

# alarm kinds
A_DOOR_AJAR = "door_ajar"
A_FORCED_OPEN = "forced_open"
A_LOCK_JAM = "lock_jam"
A_OCC_MISMATCH = "occupancy_mismatch"
A_SENSOR_FAULT = "sensor_fault"
A_LOCKOUT = "lockout"
ALARM_KINDS = (A_DOOR_AJAR, A_FORCED_OPEN, A_LOCK_JAM, A_OCC_MISMATCH, A_SENSOR_FAULT, A_LOCKOUT)

# command operations
OP_DEPOSIT = "deposit"
OP_CODE_PUT = "code_put"
OP_CODE_DEL = "code_del"
OP_OPEN = "open"
OP_DISABLE = "disable"
OP_ENABLE = "enable"
OP_TIME = "time"
OP_REBIRTH = "rebirth"
OP_COURIER_PUT = "courier_put"
OP_FW_OFFER = "fw_offer"
OP_FW_CHUNK = "fw_chunk"
OP_FW_ABORT = "fw_abort"
OP_ADOPT = "adopt"
OPS = (OP_DEPOSIT, OP_CODE_PUT, OP_CODE_DEL, OP_OPEN, OP_DISABLE, OP_ENABLE, OP_TIME, OP_REBIRTH,
       OP_COURIER_PUT, OP_FW_OFFER, OP_FW_CHUNK, OP_FW_ABORT, OP_ADOPT)

# ack error codes
ERR_BAD_REQUEST = "bad_request"
ERR_UNKNOWN_OP = "unknown_op"
ERR_NO_SUCH_COMP = "no_such_compartment"
ERR_BUSY = "busy"
ERR_FULL = "full"
ERR_BAD_MAC = "bad_mac"
ERR_NO_SPACE = "no_space"

STATUS_ONLINE = "online"
STATUS_LOST = "lost"

# pickup codes and keypad lockout (protocol section 4)
CODE_LEN = 6
CODE_MSG_PREFIX = b"pickup:"
LOCKOUT_AFTER = 5
LOCKOUT_FIRST_S = 30
LOCKOUT_MAX_S = 900

CMD_MEMORY = 32

# courier PINs (8 digits, so the keypad tells them from 6-digit pickup codes)
PIN_LEN = 8
PIN_MSG_PREFIX = b"courier:"

# firmware update (protocol section 3.7)
FW_CHUNK_MAX = 512
FW_PATH_MAX = 64
FW_FILES_MAX = 40
FW_MANIFEST = "@manifest"  # fwreq file name of the manifest text when the offer carries msize
FW_RESULTS = ("staged", "ok", "rolled_back", "bad_mac", "bad_hash", "no_space", "timeout")
