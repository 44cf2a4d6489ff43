"""SQLAlchemy ORM tables of the cloud; times are Unix seconds (float) like the wire."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (JSON, BigInteger, Boolean, Float, ForeignKey, ForeignKeyConstraint, Index, Integer,
                        MetaData, String, Table, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (so migrations can refer to them)."""

    metadata = MetaData(naming_convention=NAMING)
    __table__: ClassVar[Table]  # every model here maps one Table (SQLAlchemy types it as any FromClause)


class District(Base):
    """A county district (区/县)."""

    __tablename__ = "districts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # 12-digit 统计用区划代码 of the county (its first six digits, then zeros); set by the village registry
    code: Mapped[str | None] = mapped_column(String(12), unique=True)


class Town(Base):
    """A town (乡镇) within a district."""

    __tablename__ = "towns"
    __table_args__ = (UniqueConstraint("district_id", "name", name="uq_towns_district_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"))
    code: Mapped[str | None] = mapped_column(String(12), unique=True)  # 统计用区划代码 (nine digits, then 000)


class Village(Base):
    """A village (行政村) within a town."""

    __tablename__ = "villages"
    __table_args__ = (UniqueConstraint("town_id", "name", name="uq_villages_town_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    town_id: Mapped[int | None] = mapped_column(ForeignKey("towns.id"))
    distance_km: Mapped[float | None] = mapped_column(Float)
    population: Mapped[int | None] = mapped_column(Integer)
    code: Mapped[str | None] = mapped_column(String(12), unique=True)  # 统计用区划代码
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)


class Station(Base):
    """A village station with one gateway; only the hash of its API key is kept."""

    __tablename__ = "stations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"))
    # the town of a station outside any village (a town co-delivery station); a village's station has its
    # village's town
    town_id: Mapped[int | None] = mapped_column(ForeignKey("towns.id"))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    # for the villagers' phone page: where the station is, how to call it, when it is open
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(24))
    hours: Mapped[str | None] = mapped_column(String(64))
    maint_phone: Mapped[str | None] = mapped_column(String(24))  # alerts go here (cloud/alerts.py)


class Locker(Base):
    """A locker controller at a station: online state, last birth snapshot and latest health."""

    __tablename__ = "lockers"
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    fw: Mapped[str | None] = mapped_column(String(64))
    boot: Mapped[str | None] = mapped_column(String(32))
    birth_seq: Mapped[int | None] = mapped_column(BigInteger)
    online: Mapped[str] = mapped_column(String(16), default="unknown")
    # a retired locker stays for its history; it is left out of the station's enrollment
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    status_rx: Mapped[float | None] = mapped_column(Float)
    last_seen: Mapped[float | None] = mapped_column(Float)
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rssi: Mapped[int | None] = mapped_column(Integer)
    vin: Mapped[float | None] = mapped_column(Float)
    temp: Mapped[float | None] = mapped_column(Float)
    heap: Mapped[int | None] = mapped_column(Integer)
    outbox: Mapped[int | None] = mapped_column(Integer)
    up: Mapped[int | None] = mapped_column(BigInteger)
    tele_at: Mapped[float | None] = mapped_column(Float)


class Compartment(Base):
    """One compartment of a locker as last reported."""

    __tablename__ = "compartments"
    __table_args__ = (
        UniqueConstraint("station_id", "locker_id", "n", name="uq_compartments_station_locker_n"),
        ForeignKeyConstraint(["station_id", "locker_id"], ["lockers.station_id", "lockers.id"],
                             name="fk_compartments_locker"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str] = mapped_column(String(32))
    locker_id: Mapped[str] = mapped_column(String(32))
    n: Mapped[int] = mapped_column(Integer)
    size: Mapped[str] = mapped_column(String(1))
    state: Mapped[str] = mapped_column(String(16), default="empty")
    door: Mapped[str] = mapped_column(String(8), default="closed")
    occ: Mapped[bool] = mapped_column(Boolean, default=False)
    ref: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[float | None] = mapped_column(Float)


class Carrier(Base):
    """An express carrier (seeded)."""

    __tablename__ = "carriers"
    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))


