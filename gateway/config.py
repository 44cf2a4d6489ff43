"""station.json: typed gateway configuration, validated at start-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jincun import carriers as carrier_table
from jincun.phone import PHONE_PATTERN
from jincun.pins import PIN_HASH_RE
from jincun.weaksecret import weakness

from . import const as C
from .errors import ConfigError

_PLACEHOLDERS = {"...", "changeme", "change-me", "password", "secret", "xxx"}

Id = Annotated[str, Field(pattern=C.ID_RE)]


def _carrier(v: str) -> str:
    """A carrier as its code (jincun/carriers.py): the old Chinese names of station.json map through the table."""
    code = carrier_table.code_of(v)
    if code is None or not carrier_table.CODE_RE.match(code):
        raise ValueError(f"unknown carrier {v!r} (codes: {', '.join(carrier_table.CODES)})")
    return code


Carrier = Annotated[str, Field(max_length=32), AfterValidator(_carrier)]


def _secret(v: str) -> str:
    if v.strip().lower() in _PLACEHOLDERS or len(v) < 8:
        raise ValueError("must be a real secret of at least 8 characters, not a placeholder")
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535)


class OutboxLimits(_Model):
    max_rows: int = Field(2_000_000, ge=10)  # two busy days (a busy station records ~1M events a day)
    tele_max_age_s: float = Field(3 * 86400, gt=0)
    mem_queue_max: int = Field(10_000, ge=1)
    retry_s: float = Field(1.0, gt=0)
    max_db_mb: float | None = Field(2048, gt=0)


class FirmwareConfig(_Model):
    """Firmware roll-outs (§5.2 `fw_rollout`): where archives are kept, how many lockers update at once."""

    # archives by sha256 (`{sha256}.tar.gz`); one placed here by hand is used without a download.
    # None: `firmware/` next to the database
    dir: Path | None = None
    parallel: int = Field(1, ge=1, le=8)  # lockers updating at the same time
    locker_timeout_s: float = Field(600.0, gt=0)  # offer to final `fw` event, per locker
    max_archive_mb: float = Field(4.0, gt=0, le=64)


class GatewayConfig(_Model):
    db: Path = Path("var/gateway.db")
    epoch: str | None = Field(None, pattern=C.BOOT_RE)
    http: HttpConfig = HttpConfig()
    code_ttl_s: int = Field(604800, ge=60, le=90 * 86400)
    cmd_timeout_s: float = Field(5.0, gt=0)
    tele_s: float = Field(60.0, gt=0)  # how often the gateway's own health goes up as gw_tele
    time_s: float = Field(3600.0, gt=0)  # how often online lockers get the time again
    outbox: OutboxLimits = OutboxLimits()
    firmware: FirmwareConfig = FirmwareConfig()

    @model_validator(mode="after")
    def _firmware_dir(self) -> GatewayConfig:
        if self.firmware.dir is None:
            self.firmware = self.firmware.model_copy(update={"dir": self.db.parent / "firmware"})
        return self


class TlsConfig(_Model):
    """TLS for the lockers' listener: required outside the demo (gateway/broker.py, plain_listener)."""

    port: int = Field(8883, ge=1, le=65535)
    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False


class MqttConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str = "gateway"
    password: str
    # the broker's log file, followed for ACL refusals (broker_audit.py); None: not watched
    audit_log: Path | None = None
    tls: TlsConfig | None = None
    # the broker's plain listener: the gateway's own on loopback; lockers use the TLS listener (`tls`).
    # Only a demo station may open it to the LAN (gateway/broker.py, plain_listener)
    listen: str = "127.0.0.1"

    _check = field_validator("password")(classmethod(lambda cls, v: _secret(v)))


