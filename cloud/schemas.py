"""Pydantic models of the HTTP API: one Create/Public family per entity."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from jincun.carriers import code_of

from jincun.pins import PIN_RE

from . import constants as K

StationKind = Literal["village_shop", "party_service_centre", "postal_point", "town_station", "district_hub"]
Size = Literal["S", "M", "L"]
LOCKER_ID = r"^[a-z0-9-]{1,32}$"
STATION_ID = r"^[a-z0-9-]{1,32}$"


class CompartmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(ge=K.COMPARTMENT_MIN, le=K.COMPARTMENT_MAX)
    size: Size


class CompartmentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    n: int
    size: str
    state: str
    door: str
    occ: bool
    ref: str | None


class LockerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=LOCKER_ID)
    comps: list[CompartmentCreate] = Field(min_length=1, max_length=K.COMPARTMENT_MAX)


class LockerPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    fw: str | None
    boot: str | None
    online: str
    last_seen: float | None
    rssi: int | None
    vin: float | None
    temp: float | None
    heap: int | None
    outbox: int | None
    up: int | None
    active: bool = True
    compartments: list[CompartmentPublic] = []


class StationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=STATION_ID)
    name: str = Field(min_length=1, max_length=128)
    kind: StationKind = "village_shop"
    village: str | None = Field(default=None, min_length=1, max_length=64)
    town: str | None = Field(default=None, min_length=1, max_length=64)
    # None: a key is drawn and thrown away; the station's gateway gets its own at enrollment
    api_key: str | None = Field(default=None, min_length=16, max_length=256)
    # what a villager needs to find the station: shown on their phone page
    address: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(default=None, pattern=K.PHONE_RE.pattern)
    hours: str | None = Field(default=None, min_length=1, max_length=64)


class StationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    kind: str
    village: str | None = None
    town: str | None = None
    address: str | None = None
    phone: str | None = None
    hours: str | None = None
    active: bool
    lockers: list[LockerPublic] = []


class ParcelEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    status: str
    at: float
    source: str


class ParcelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    ref: str
    waybill: str | None
    carrier: str | None
    direction: str
    phone: str | None
    station_id: str
    locker_id: str | None
    compartment: int | None
    size: str | None
    status: str
    created_at: float
    deposited_at: float | None
    picked_up_at: float | None
    fee_cents: int
    fee_reason: str | None
    timeline: list[ParcelEventPublic] = []


class NotificationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    phone: str
    text: str
    status: str
    attempts: int
    ref: str | None
    created_at: float
    sent_at: float | None


class ItemResult(BaseModel):
    src: Any = None
    boot: Any = None
    seq: Any = None
    status: Literal["applied", "duplicate", "rejected"]
    error: str | None = None


class IngestResponse(BaseModel):
    batch: str
    applied: int
    duplicate: int
    rejected: int
    results: list[ItemResult]


class LedgerPublic(BaseModel):
    station: str
    # [locker, boot, seq] triples; a list rather than a tuple, whose schema OpenAPI 3.1 cannot state
    events: list[list[str | int]] = Field(description="[locker, boot, seq] of every stored event")
    parcel_transitions: dict[str, int]


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    db: str
    counters: dict[str, int]


# ---- downlink, consent, couriers -------------------------------------------------------------

class CommandsPage(BaseModel):
    commands: list[dict[str, Any]]
    cursor: int


class CommandAck(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ok: bool
    err: Literal["expired", "rate_limited", "unknown_locker", "busy", "offline", "bad_command"] | None = None
    at: float | None = Field(default=None, ge=0, le=1e11)


class CommandAckResult(BaseModel):
    id: str
    status: str
    ok: bool
    err: str | None


class ConsentPublic(BaseModel):
    phone: str
    consent: Literal["unknown", "granted", "refused"]
    locker_allowed: bool
    door_help: bool
    at: float | None


class PreadviceCarriers(BaseModel):
    """The carriers whose manifests pre-advised a waybill to the asking station, not in a locker yet."""

    waybill: str
    carriers: list[str]


class CourierLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(pattern=K.PHONE_RE.pattern)
    pin: str = Field(pattern=PIN_RE)


class CourierCheck(BaseModel):
    ok: bool
    carrier: str | None
    name: str | None


class StaffEntry(BaseModel):
    """One person who may log in at a station's terminal: `c<n>` a courier, `a<n>` a station agent."""

    id: str
    name: str
    role: Literal["courier", "agent"]
    carrier: str
    pin_hash: str


class StaffList(BaseModel):
    users: list[StaffEntry]
    # the station's lockers retired in the cloud: the gateway takes no new deposits into them (docs/protocol.md §5.6)
    retired_lockers: list[str] = []


# ---- staff -----------------------------------------------------------------------------------

Role = Literal["admin", "county_official", "maintenance", "station_agent", "courier"]
Text200 = Field(min_length=1, max_length=200)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: str


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,64}$")
    display_name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=10, max_length=128)
    role: Role
    station_id: str | None = Field(default=None, pattern=STATION_ID)
    # a code, or a carrier's name mapped to its code through the one table (中通 -> ZTO)
    carrier_code: Annotated[str | None, BeforeValidator(lambda v: code_of(v) if isinstance(v, str) else v)] = Field(
        default=None, pattern=r"^[A-Z0-9_]{1,16}$")
    # a station agent's terminal PIN, sent to their station only hashed
    pin: str | None = Field(default=None, pattern=PIN_RE)


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    role: str
    station_id: str | None
    carrier_code: str | None
    active: bool


class CarrierCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[A-Z0-9_]{1,16}$")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)


class CarrierPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str
    name_zh: str
    name_en: str


class ApiClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    webhook_url: str | None = Field(default=None, pattern=r"^https?://[^\s]{1,500}$")


class ApiClientCreated(BaseModel):
    id: int
    carrier_code: str
    api_key: str
    webhook_secret: str | None


class CourierCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    phone: str = Field(pattern=K.PHONE_RE.pattern)
    pin: str = Field(pattern=PIN_RE)
    stations: list[str] = Field(default_factory=list, max_length=200)


class CourierPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    carrier_code: str
    name: str
    phone: str
    stations: list[str]
    active: bool


class RecipientUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=64)
    consent: Literal["unknown", "granted", "refused"] | None = None
    door_help: bool | None = None


class RecipientPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    phone: str
    name: str | None
    consent: str
    consent_at: float | None
    door_help: bool


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    station: str = Field(pattern=STATION_ID)
    op: Literal["open", "disable", "enable", "rebirth", "fw_rollout", "config"]
    locker: str | None = Field(default=None, pattern=LOCKER_ID)
    c: int | None = Field(default=None, ge=K.COMPARTMENT_MIN, le=K.COMPARTMENT_MAX)
    reason: str | None = Field(default=None, min_length=1, max_length=200)
    version: str | None = Field(default=None, pattern=r"^[0-9A-Za-z.+-]{1,32}$")
    url: str | None = Field(default=None, pattern=r"^https?://[^\s]{1,500}$")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    lockers: list[str] | None = Field(default=None, max_length=64)
    key: str | None = Field(default=None, pattern=r"^[a-z0-9_.]{1,64}$")
    value: str | int | float | bool | None = None


class CommandPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    cursor: int
    cmd_id: str
    station_id: str
    locker_id: str | None
    op: str
    payload: dict[str, Any]
    issued_by: str
    reason: str | None
    issued_at: float
    expires_at: float
    status: str
    ack_ok: bool | None
    ack_err: str | None
    ack_at: float | None


class CodeResend(BaseModel):
    model_config = ConfigDict(extra="forbid")
    station: str = Field(pattern=STATION_ID)
    phone: str = Field(pattern=K.PHONE_RE.pattern)
    reason: str = Field(min_length=1, max_length=200)


class CodeLookup(BaseModel):
    """A pickup code to look up: in the body, so it stays out of URLs and access logs."""

    model_config = ConfigDict(extra="forbid")
    station: str = Field(pattern=STATION_ID)
    code: str = Field(pattern=r"^[0-9]{6}$")


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200)


class AlarmPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    station_id: str
    locker_id: str
    c: int | None
    kind: str
    at: float
    acked: bool
    acked_by: str | None
    acked_at: float | None
    phone: str | None = None
    text: str | None = None


class GatewayHealthPublic(BaseModel):
    """The latest health a station's gateway reported (gw_tele), and whether it is stale."""

    model_config = ConfigDict(from_attributes=True)
    station_id: str
    at: float
    outbox_depth: int
    oldest_unsent_s: float | None
    uplink: str
    lockers_online: int
    lockers_total: int
    cpu_temp: float | None
    up_s: int
    counters: dict[str, int]
    stale: bool = False


class FlagPublic(BaseModel):
    id: int
    ref: str
    waybill: str | None
    carrier: str | None
    station_id: str
    kind: str
    at: float
    evidence: dict[str, Any]
    resolved: bool


# ---- carrier API -----------------------------------------------------------------------------

class ManifestParcel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    waybill: str = Field(pattern=r"^[A-Za-z0-9-]{4,64}$")
    station: str = Field(pattern=STATION_ID)
    phone: str = Field(pattern=K.PHONE_RE.pattern)
    name: str | None = Field(default=None, min_length=1, max_length=64)
    direction: Literal["inbound", "outbound"] = "inbound"
    produce: bool = False
    size: Size | None = None
    fee_cents: int = Field(default=0, ge=0, le=1_000_000)
    fee_reason: str | None = Field(default=None, min_length=1, max_length=64)
    # what the fee is for (jc.records.FEE_KINDS): required with a fee; `pickup` is refused (pickup is free)
    fee_kind: str | None = Field(default=None, max_length=16)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manifest_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    parcels: list[ManifestParcel] = Field(min_length=1, max_length=1000)


class ManifestResult(BaseModel):
    manifest_id: str
    created: int
    existing: int
    refs: list[str]


class SignedReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: float | None = Field(default=None, ge=0, le=1e11)


class SignedResult(BaseModel):
    waybill: str
    status: str
    flagged: bool
    missing: list[str]


class CarrierParcelPublic(BaseModel):
    waybill: str | None
    ref: str
    station_id: str
    direction: str
    status: str
    deposited_at: float | None
    picked_up_at: float | None
    fee_cents: int
    fee_reason: str | None
    timeline: list[ParcelEventPublic]
