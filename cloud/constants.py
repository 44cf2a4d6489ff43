"""Wire names, limits and enumerations the cloud relies on (docs/protocol.md §1, §3, §5)."""

from __future__ import annotations

import re

from jincun.phone import PHONE_RE  # noqa: F401 (the one phone rule, re-exported for the cloud)
from jc import const as W
from jc import records as R

API_PREFIX = "/api/v1"
INGEST_PATH = f"{API_PREFIX}/gateway/ingest"

PROTOCOL_VERSION = W.V

# §5.1 batch limits
MAX_BATCH_ITEMS = 500
MAX_BATCH_BYTES = 1024 * 1024
MAX_BODY_BYTES = 64 * 1024  # any other request body
MAX_MANIFEST_BYTES = 768 * 1024  # a carrier manifest of 1,000 parcels

# §2 size limits per payload kind (UTF-8 JSON bytes)
MAX_PAYLOAD_BYTES = W.MAX_BYTES  # the wire core's limits
MAX_GW_BODY_BYTES = R.MAX_BODY

GATEWAY_SRC = "gw"
LOCKER_KINDS = ("evt", "birth", "status", "tele")
GATEWAY_KINDS = ("parcel", "code", "gw_tele", "outbound", "handover", "fault_report", "collected", "charge")
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
MAX_WAYBILL, MAX_CARRIER = R.WAYBILL_MAX, R.CARRIER_MAX

# station records (§5.1): gw_tele, outbound, handover, fault_report
# their limits live in the wire core (jc.records), which the gateway checks its records with too
UPLINK_STATES = R.UPLINK_STATES
MAX_GW_COUNTERS = R.COUNTERS_MAX  # counters one gw_tele may carry
MAX_COUNTER_NAME = R.COUNTER_NAME_MAX
MAX_SENDER_NAME, MAX_DEST, MAX_PRODUCE, MAX_FEE_REASON = R.SENDER_NAME_MAX, R.DEST_MAX, R.PRODUCE_MAX, R.FEE_REASON_MAX
MAX_WEIGHT_G = R.WEIGHT_G_MAX
MAX_FEE_CENTS = R.FEE_CENTS_MAX
MAX_FAULT_TEXT = R.FAULT_TEXT_MAX
HANDOVER_HOW = R.HANDOVER_HOW
AGENT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
FAULT_REPORT_KIND = "fault_report"
GW_POINT_MEASUREMENTS = ("gw_outbox", "gw_lag", "gw_uplink")

# the wire's own names and limits come from the wire core (jc.const), which the firmware and gateway share
SEQ_MAX = W.SEQ_MAX
ITEM_SEQ_MAX = 2**62
TS_MAX, MONO_MAX, COUNT_MAX, TEXT_MAX = W.TS_MAX, W.MONO_MAX, W.COUNT_MAX, W.TEXT_MAX
COMPARTMENT_MIN, COMPARTMENT_MAX = W.COMP_MIN, W.COMP_MAX
SIZES = W.SIZES
COMP_STATES = W.STATES
DOOR_STATES = W.DOORS
STATUS_STATES = (W.STATUS_ONLINE, W.STATUS_LOST)
LOCK_WHY = W.LOCK_WHY
ALARM_KINDS = W.ALARM_KINDS
EVT_TYPES = W.EVT_TYPES
FW_RESULTS = W.FW_RESULTS  # protocol §3.7
FW_VER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,24}$")
MAX_STR = 64  # longest free-text field accepted in a gateway record

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
E_TOO_LARGE = W.E_TOO_LARGE
E_NOT_JSON = W.E_NOT_JSON
E_NOT_OBJECT = W.E_NOT_OBJECT
E_BAD_VERSION = W.E_BAD_VERSION
E_BAD_FIELD = W.E_BAD_FIELD
E_BAD_ITEM = "bad_item"
E_UNKNOWN_KIND = "unknown_kind"
E_UNKNOWN_LOCKER = "unknown_locker"
E_LOCKER_OF_OTHER_STATION = "locker_of_other_station"
E_NO_SUCH_COMPARTMENT = "no_such_compartment"
# a parcel record naming a carrier that is not one of the cloud's carriers (a code of jincun/carriers.py or one
# the county added): refused, so no made-up carrier reaches the statistics, quality figures or webhooks
E_UNKNOWN_CARRIER = "unknown_carrier"
E_MISMATCH = "mismatch"

# roles (recipient is the villager on the phone page)
ROLES = ("admin", "county_official", "maintenance", "station_agent", "courier", "carrier_client", "gateway",
         "recipient")
STAFF_ROLES = ("admin", "county_official", "maintenance", "station_agent", "courier")
CONSENT_STATES = ("unknown", "granted", "refused")

# downlink (§5.2)
COMMAND_OPS = R.DOWNLINK_OPS
ACK_ERRORS = ("expired", "rate_limited", "unknown_locker", "busy", "offline", "bad_command")
MAX_WAIT_SECONDS = 30
COMMANDS_PAGE = 100
POLL_INTERVAL = 0.5
MAX_REASON = 200

# fake sign-off flags
FLAG_CARRIER_SIGNED = "carrier_signed"
FLAG_NOT_RECEIVED = "not_received"
# a parcel the carrier pre-advised that never reached a locker (不送货上门, or a sign-off without delivery)
FLAG_NEVER_DELIVERED = "never_delivered"