class CloudConfig(_Model):
    url: str = Field(pattern=r"^https?://")
    api_key: str
    batch_max: int = Field(500, ge=1, le=C.INGEST_MAX_ITEMS)
    poll_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)
    backoff_min_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    downlink: bool = True
    downlink_wait_s: int = Field(25, ge=0, le=C.DOWNLINK_WAIT_MAX_S)
    remote_open_per_min: int = Field(C.REMOTE_OPEN_PER_MIN, ge=0, le=C.REMOTE_OPEN_PER_MIN)
    remote_open_per_day: int = Field(C.REMOTE_OPEN_PER_DAY, ge=0, le=C.REMOTE_OPEN_PER_DAY)
    remote_open_per_operator_day: int = Field(C.REMOTE_OPEN_PER_OPERATOR_DAY, ge=0,
                                              le=C.REMOTE_OPEN_PER_OPERATOR_DAY)
    linger_s: float = Field(0.05, ge=0, le=5)  # gather a burst into one batch before sending
    catchup_per_s: float = Field(2000.0, gt=0)  # records/s sent while a backlog drains after an outage

    _check = field_validator("api_key")(classmethod(lambda cls, v: _secret(v)))


class CompConfig(_Model):
    n: int = Field(ge=C.COMP_MIN, le=C.COMP_MAX)
    size: Literal["S", "M", "L"]


class LockerConfig(_Model):
    id: Id
    secret: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    mqtt_password: str
    comps: list[CompConfig] = Field(min_length=1, max_length=C.COMP_MAX)

    _check = field_validator("mqtt_password")(classmethod(lambda cls, v: _secret(v)))

    @model_validator(mode="after")
    def _unique_comps(self):
        ns = [c.n for c in self.comps]
        if len(ns) != len(set(ns)):
            raise ValueError(f"locker {self.id}: compartment numbers repeat")
        return self


class BoardCompConfig(CompConfig):
    lock: int | None = Field(None, ge=1, le=16)  # lock number on the board; default: the compartment number


class BoardConfig(_Model):
    """A plain RS-485 lock board run by the gateway as one locker (see boardlocker.py)."""

    id: Id
    port: str = Field(min_length=1)  # a device (/dev/ttyUSB0) or any pyserial URL
    baud: int = Field(19200, ge=1200, le=115200)
    addr: int = Field(0, ge=0, le=0x1F)
    model: str = "kr-cu16"
    secret: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    poll_s: float = Field(0.25, gt=0, le=10)
    timeout_s: float = Field(0.3, gt=0, le=5)
    comps: list[BoardCompConfig] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _check(self):
        from jc.lockboard import MODELS
        if self.model not in MODELS:
            raise ValueError(f"board {self.id}: unknown model {self.model!r} (known: {', '.join(MODELS)})")
        ns = [c.n for c in self.comps]
        locks = [c.lock or c.n for c in self.comps]
        if len(ns) != len(set(ns)) or len(locks) != len(set(locks)):
            raise ValueError(f"board {self.id}: compartment or lock numbers repeat")
        if max(locks) > 16:
            raise ValueError(f"board {self.id}: a board has 16 locks")
        return self


class ScannerConfig(_Model):
    port: str = Field(min_length=1)  # the scanner's CDC-ACM device, e.g. /dev/ttyACM0
    baud: int = Field(9600, ge=1200, le=115200)


class TerminalUser(_Model):
    id: Id
    name: str = Field(min_length=1, max_length=40)
    role: Literal["courier", "agent"]
    carrier: Carrier | Literal[""] = ""
    # hashed by the one PIN rule (jincun/pins.py), at the station or in the cloud
    pin_hash: str = Field(pattern=PIN_HASH_RE)


class FeeRule(_Model):
    first_kg_cents: int = Field(800, ge=0)
    extra_kg_cents: int = Field(200, ge=0)
    produce_discount_pct: int = Field(0, ge=0, le=100)


