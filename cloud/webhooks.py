"""Carrier status webhooks: queued in the ingest transaction, signed with HMAC-SHA256, retried with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import namedtuple

import httpx
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .counters import Counters
from .models import ApiClient, Parcel, WebhookDelivery
from .storage import fixed_rows

log = logging.getLogger("jincun.cloud.webhooks")
SIGNATURE_HEADER = "X-Jincun-Signature"
TIMESTAMP_HEADER = "X-Jincun-Timestamp"
MAX_BACKOFF = 3600.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 over `timestamp.body`; receivers recompute it and compare."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# the carriers' API clients that take status webhooks (read once per ingest batch)
HOOKED_CLIENTS = select(ApiClient.id, ApiClient.carrier_code).where(ApiClient.active.is_(True),
                                                                    ApiClient.webhook_url.is_not(None))


_Hooked = namedtuple("_Hooked", "id carrier_code")


def prime_clients(cache: dict, rows) -> None:
    """Fill an ingest batch's cache of webhook clients from (id, carrier_code) pairs read with its look-ups."""
    cache[None] = []
    for client_id, carrier in rows:
        cache.setdefault(carrier, []).append(_Hooked(client_id, carrier))


def enqueue_status(session: Session, parcel: Parcel, status: str, at: float, *, clients: dict | None = None) -> int:
    """Queue a status webhook for every client of the parcel's carrier that has one; returns how many.

    `clients`: an ingest batch's cache of the clients with a webhook (empty until first used)."""
    if not parcel.carrier:
        return 0
    # within one ingest batch the clients with a webhook are looked up once, for all carriers together
    cache = clients
    if cache is not None:
        if not cache:
            prime_clients(cache, fixed_rows(session, HOOKED_CLIENTS))
        found = cache.get(parcel.carrier, ())
    else:
        found = session.execute(select(ApiClient.id).where(ApiClient.carrier_code == parcel.carrier,
                                                             ApiClient.active.is_(True),
                                                             ApiClient.webhook_url.is_not(None))).all()
    now = time.time()
    for client in found:
        session.add(WebhookDelivery(client_id=client.id, status="queued", attempts=0, next_at=now, created_at=now,
                                    payload={"event": "parcel.status", "waybill": parcel.waybill,
                                             "ref": parcel.ref, "status": status, "at": at,
                                             "station": parcel.station_id, "direction": parcel.direction}))
    return len(found)


def backoff(attempts: int, base: float) -> float:
    """Seconds to wait after `attempts` failures: doubling from `base`, capped at an hour."""
    return min(base * (2 ** (attempts - 1)), MAX_BACKOFF)


def deliver_due(factory: sessionmaker[Session], counters: Counters, *, base: float, max_attempts: int,
                transport: httpx.BaseTransport | None = None, limit: int = 100, now: float | None = None) -> int:
    """POST due deliveries; returns how many were accepted (2xx). Two workers never send the same row."""
    sent = 0
    # the client (and its TLS context, costly to build) only once there is something to send
    client: httpx.Client | None = None
    try:
        for _ in range(limit):
            with factory() as session:
                t = time.time() if now is None else now
                stmt = (select(WebhookDelivery).where(WebhookDelivery.status == "queued",
                                                      WebhookDelivery.next_at <= t)
                        .order_by(WebhookDelivery.next_at, WebhookDelivery.id).limit(1))
                if session.get_bind().dialect.name == "postgresql":
                    stmt = stmt.with_for_update(skip_locked=True)
                row = session.scalars(stmt).first()
                if row is None:
                    return sent
                target = session.get(ApiClient, row.client_id)
                row.attempts += 1
                if target is None or not target.webhook_url or not target.active:
                    row.status, row.last_error = "dropped", "client has no webhook any more"
                    counters.inc("webhooks_dropped")
                    session.commit()
                    continue
                body = json.dumps({"id": row.id, **row.payload}, ensure_ascii=False, sort_keys=True).encode()
                stamp = str(int(time.time()))
                headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                           SIGNATURE_HEADER: sign(target.webhook_secret or "", stamp, body)}
                if client is None:
                    client = httpx.Client(timeout=10.0, transport=transport)
                try:
                    resp = client.post(target.webhook_url, content=body, headers=headers)
                    error = None if resp.status_code // 100 == 2 else f"answered {resp.status_code}"
                except httpx.HTTPError as exc:
                    error = f"unreachable: {exc}"
                if error is None:
                    row.status, row.delivered_at, row.last_error = "delivered", time.time(), None
                    counters.inc("webhooks_delivered")
                    sent += 1
                else:
                    row.last_error = error[:500]
                    counters.inc("webhook_errors")
                    if row.attempts >= max_attempts:
                        row.status = "failed"
                        counters.inc("webhooks_failed")
                    else:
                        row.next_at = t + backoff(row.attempts, base)
                    log.warning("webhook %s to client %s failed (attempt %d): %s", row.id, row.client_id,
                                row.attempts, error)
                session.commit()
    finally:
        if client is not None:
            client.close()
    return sent


def deliver_due_logged(factory: sessionmaker[Session], counters: Counters, *, base: float,
                       max_attempts: int) -> None:
    """deliver_due for a background loop: database trouble is logged and counted, never raised."""
    try:
        deliver_due(factory, counters, base=base, max_attempts=max_attempts)
    except SQLAlchemyError as exc:
        counters.inc("webhook_dispatch_errors")
        log.error("webhook dispatch failed on the database: %s", exc)
