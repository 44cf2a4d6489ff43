"""Typed settings, read from JINCUN_* environment variables and validated at start-up."""

from __future__ import annotations

import logging
import secrets
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("jincun.cloud")


class Settings(BaseSettings):
    """Cloud service configuration."""

    model_config = SettingsConfigDict(env_prefix="JINCUN_", extra="ignore")

    database_url: str = "sqlite:///./var/cloud.db"
    admin_token: str | None = Field(default=None, min_length=16)
    demo: bool = False
    sms_adapter: Literal["log", "http"] = "log"
    sms_http_url: str | None = None
    sms_http_token: str | None = None
    sms_http_timeout: float = Field(default=10.0, gt=0)
    sms_retry_seconds: float = Field(default=30.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    telemetry_retention_days: int = Field(default=30, ge=1)
    telemetry_max_rows_per_locker: int = Field(default=5000, ge=10)
    dead_letter_max_rows: int = Field(default=100_000, ge=10)
    page_refresh_seconds: int = Field(default=5, ge=1, le=3600)
    migrate_on_start: bool = True

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if not self.admin_token:
            if not self.demo:
                raise ValueError("JINCUN_ADMIN_TOKEN is required (at least 16 characters) unless JINCUN_DEMO=1")
            self.admin_token = secrets.token_urlsafe(24)
            log.warning("demo mode: generated admin token %s", self.admin_token)
        if self.sms_adapter == "http" and not self.sms_http_url:
            raise ValueError("JINCUN_SMS_HTTP_URL is required when JINCUN_SMS_ADAPTER=http")
        return self