class TerminalConfig(_Model):
    """The station terminal: who may log in, who needs parcels brought home, how outbound is charged."""

    users: list[TerminalUser] = []
    assist_phones: list[Annotated[str, Field(pattern=PHONE_PATTERN)]] = Field([], max_length=5000)
    # carrier codes the terminal offers (shown by their names); old station files name them in Chinese
    carriers: list[Carrier] = list(carrier_table.CODES)
    fees: dict[str, FeeRule] = {}  # by carrier code (or an old name), "*" for every other carrier
    session_s: int = Field(1800, ge=60, le=86400)
    # how often the couriers and station agents the county manages are fetched from the cloud
    staff_sync_s: float = Field(30.0, ge=1.0, le=3600.0)
    consent_cache_s: int = Field(7 * 86400, ge=60)
    # offline and not cached: "ask" lets the courier record that the recipient agreed by phone
    consent_offline: Literal["ask", "refuse"] = "ask"


    @field_validator("fees")
    @classmethod
    def _fee_codes(cls, v: dict[str, FeeRule]) -> dict[str, FeeRule]:
        return {k if k == "*" else _carrier(k): rule for k, rule in v.items()}


class StationConfig(_Model):
    station: Id
    name: str = ""
    gateway: GatewayConfig = GatewayConfig()
    mqtt: MqttConfig
    cloud: CloudConfig
    boards: list[BoardConfig] = Field(default_factory=list)
    lockers: list[LockerConfig] = Field(default_factory=list)
    scanner: ScannerConfig | None = None
    terminal: TerminalConfig = TerminalConfig()
    # a demo or test station may use the published test secrets; a real one may not (jincun/weaksecret.py)
    demo: bool = False

    @field_validator("lockers")
    @classmethod
    def _some_locker(cls, v, info):
        if not v and not info.data.get("boards"):
            raise ValueError("a station needs at least one locker or lock board")
        return v

    @model_validator(mode="after")
    def _unique_lockers(self):
        ids = [lk.id for lk in self.lockers] + [b.id for b in self.boards]
        if len(ids) != len(set(ids)):
            raise ValueError("locker ids repeat")
        if self.mqtt.username in ids:
            raise ValueError("the gateway's MQTT username must differ from every locker id")
        users = [u.id for u in self.terminal.users]
        if len(users) != len(set(users)):
            raise ValueError("terminal user ids repeat")
        return self

    @model_validator(mode="after")
    def _strong_secrets(self):
        if self.demo:
            return self
        found = [("mqtt.password", self.mqtt.password, 12), ("cloud.api_key", self.cloud.api_key, 16)]
        for lk in self.lockers:
            found += [(f"lockers.{lk.id}.secret", lk.secret, 64),
                      (f"lockers.{lk.id}.mqtt_password", lk.mqtt_password, 12)]
        found += [(f"boards.{b.id}.secret", b.secret, 64) for b in self.boards]
        weak = [f"{name} {why}" for name, value, n in found if (why := weakness(value, min_len=n))]
        if weak:
            raise ValueError("guessable secrets (set \"demo\": true only for a demo station): " + "; ".join(weak))
        return self

    def locker(self, locker_id: str) -> LockerConfig | BoardConfig | None:
        """The configured locker or lock board with this id, or None."""
        every: list[LockerConfig | BoardConfig] = [*self.lockers, *self.boards]
        for lk in every:
            if lk.id == locker_id:
                return lk
        return None

    def all_lockers(self) -> list[LockerConfig | BoardConfig]:
        return [*self.lockers, *self.boards]


def parse_config(data: dict, base: Path | None = None) -> StationConfig:
    """Validate a config dict; a relative db path is taken relative to `base`."""
    try:
        cfg = StationConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid station config:\n" + "\n".join(lines)) from None
    if base is not None and not cfg.gateway.db.is_absolute():
        cfg.gateway.db = base / cfg.gateway.db
    return cfg


def load_config(path: str | Path) -> StationConfig:
    """Read and validate station.json; raise ConfigError with every problem listed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return parse_config(data, base=path.parent)
