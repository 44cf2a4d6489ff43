"""The SMS Notifier port, its adapters (log, HTTP; the providers' in sms_providers) and the outbox dispatcher.

The texts and their templates are built in sms_text; the outbox is the `notifications` table.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import httpx
import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from jincun.logmask import mask_codes
from jincun.phone import mask_phone

from .constants import NOTIFY_MAX_ATTEMPTS
from .counters import Counters
from .errors import NotifierError, NotifierThrottled
from .models import Notification
from .settings import Settings
from .sms_text import Message
from .storage import among, fixed_rows, pg_rows

log = logging.getLogger("jincun.cloud.sms")


class Notifier(Protocol):
    """Sends one SMS; raises NotifierError when the carrier does not take it (NotifierThrottled: not now).

    `text` is what the villager reads; `message` carries the same facts as a template kind and its
    parameters, which the providers' adapters send instead of the text.
    """

    def send(self, phone: str, text: str, message: Message | None = None) -> None: ...


class LogNotifier:
    """Writes the message to the log instead of a carrier (the outbox still shows it).

    Outside demo mode the code in it is printed as ****** and the number as 139****1234: a log is read by
    more people than the outbox.
    """

    def __init__(self, *, demo: bool = False) -> None:
        self.demo = demo

    def send(self, phone: str, text: str, message: Message | None = None) -> None:
        log.info("SMS to %s: %s", phone if self.demo else mask_phone(phone), text if self.demo else mask_codes(text))


class HttpNotifier:
    """POSTs {"phone","text"} (and "template","params","ref" of a templated message) as JSON to an SMS
    gateway with a bearer token."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(headers=headers, timeout=timeout, transport=transport)
        self._url = url

    def send(self, phone: str, text: str, message: Message | None = None) -> None:
        body: dict = {"phone": phone, "text": text}
        if message is not None:
            body |= {"template": message.kind, "params": dict(message.params), "ref": message.ref}
        try:
            resp = self._client.post(self._url, json=body)
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
    if settings.sms_adapter in ("aliyun", "tencent"):
        from . import sms_providers as P
        secret = settings.sms_access_key_secret.get_secret_value() if settings.sms_access_key_secret else ""
        if settings.sms_adapter == "aliyun":
            return P.AliyunNotifier(access_key_id=settings.sms_access_key_id or "", access_key_secret=secret,
                                    endpoint=settings.sms_endpoint or P.ALIYUN_ENDPOINT,
                                    signature=settings.sms_signature, templates=settings.sms_templates,
                                    timeout=settings.sms_http_timeout)
        return P.TencentNotifier(secret_id=settings.sms_access_key_id or "", secret_key=secret,
                                 app_id=settings.sms_app_id or "", region=settings.sms_region,
                                 endpoint=settings.sms_endpoint or P.TENCENT_ENDPOINT,
                                 signature=settings.sms_signature, templates=settings.sms_templates,
                                 timeout=settings.sms_http_timeout)
    return LogNotifier(demo=settings.demo)


def queued(phone: str, message: Message, *, ref: str | None = None, now: float | None = None) -> dict:
    """An outbox row (the `notifications` columns) for a message to send."""
    return {"phone": phone, "text": message.text, "kind": message.kind, "params": dict(message.params),
            "status": "queued", "attempts": 0, "ref": ref, "created_at": time.time() if now is None else now}


def deliver_pending(factory: sessionmaker[Session], notifier: Notifier, counters: Counters, *,
                    limit: int = 500, max_failures: int = 3, chunk: int = 50) -> int:
    """Send queued messages; returns how many were sent.

    Messages are claimed `chunk` at a time (SKIP LOCKED on PostgreSQL, so two workers never send the same
    one) and their results committed together. A failed message stays queued (until NOTIFY_MAX_ATTEMPTS) and
    goes behind messages tried less often, so one bad number cannot hold up the rest; after `max_failures`
    failures the carrier is assumed down and the round ends.
    """
    sent = failures = 0
    tried = 0
    retry_later: list[int] = []
    while tried < limit:
        with factory() as session:
            # a fixed statement (driver SQL on PostgreSQL): the dispatcher runs beside the ingest in the same worker
            asked = min(chunk, limit - tried)
            batch = fixed_rows(session, _CLAIMS[session.get_bind().dialect.name == "postgresql"],
                               {"skip": retry_later, "n": asked}, named=True)
            if not batch:
                return sent
            results: list[dict] = []
            stop = False
            for msg in batch:
                tried += 1
                attempts = msg.attempts + 1
                message = (Message(msg.text, msg.kind, msg.params or {}, key=str(msg.id), ref=msg.ref)
                           if msg.kind else None)
                try:
                    notifier.send(msg.phone, msg.text, message)
                except NotifierError as exc:
                    failed = attempts >= NOTIFY_MAX_ATTEMPTS
                    results.append({"nid": msg.id, "n_status": "failed" if failed else "queued",
                                    "n_attempts": attempts, "n_sent_at": None, "n_error": str(exc)[:500]})
                    if failed:
                        counters.inc("sms_failed")
                    counters.inc("sms_errors")
                    if isinstance(exc, NotifierThrottled):
                        counters.inc("sms_throttled")
                    log.warning("SMS %s to %s not sent (attempt %d): %s", msg.id, mask_phone(msg.phone), attempts, exc)
                    retry_later.append(msg.id)
                    failures += 1
                    if failures >= max_failures:
                        stop = True
                        break
                    continue
                results.append({"nid": msg.id, "n_status": "sent", "n_attempts": attempts, "n_sent_at": time.time(),
                                "n_error": _KEEP})
                counters.inc("sms_sent")
                sent += 1
            _record(session, results)
            session.commit()
            # fewer than asked: nothing else was claimable, so no second claim (and transaction) to find that
            # out; what is queued meanwhile comes with its own dispatch request (DispatchGate goes round again)
            if stop or len(batch) < asked:
                return sent
    return sent


