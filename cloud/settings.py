"""Typed settings, read from JINCUN_* environment variables and validated at start-up."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jincun.phone import PHONE_PATTERN
from jincun.weaksecret import weakness

from . import sms_text
from .storage import PG_OPTIONS

log = logging.getLogger("jincun.cloud")


class Settings(BaseSettings):
    """Cloud service configuration."""

    model_config = SettingsConfigDict(env_prefix="JINCUN_", extra="ignore")

    database_url: str = "sqlite:///./var/cloud.db"
    # libpq options of the PostgreSQL connections (storage.PG_OPTIONS); empty sends none, as behind a
    # pooler that refuses them (set random_page_cost on the database instead)
    pg_options: str = PG_OPTIONS
    admin_token: str | None = Field(default=None, min_length=16)
    demo: bool = False
    sms_adapter: Literal["log", "http", "aliyun", "tencent"] = "log"
    sms_http_url: str | None = None
    sms_http_token: str | None = None
    sms_http_timeout: float = Field(default=10.0, gt=0)
    # the provider adapters (aliyun, tencent): the registered signature, a template id per kind
    # (sms_text.KINDS), the account's keys (Alibaba AccessKey ID/secret, Tencent SecretId/SecretKey)
    sms_signature: str = Field(default="进村", min_length=2, max_length=12)
    sms_templates: dict[str, str] = {}
    sms_access_key_id: str | None = None
    sms_access_key_secret: SecretStr | None = None
    sms_app_id: str | None = None
    sms_region: str = "ap-guangzhou"
    sms_endpoint: str | None = None
    # the address villagers reach the cloud at; every SMS links to its /m page
    public_url: str = Field(default="http://localhost:8000", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    sms_retry_seconds: float = Field(default=30.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    telemetry_retention_days: int = Field(default=30, ge=1)
    telemetry_max_rows_per_locker: int = Field(default=5000, ge=10)
    dead_letter_max_rows: int = Field(default=100_000, ge=10)
    page_refresh_seconds: int = Field(default=5, ge=1, le=3600)
    migrate_on_start: bool = True
    jwt_secret: str | None = Field(default=None, min_length=32)
    jwt_minutes: int = Field(default=480, ge=1, le=10080)
    cookie_secure: bool = False
    influx_url: str | None = None
    influx_token: str = ""
    influx_org: str = "-"
    influx_bucket: str = "jincun/autogen"
    influx_query_url: str | None = None
    influx_batch_size: int = Field(default=5000, ge=1, le=100_000)
    influx_flush_ms: int = Field(default=1000, ge=10)
    overdue_days: int = Field(default=7, ge=1, le=60)
    # a parcel the carrier pre-advised and no courier deposited within this is flagged (never delivered)
    never_delivered_hours: int = Field(default=48, ge=1, le=24 * 60)
    reminder_hours: tuple[int, int] = (24, 48)
    sweep_seconds: float = Field(default=60.0, gt=0)
    # PostgreSQL events partitions: months created ahead, and months kept before the current one (older
    # partitions are detached and dropped by the sweep); keep it longer than any gateway holds an item
    events_months_ahead: int = Field(default=3, ge=1, le=24)
    events_retention_months: int = Field(default=24, ge=3, le=240)
    webhook_retry_seconds: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=12, ge=1)
    stale_seconds: int = Field(default=300, ge=10)
    open_limit_per_minute: int = Field(default=3, ge=1)
    open_limit_per_day: int = Field(default=20, ge=1)
    operator_open_limit_per_hour: int = Field(default=10, ge=1)
    code_lookup_limit_per_hour: int = Field(default=30, ge=1)  # per staff member (cloud/guards.py)
    county_open_limit_per_hour: int = Field(default=30, ge=1)  # remote opens, all stations together
    operator_station_limit_per_hour: int = Field(default=3, ge=1)  # distinct stations one operator opens at
    duty_phone: str | None = Field(default=None, pattern=PHONE_PATTERN)  # the county's duty SMS
    # alerts to people (cloud/alerts.py): thresholds, and the optional WeCom/DingTalk group robot
    alert_offline_minutes: int = Field(default=15, ge=1, le=1440)
    alert_low_voltage: float = Field(default=11.0, gt=0, le=60)  # volts at the locker's supply input
    alert_outbox_items: int = Field(default=500, ge=1)  # items waiting at a station's gateway
    alert_outbox_age_s: float = Field(default=1800.0, gt=0)  # age of the oldest of them
    alert_webhook_url: SecretStr | None = None  # the robot's URL holds its key: kept out of logs
    alert_webhook_kind: Literal["wecom", "dingtalk"] = "wecom"
    alert_webhook_secret: SecretStr | None = None  # DingTalk 加签 secret
    command_ttl_seconds: int = Field(default=300, ge=10)
    otp_ttl_seconds: int = Field(default=300, ge=30)
    otp_limit_per_hour: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.admin_token:
            if not self.demo:
                raise ValueError("JINCUN_ADMIN_TOKEN is required (at least 16 characters) unless JINCUN_DEMO=1")
            self.admin_token = secrets.token_urlsafe(24)
            log.warning("demo mode: generated admin token %s", self.admin_token)
        if not self.demo:
            # a guessable token opens the whole county (jincun/weaksecret.py); the demo may use any
            for name, value, n in (("JINCUN_ADMIN_TOKEN", self.admin_token, 16),
                                   ("JINCUN_JWT_SECRET", self.jwt_secret, 32)):
                why = value and weakness(value, min_len=n)
                if why:
                    raise ValueError(f"{name} {why}: use a random value (python -c 'import secrets; "
                                     "print(secrets.token_urlsafe(32))')")
        if not self.jwt_secret:
            # a working secret shared by every worker, derived from a secret the operator must set anyway
            self.jwt_secret = hmac.new(self.admin_token.encode("utf-8"), b"jincun-jwt", hashlib.sha256).hexdigest()
        if self.sms_adapter == "http" and not self.sms_http_url:
            raise ValueError("JINCUN_SMS_HTTP_URL is required when JINCUN_SMS_ADAPTER=http")
        if self.sms_adapter in ("aliyun", "tencent"):
            self._check_provider()
        sms_text.check_fits(signature=self.sms_signature, public_url=self.public_url)
        return self

    @property
    def jwt_key(self) -> str:
        """The JWT signing secret: jwt_secret, which the start-up check fills in when none is set."""
        assert self.jwt_secret is not None
        return self.jwt_secret

    @property
    def sms_style(self) -> sms_text.Style:
        """The signature and link every SMS text carries."""
        return sms_text.Style(signature=self.sms_signature, public_url=self.public_url)

    def _check_provider(self) -> None:
        """A provider adapter needs its keys, a template per kind and the real address of the villagers' page."""
        upper = self.sms_adapter.upper()
        missing = [name for name, value in (("SMS_ACCESS_KEY_ID", self.sms_access_key_id),
                                            ("SMS_ACCESS_KEY_SECRET", self.sms_access_key_secret))
                   if not value]
        if self.sms_adapter == "tencent" and not self.sms_app_id:
            missing.append("SMS_APP_ID")
        if "public_url" not in self.model_fields_set:
            missing.append("PUBLIC_URL")
        if missing:
            raise ValueError(f"JINCUN_SMS_ADAPTER={self.sms_adapter} needs "
                             + ", ".join(f"JINCUN_{m}" for m in missing))
        absent = [k for k in sms_text.KINDS if not self.sms_templates.get(k)]
        unknown = sorted(set(self.sms_templates) - set(sms_text.KINDS))
        if absent or unknown:
            raise ValueError(f"JINCUN_SMS_TEMPLATES for {upper} must name a template id for each of "
                             f"{', '.join(sms_text.KINDS)}" + (f" (missing {', '.join(absent)})" if absent else "")
                             + (f" (unknown {', '.join(unknown)})" if unknown else ""))
