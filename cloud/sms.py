"""The SMS Notifier port, its adapters (log, HTTP) and the outbox dispatcher over `notifications`."""

from __future__ import annotations

import logging
import time
from typing import Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .constants import NOTIFY_MAX_ATTEMPTS
from .counters import Counters
from .errors import NotifierError
from .models import Notification
from .settings import Settings

log = logging.getLogger("jincun.cloud.sms")


class Notifier(Protocol):
    """Sends one SMS; raises NotifierError when the carrier does not take it."""

    def send(self, phone: str, text: str) -> None: ...


class LogNotifier:
    """Writes the message to the log instead of a carrier (the outbox still shows it)."""

    def send(self, phone: str, text: str) -> None:
        log.info("SMS to %s: %s", phone, text)


class HttpNotifier:
    """POSTs {"phone","text"} as JSON to an SMS gateway with a bearer token."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(headers=headers, timeout=timeout, transport=transport)
        self._url = url

    def send(self, phone: str, text: str) -> None:
        try:
            resp = self._client.post(self._url, json={"phone": phone, "text": text})
        except httpx.HTTPError as exc:
            raise NotifierError(f"SMS gateway unreachable: {exc}") from exc
        if resp.status_code // 100 != 2:
            raise NotifierError(f"SMS gateway answered {resp.status_code}: {resp.text[:200]}")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def make_notifier(settings: Settings) -> Notifier:
    """The adapter chosen by settings."""
    if settings.sms_adapter == "http":
        return HttpNotifier(settings.sms_http_url or "", settings.sms_http_token, settings.sms_http_timeout)
    return LogNotifier()


def sms_text(*, waybill: str, carrier: str, station: str, locker: str, c: int | None, code: str) -> str:
    """The pickup SMS a villager receives."""
    slot = f"{c}号格口" if c is not None else ""
    return (f"【进村】您的包裹(运单号 {waybill}, {carrier})已存入{station}快递柜{locker}号柜{slot}，"
            f"取件码 {code}，凭码免费取件。")


def deliver_pending(factory: sessionmaker[Session], notifier: Notifier, counters: Counters, *,
                    limit: int = 500, max_failures: int = 3, chunk: int = 50) -> int:
    """Send queued messages; returns how many were sent.

    Messages are claimed `chunk` at a time (SKIP LOCKED on PostgreSQL, so two workers never send the same
    one) and their results committed together. A failed message stays queued (until NOTIFY_MAX_ATTEMPTS) and
    goes behind messages tried less often, so one bad number cannot hold up the rest; after `max_failures`
    failures the carrier is assumed down and the round ends.
    """
    sent = failures = 0
    tried: set[int] = set()
    while len(tried) < limit:
        with factory() as session:
            stmt = (select(Notification).where(Notification.status == "queued")
                    .order_by(Notification.attempts, Notification.id).limit(min(chunk, limit - len(tried))))
            if tried:
                stmt = stmt.where(Notification.id.not_in(tried))
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            batch = session.scalars(stmt).all()
            if not batch:
                return sent
            for msg in batch:
                tried.add(msg.id)
                msg.attempts += 1
                try:
                    notifier.send(msg.phone, msg.text)
                except NotifierError as exc:
                    msg.last_error = str(exc)[:500]
                    if msg.attempts >= NOTIFY_MAX_ATTEMPTS:
                        msg.status = "failed"
                        counters.inc("sms_failed")
                    counters.inc("sms_errors")
                    log.warning("SMS %s to %s not sent (attempt %d): %s", msg.id, msg.phone, msg.attempts, exc)
                    failures += 1
                    if failures >= max_failures:
                        session.commit()
                        return sent
                    continue
                msg.status = "sent"
                msg.sent_at = time.time()
                counters.inc("sms_sent")
                sent += 1
            session.commit()
    return sent


def deliver_pending_logged(factory: sessionmaker[Session], notifier: Notifier, counters: Counters) -> None:
    """deliver_pending for a background task: database trouble is logged and counted, never raised."""
    try:
        deliver_pending(factory, notifier, counters)
    except SQLAlchemyError as exc:
        counters.inc("sms_dispatch_errors")
        log.error("SMS dispatch failed on the database: %s", exc)