_KEEP = object()


def _claim(pg: bool):
    """The queued messages in the order they are tried, locked, skipping ones another worker holds and the ones
    that failed earlier in this round (sent ones are no longer queued)."""
    table = Notification.__table__
    return (select(table.c.id, table.c.phone, table.c.text, table.c.kind, table.c.params, table.c.ref,
                   table.c.attempts)
            .where(table.c.status == "queued", ~among(table.c.id, "skip", pg=pg))
            .order_by(table.c.attempts, table.c.id).limit(bindparam("n")).with_for_update(skip_locked=True))


_CLAIMS = {pg: _claim(pg) for pg in (False, True)}
_PG_SENT = ("UPDATE notifications AS t SET status = u.n_status, attempts = u.n_attempts, sent_at = u.n_sent_at "
            "FROM json_to_recordset(CAST(%(rows)s AS json)) AS u(nid integer, n_status text, n_attempts integer, "
            "n_sent_at double precision) WHERE t.id = u.nid AND t.id = ANY(CAST(%(ids)s AS integer[]))")


def _record(session: Session, results: list[dict]) -> None:
    """Write the outcome of a chunk: one statement per kind of outcome, run for all its messages."""
    table = Notification.__table__
    ok = [r for r in results if r["n_error"] is _KEEP]
    bad = [r for r in results if r["n_error"] is not _KEEP]
    if ok and session.get_bind().dialect.name == "postgresql":
        # the sent ones as one statement (they are locked by the claim)
        # the ids as an array too, so the rows are found through the primary key's index (see rows._update_pg)
        pg_rows(session, _PG_SENT, {"rows": orjson.dumps([{k: v for k, v in r.items() if k != "n_error"}
                                                          for r in ok]).decode("utf-8"),
                                    "ids": [r["nid"] for r in ok]})
    elif ok:
        session.execute(update(table).where(table.c.id == bindparam("nid")).values(
            status=bindparam("n_status"), attempts=bindparam("n_attempts"), sent_at=bindparam("n_sent_at")),
            [{k: v for k, v in r.items() if k != "n_error"} for r in ok])
    if bad:
        session.execute(update(table).where(table.c.id == bindparam("nid")).values(
            status=bindparam("n_status"), attempts=bindparam("n_attempts"), last_error=bindparam("n_error")),
            [{k: v for k, v in r.items() if k != "n_sent_at"} for r in bad])


def deliver_pending_logged(factory: sessionmaker[Session], notifier: Notifier, counters: Counters) -> None:
    """deliver_pending for a background task: database trouble is logged and counted, never raised."""
    try:
        deliver_pending(factory, notifier, counters)
    except SQLAlchemyError as exc:
        counters.inc("sms_dispatch_errors")
        log.error("SMS dispatch failed on the database: %s", exc)


class DispatchGate:
    """At most one outbox dispatch at a time per process; a request made meanwhile makes it run once more.

    Every ingest batch that queues SMS asks for a dispatch; without the gate, concurrent batches would run
    as many dispatchers, each claiming and committing the same outbox chunk by chunk, competing with the
    ingest for the worker's CPU and connections.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def run(self, factory: sessionmaker[Session], notifier: Notifier, counters: Counters) -> None:
        """Dispatch now, or leave it to the dispatch already running (which then goes round again)."""
        with self._lock:
            if self._running:
                self._again = True
                counters.inc("sms_dispatch_coalesced")
                return
            self._running = True
        try:
            while True:
                self._again = False
                deliver_pending_logged(factory, notifier, counters)
                with self._lock:
                    if not self._again:
                        self._running = False
                        return
        finally:
            with self._lock:
                self._running = False