class Parcel(Base):
    """A parcel passing through a station locker."""

    __tablename__ = "parcels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    waybill: Mapped[str | None] = mapped_column(String(64), index=True)
    carrier: Mapped[str | None] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(8), default="inbound")
    phone: Mapped[str | None] = mapped_column(String(24), index=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    locker_id: Mapped[str | None] = mapped_column(String(32))
    compartment: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[str | None] = mapped_column(String(1))
    status: Mapped[str] = mapped_column(String(16), default="preadvised")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    deposited_at: Mapped[float | None] = mapped_column(Float)
    picked_up_at: Mapped[float | None] = mapped_column(Float)
    fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    fee_reason: Mapped[str | None] = mapped_column(String(64))
    recipient_name: Mapped[str | None] = mapped_column(String(64))
    produce: Mapped[bool] = mapped_column(Boolean, default=False)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    overdue_at: Mapped[float | None] = mapped_column(Float)
    returned_at: Mapped[float | None] = mapped_column(Float)
    carrier_signed_at: Mapped[float | None] = mapped_column(Float)
    # outbound (寄件) parcels taken in at a station
    sender_name: Mapped[str | None] = mapped_column(String(64))
    dest: Mapped[str | None] = mapped_column(String(120))
    weight_g: Mapped[int | None] = mapped_column(Integer)
    produce_name: Mapped[str | None] = mapped_column(String(40))
    # what its fee is for (jc.records.FEE_KINDS; a recipient is never charged a pickup fee), the outbound
    # sender's ID number as its last 4 characters (实名), and when the carrier's courier collected it
    fee_kind: Mapped[str | None] = mapped_column(String(16))
    sender_id_tail: Mapped[str | None] = mapped_column(String(4))
    collected_at: Mapped[float | None] = mapped_column(Float)


class Charge(Base):
    """An extra charge (二次收费) a villager reported on the phone page or the station agent recorded."""

    __tablename__ = "charges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"), index=True)
    carrier: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    cents: Mapped[int] = mapped_column(Integer)
    parcel_ref: Mapped[str | None] = mapped_column(String(40))
    waybill: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(24))
    text: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(8))  # villager | agent
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float, index=True)


class ParcelEvent(Base):
    """One step of a parcel's timeline."""

    __tablename__ = "parcel_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # no foreign key (migration 0008): timeline rows are written only with a parcel in hand (read, or made in
    # the same transaction), and parcels are never deleted; the per-row check cost some 40 % of the timeline
    # insert, which every batch makes
    parcel_id: Mapped[int] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(64))


