"""Recipient consent to locker delivery (2024 rules): a port, the cloud adapter with a local cache, a fixed adapter.

Offline policy: a cached answer younger than `terminal.consent_cache_s` is used as is. With no usable
answer the result is `unknown`, and the terminal then needs the courier to confirm the recipient agreed
(recorded with the parcel), or refuses the deposit when `terminal.consent_offline` is `refuse`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Protocol

import httpx

from jincun.phone import mask_phone

from .cloudhttp import cloud_client
from .config import CloudConfig
from .counters import Counters
from .stationdb import Outbox

log = logging.getLogger("jincun.gateway.consent")

CONSENT_PATH = "/api/v1/gateway/recipients/{phone}/consent"
CACHE_MAX = 20_000


@dataclass(frozen=True)
class Consent:
    """consent: granted | refused | unknown; source: cloud | cache | none."""

    consent: str
    door_help: bool
    source: str


class ConsentPort(Protocol):
    async def check(self, phone: str) -> Consent: ...


class FixedConsent:
    """Answers from a dict (tests, and stations without a cloud)."""

    def __init__(self, answers: dict[str, tuple[str, bool]] | None = None) -> None:
        self.answers = answers or {}

    async def check(self, phone: str) -> Consent:
        c, help_ = self.answers.get(phone, ("unknown", False))
        return Consent(c, help_, "cloud")


class CloudConsent:
    """Asks the cloud, remembers the answer, and falls back to it while the cloud is unreachable."""

    def __init__(self, cfg: CloudConfig, outbox: Outbox, counters: Counters, *, cache_s: float,
                 transport: httpx.AsyncBaseTransport | None = None, timeout_s: float = 3.0) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.counters = counters
        self.cache_s = cache_s
        self.transport = transport
        self.timeout_s = timeout_s

    async def _ask(self, phone: str) -> Consent | None:
        try:
            async with cloud_client(self.cfg, self.transport, self.timeout_s) as client:
                resp = await client.get(CONSENT_PATH.format(phone=phone))
            if resp.status_code != 200:
                raise ValueError(f"HTTP {resp.status_code}")
            data = resp.json()
            consent = data.get("consent")
            if consent not in ("granted", "refused", "unknown"):
                raise ValueError(f"bad consent {consent!r}")
            return Consent(consent, bool(data.get("door_help")), "cloud")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            self.counters.inc("consent_cloud_failures")
            log.warning("consent of %s not known from the cloud: %s", mask_phone(phone), exc)
            return None

    async def check(self, phone: str) -> Consent:
        got = await self._ask(phone)
        if got is not None:
            def save(conn: sqlite3.Connection) -> None:
                conn.execute("INSERT INTO consent_cache VALUES (?,?,?,?) ON CONFLICT(phone) DO UPDATE SET "
                             "consent=excluded.consent, door_help=excluded.door_help, at=excluded.at",
                             (phone, got.consent, int(got.door_help), time.time()))
                conn.execute("DELETE FROM consent_cache WHERE phone IN (SELECT phone FROM consent_cache "
                             "ORDER BY at DESC LIMIT -1 OFFSET ?)", (CACHE_MAX,))
            await self.outbox.run(save)
            return got
        row = await self.outbox.query(lambda conn: conn.execute(
            "SELECT consent, door_help, at FROM consent_cache WHERE phone=?", (phone,)).fetchone())
        if row is not None and time.time() - row[2] < self.cache_s:
            return Consent(row[0], bool(row[1]), "cache")
        return Consent("unknown", False, "none")
