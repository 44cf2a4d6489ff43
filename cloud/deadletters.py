"""Dead letters: ingest items the cloud rejected, kept with their reason whatever they hold."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from .counters import Counters
from .models import DeadLetter
from .storage import transient

log = logging.getLogger("jincun.cloud.deadletters")

# how deep a dead letter keeps an item that nests too deep to write out whole; deeper values become "…"
KEEP_DEPTH = 32
# the text kept when the item itself cannot be stored (a value the database refuses)
KEEP_CHARS = 4000


def printable(text: str) -> str:
    """`text` with what UTF-8 cannot hold (lone surrogates) written as escapes, for answers and logs."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _shallow(value: Any, depth: int) -> Any:
    """A copy of `value` down to `depth` levels of nesting, deeper containers replaced by "…"."""
    if isinstance(value, dict):
        return {k: _shallow(v, depth - 1) for k, v in value.items()} if depth > 0 else "…"
    if isinstance(value, list):
        return [_shallow(v, depth - 1) for v in value] if depth > 0 else "…"
    return value


def writable(raw: Any) -> tuple[Any, str]:
    """The raw item as it can be kept, and as JSON text that UTF-8 can hold (lone surrogates escaped); an
    item nested past KEEP_DEPTH is kept cut there.

    Items that are already storable keep the exact text they always had, so the hash that keeps a replayed
    item from being stored twice does not change.
    """
    try:
        text = json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str)
    except RecursionError:
        raw = _shallow(raw, KEEP_DEPTH)
        text = json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(raw, ensure_ascii=True, sort_keys=True, default=str)
    return raw, text


class DeadLetters:
    """The dead-letter table: one row per rejected raw item and station, the oldest dropped past a bound."""

    def __init__(self, *, counters: Counters, max_rows: int) -> None:
        self.counters = counters
        self.max_rows = max_rows

    def keep(self, session: Session, station_id: str, raw: Any, reason: str) -> None:
        """Store a rejected item in the session's transaction (in a savepoint of its own).

        The item is stored as received when the database takes it, else as text (`{"unstorable": ...}`): a
        lone surrogate, a NUL character or a nesting too deep for the JSON writer rejects the item, never the
        batch. Only a database that is away or busy raises (the batch is then sent again).
        """
        raw, text = writable(raw)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        reason = printable(reason)
        log.warning("rejected item from %s: %s", station_id, reason)
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        stored = raw if isinstance(raw, (dict, list)) else {"raw": text}
        for attempt in (stored, {"unstorable": text[:KEEP_CHARS]}):
            try:
                with session.begin_nested():
                    # unique on the raw item: a replayed bad item is answered the same and stored once
                    session.execute(dialect.insert(DeadLetter.__table__).values(
                        station_id=station_id, raw=attempt, raw_hash=digest, reason=reason, at=time.time(),
                    ).on_conflict_do_nothing(index_elements=["station_id", "raw_hash"]))
                break
            except Exception as exc:
                # refused by the database, or failed before it: a value the driver cannot send (UnicodeEncodeError),
                # a nesting the JSON writer cannot write (RecursionError, wrapped by SQLAlchemy as StatementError)
                if isinstance(exc, DBAPIError) and transient(exc):
                    raise
                self.counters.inc("dead_letters_unstorable")
                why = exc.orig if isinstance(exc, StatementError) else exc
                log.error("dead letter from %s not storable as received: %s: %s", station_id, type(why).__name__,
                          printable(str(why))[:200])
        count = session.scalar(select(func.count()).select_from(DeadLetter)) or 0
        if count > self.max_rows:
            oldest = session.scalars(select(DeadLetter.id).order_by(DeadLetter.id).limit(count - self.max_rows)).all()
            session.execute(DeadLetter.__table__.delete().where(DeadLetter.id.in_(oldest)))
            self.counters.inc("dead_letters_dropped", len(oldest))