class PickupCode(Base):
    """A pickup code issued by a gateway (kept for support look-ups)."""

    __tablename__ = "pickup_codes"
    # a station's codes by code (look-ups, the keypad's code sync), a recipient's by phone (the ingest's
    # one code per recipient per station, the recipient page); the station's own by the first's prefix
    __table_args__ = (Index("ix_pickup_codes_station_code", "station_id", "code"),
                      Index("ix_pickup_codes_phone_station", "phone", "station_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    phone: Mapped[str] = mapped_column(String(24))
    code: Mapped[str] = mapped_column(String(6))
    refs: Mapped[list[str]] = mapped_column(JSON)
    exp: Mapped[float | None] = mapped_column(Float)
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    locker_id: Mapped[str | None] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(8), default="gateway")


def _key_text(length: int) -> String:
    """A text column of the ledger's unique key: byte order ("C") on PostgreSQL (migration 0007), where the
    default collation compares through the C library's locale code on every index probe; ids are ASCII, so
    the order is the same."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Event(Base):
    """Every ingest item applied, unique per (station, src, boot, seq, kind, month): the dedupe ledger.

    `month` (yyyymm of the gateway's receive time `rx`, which the gateway keeps with the item) is the
    partition key on PostgreSQL, so it is part of the unique key; a replay carries the same `rx`. `id` numbers
    the rows in the order stored, so the ledger can be read incrementally (the simulator's ledger does).
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("station_id", "src", "boot", "seq", "kind", "month", name="uq_events_item"),
    )
    # SQLite only auto-numbers an INTEGER PRIMARY KEY
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    month: Mapped[int] = mapped_column(Integer)
    # no foreign key (migration 0005): the station is the one of the gateway key, checked once per batch,
    # and a per-row check cost a quarter of the ledger insert
    station_id: Mapped[str] = mapped_column(_key_text(32))
    src: Mapped[str] = mapped_column(_key_text(32))
    boot: Mapped[str] = mapped_column(_key_text(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(_key_text(16))
    type: Mapped[str | None] = mapped_column(String(16))
    ts: Mapped[float | None] = mapped_column(Float)
    rx: Mapped[float] = mapped_column(Float)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class DeadLetter(Base):
    """An ingest item the cloud rejected, with its reason."""

    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("station_id", "raw_hash", name="uq_dead_letters_raw"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str] = mapped_column(String(32), index=True)
    raw: Mapped[Any] = mapped_column(JSON)
    raw_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)


class Alarm(Base):
    """A locker alarm or a villager's fault report (kind `fault_report`) awaiting acknowledgement."""

    __tablename__ = "alarms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    locker_id: Mapped[str] = mapped_column(String(32))
    c: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)
    acked: Mapped[bool] = mapped_column(Boolean, default=False)
    acked_by: Mapped[str | None] = mapped_column(String(64))
    acked_at: Mapped[float | None] = mapped_column(Float)
    phone: Mapped[str | None] = mapped_column(String(24))
    text: Mapped[str | None] = mapped_column(String(300))


class GatewayHealth(Base):
    """The latest health a station's gateway reported about itself (gw_tele); history is in the telemetry store."""

    __tablename__ = "gateway_health"
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), primary_key=True)
    at: Mapped[float] = mapped_column(Float)
    outbox_depth: Mapped[int] = mapped_column(BigInteger)
    oldest_unsent_s: Mapped[float | None] = mapped_column(Float)
    uplink: Mapped[str] = mapped_column(String(8))
    lockers_online: Mapped[int] = mapped_column(Integer)
    lockers_total: Mapped[int] = mapped_column(Integer)
    cpu_temp: Mapped[float | None] = mapped_column(Float)
    up_s: Mapped[int] = mapped_column(BigInteger)
    counters: Mapped[dict[str, Any]] = mapped_column(JSON)


