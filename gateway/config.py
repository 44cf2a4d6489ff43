"""station.json: typed gateway configuration, validated at start-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import const as C
from .errors import ConfigError

_PLACEHOLDERS = {"...", "changeme", "change-me", "password", "secret", "xxx"}

Id = Annotated[str, Field(pattern=C.ID_RE)]


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
    max_rows: int = Field(200_000, ge=10)
    tele_max_age_s: float = Field(3 * 86400, gt=0)
    mem_queue_max: int = Field(10_000, ge=1)
    retry_s: float = Field(1.0, gt=0)
    max_db_mb: float | None = Field(1024, gt=0)


class GatewayConfig(_Model):
    db: Path = Path("var/gateway.db")
    epoch: str | None = Field(None, pattern=C.BOOT_RE)
    http: HttpConfig = HttpConfig()
    code_ttl_s: int = Field(604800, ge=60, le=90 * 86400)
    cmd_timeout_s: float = Field(5.0, gt=0)
    outbox: OutboxLimits = OutboxLimits()


class MqttConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str = "gateway"
    password: str

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


class StationConfig(_Model):
    station: Id
    name: str = ""
    gateway: GatewayConfig = GatewayConfig()
    mqtt: MqttConfig
    cloud: CloudConfig
    lockers: list[LockerConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_lockers(self):
        ids = [lk.id for lk in self.lockers]
        if len(ids) != len(set(ids)):
            raise ValueError("locker ids repeat")
        if self.mqtt.username in ids:
            raise ValueError("the gateway's MQTT username must differ from every locker id")
        return self

    def locker(self, locker_id: str) -> LockerConfig | None:
        """The configured locker with this id, or None."""
        for lk in self.lockers:
            if lk.id == locker_id:
                return lk
        return None


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
