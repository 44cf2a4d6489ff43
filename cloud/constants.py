"""Wire names, limits and enumerations the cloud relies on (docs/protocol.md §1, §3, §5)."""

from __future__ import annotations

import re

from jincun.phone import PHONE_RE  # noqa: F401 (the one phone rule, re-exported for the cloud)

API_PREFIX = "/api/v1"
INGEST_PATH = f"{API_PREFIX}/gateway/ingest"

PROTOCOL_VERSION = 1

# §5.1 batch limits
MAX_BATCH_ITEMS = 500
MAX_BATCH_BYTES = 1024 * 1024

# §2 size limits per payload kind (UTF-8 JSON bytes)
MAX_PAYLOAD_BYTES = {"birth": 4096, "evt": 512, "status": 512, "ack": 512, "tele": 1024}
MAX_GW_BODY_BYTES = 2048

GATEWAY_SRC = "gw"
LOCKER_KINDS = ("evt", "birth", "status", "tele")
GATEWAY_KINDS = ("parcel", "code", "gw_tele", "outbound", "handover", "fault_report")
ITEM_KINDS = LOCKER_KINDS + GATEWAY_KINDS

STATION_ID_RE = re.compile(r"^[a-z0-9-]{1,32}$")
LOCKER_ID_RE = re.compile(r"^[a-z0-9-]{1,32}$")
BOOT_RE = re.compile(r"^[0-9a-f]{8}$")
# the gateway's outbox epoch is not pinned by the protocol beyond being a short token
ITEM_BOOT_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
REF_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
BATCH_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
CODE_RE = re.compile(r"^[0-9]{6}$")
# couriers type these on the gateway: any printable text without control characters
FREE_TEXT_RE = re.compile(r"^[^\x00-\x1f\x7f]+$")
MAX_WAYBILL, MAX_CARRIER = 64, 32

# station records (§5.1): gw_tele, outbound, handover, fault_report
UPLINK_STATES = ("up", "down")
MAX_GW_COUNTERS = 64  # counters one gw_tele may carry
MAX_COUNTER_NAME = 40
MAX_SENDER_NAME, MAX_DEST, MAX_PRODUCE, MAX_FEE_REASON = 64, 120, 40, 64
MAX_WEIGHT_G = 100_000
MAX_FEE_CENTS = 10_000_000
MAX_FAULT_TEXT = 300
HANDOVER_HOW = ("door_to_door",)
AGENT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
FAULT_REPORT_KIND = "fault_report"
GW_POINT_MEASUREMENTS = ("gw_outbox", "gw_lag", "gw_uplink")

SEQ_MAX = 2**31 - 1
ITEM_SEQ_MAX = 2**62
COMPARTMENT_MIN, COMPARTMENT_MAX = 1, 32
SIZES = ("S", "M", "L")
COMP_STATES = ("empty", "deposit", "occupied", "pickup", "disabled", "fault")
DOOR_STATES = ("open", "closed")
STATUS_STATES = ("online", "lost")
LOCK_WHY = ("deposit", "pickup", "remote", "courier")
ALARM_KINDS = ("door_ajar", "forced_open", "lock_jam", "occupancy_mismatch", "sensor_fault", "lockout")
EVT_TYPES = ("door", "lock", "deposit", "deposit_void", "pickup", "code_ok", "code_bad", "lockout", "alarm", "state",
             "courier", "fw")
FW_RESULTS = ("staged", "ok", "rolled_back", "bad_mac", "bad_hash", "no_space", "timeout")  # protocol §3.7
MAX_STR = 64  # longest free-text field accepted inside a payload (fw, why, reset, ...)

STATION_KINDS = ("village_shop", "party_service_centre", "postal_point", "town_station", "district_hub")
LOCKER_ONLINE_STATES = ("online", "lost", "unknown")

# the parcel lifecycle (statuses, their order, the moves between them): cloud/parcels.py

NOTIFICATION_STATUSES = ("queued", "sent", "failed")
# at the default 30 s retry period this keeps trying for about a day before giving up
NOTIFY_MAX_ATTEMPTS = 3000
# one SMS segment in UCS-2, the encoding of every Chinese text (sms_text counts as the carriers do)
SMS_SEGMENT_UNITS = 70

# item results (§5.1)
APPLIED, DUPLICATE, REJECTED = "applied", "duplicate", "rejected"

# rejection codes; the payload ones match tests/vectors/payloads.json
E_TOO_LARGE = "too_large"
E_NOT_JSON = "not_json"
E_NOT_OBJECT = "not_object"
E_BAD_VERSION = "bad_version"
E_BAD_FIELD = "bad_field"
E_BAD_ITEM = "bad_item"
E_UNKNOWN_KIND = "unknown_kind"
E_UNKNOWN_LOCKER = "unknown_locker"
E_LOCKER_OF_OTHER_STATION = "locker_of_other_station"
E_NO_SUCH_COMPARTMENT = "no_such_compartment"
E_MISMATCH = "mismatch"

# roles (recipient is the villager on the phone page)
ROLES = ("admin", "county_official", "maintenance", "station_agent", "courier", "carrier_client", "gateway",
         "recipient")
STAFF_ROLES = ("admin", "county_official", "maintenance", "station_agent", "courier")
CONSENT_STATES = ("unknown", "granted", "refused")

# downlink (§5.2)
COMMAND_OPS = ("open", "disable", "enable", "code_sync", "rebirth", "fw_rollout", "config")
ACK_ERRORS = ("expired", "rate_limited", "unknown_locker", "busy", "offline", "bad_command")
MAX_WAIT_SECONDS = 30
COMMANDS_PAGE = 100
POLL_INTERVAL = 0.5
MAX_REASON = 200

# fake sign-off flags
FLAG_CARRIER_SIGNED = "carrier_signed"
FLAG_NOT_RECEIVED = "not_received"