class Telemetry(Base):
    """Locker health history (bounded; see telemetry.SqlTelemetryStore)."""

    __tablename__ = "telemetry"
    __table_args__ = (Index("ix_telemetry_locker_at", "station_id", "locker_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str] = mapped_column(String(32))
    locker_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)
    rssi: Mapped[int | None] = mapped_column(Integer)
    vin: Mapped[float | None] = mapped_column(Float)
    temp: Mapped[float | None] = mapped_column(Float)
    heap: Mapped[int | None] = mapped_column(Integer)
    outbox: Mapped[int | None] = mapped_column(Integer)
    up: Mapped[int | None] = mapped_column(BigInteger)


class Notification(Base):
    """The SMS outbox."""

    __tablename__ = "notifications"
    # the dispatcher claims queued messages in (attempts, id) order
    __table_args__ = (Index("ix_notifications_queue", "status", "attempts", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(24), index=True)
    text: Mapped[str] = mapped_column(Text)
    # the provider template (sms_text.TEMPLATES) and its parameters, which carry the same facts as `text`
    kind: Mapped[str | None] = mapped_column(String(16))
    params: Mapped[dict[str, str] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(8), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    ref: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float)


class User(Base):
    """A staff member who logs in with a password; only the argon2 hash is kept."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    # a station agent's terminal PIN (jincun/pins.py), sent to their station; None for other roles
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(24))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"))
    carrier_code: Mapped[str | None] = mapped_column(ForeignKey("carriers.code"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)


class ApiClient(Base):
    """A carrier's API client: key hash, carrier and its status webhook."""

    __tablename__ = "api_clients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    carrier_code: Mapped[str] = mapped_column(ForeignKey("carriers.code"))
    webhook_url: Mapped[str | None] = mapped_column(String(512))
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)


class Courier(Base):
    """A courier of a carrier; the PIN is kept only hashed (jincun/pins.py)."""

    __tablename__ = "couriers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    carrier_code: Mapped[str] = mapped_column(ForeignKey("carriers.code"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(24), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(255))
    stations: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Recipient(Base):
    """A villager: name, locker-delivery consent (2024 rules) and door-to-door need."""

    __tablename__ = "recipients"
    phone: Mapped[str] = mapped_column(String(24), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(64))
    consent: Mapped[str] = mapped_column(String(8), default="unknown")
    consent_at: Mapped[float | None] = mapped_column(Float)
    door_help: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[float] = mapped_column(Float)


class Command(Base):
    """A downlink command queued for a station (§5.2); `cursor` orders the long-poll."""

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_station_cursor", "station_id", "cursor"),)
    cursor: Mapped[int] = mapped_column(Integer, primary_key=True)
    cmd_id: Mapped[str] = mapped_column(String(24), unique=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    locker_id: Mapped[str | None] = mapped_column(String(32))
    op: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    issued_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(200))
    issued_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    ack_ok: Mapped[bool | None] = mapped_column(Boolean)
    ack_err: Mapped[str | None] = mapped_column(String(32))
    ack_at: Mapped[float | None] = mapped_column(Float)


class RateHit(Base):
    """One counted action for a database-held rate limit (shared by every worker)."""

    __tablename__ = "rate_hits"
    __table_args__ = (Index("ix_rate_hits_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128))
    at: Mapped[float] = mapped_column(Float)


class Lease(Base):
    """A named lock with an expiry, so one worker at a time runs a periodic job."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    until: Mapped[float] = mapped_column(Float)


class AuditEntry(Base):
    """Who did what, when and why (remote opens, consent changes, acknowledgements...)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class SignoffFlag(Base):
    """A suspected fake sign-off, with the locker evidence found when it was raised."""

    __tablename__ = "signoff_flags"
    __table_args__ = (UniqueConstraint("parcel_id", "kind", name="uq_signoff_flags_parcel_kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id"))
    kind: Mapped[str] = mapped_column(String(24))
    at: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)


class WebhookDelivery(Base):
    """A status webhook waiting to reach a carrier; retried with backoff."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)


class OtpCode(Base):
    """A one-time SMS login code for the recipient page (hash only)."""

    __tablename__ = "otp_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(24), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class TelemetryPoint(Base):
    """Door, occupancy and gateway-link points for the SQL telemetry store (bounded like `telemetry`)."""

    __tablename__ = "telemetry_points"
    __table_args__ = (Index("ix_telemetry_points_station_at", "station_id", "measurement", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    measurement: Mapped[str] = mapped_column(String(16))
    station_id: Mapped[str] = mapped_column(String(32))
    locker_id: Mapped[str | None] = mapped_column(String(32))
    c: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)


class EnrollToken(Base):
    """A one-time token a station's gateway trades for its identity; only its hash is kept."""

    __tablename__ = "enroll_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float)


class AlertEpisode(Base):
    """One episode of a condition at one place, told when it starts and when it ends (cloud/alerts.py)."""

    __tablename__ = "alert_episodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str] = mapped_column(String(32), index=True)
    locker_id: Mapped[str] = mapped_column(String(32))
    c: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24))
    # station/locker/c/kind while the episode is open, NULL once it is over: one open episode per condition
    open_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    opened_at: Mapped[float] = mapped_column(Float)
    closed_at: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(String(200))


class AlertPost(Base):
    """A text waiting to reach the county's WeCom or DingTalk group robot; retried with backoff."""

    __tablename__ = "alert_posts"
    __table_args__ = (Index("ix_alert_posts_due", "status", "next_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("alert_episodes.id"))
    phase: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
