"""Rate limits and leases held in the database, so every worker sees the same counts and locks."""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from .models import Lease, RateHit


def _serialise(session: Session, key: str) -> None:
    """Make concurrent checks of one key take turns (SQLite's BEGIN IMMEDIATE already does)."""
    if session.get_bind().dialect.name == "postgresql":
        lock_id = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})


def hit(session: Session, key: str, *, limit: int, window: float, now: float | None = None) -> bool:
    """Count one action under `key`; False (and nothing counted) if `limit` actions already fall in `window`.

    Holds the key's lock until the caller's transaction ends, so the caller must commit promptly.
    """
    now = time.time() if now is None else now
    _serialise(session, key)
    session.execute(delete(RateHit).where(RateHit.key == key, RateHit.at <= now - window))
    used = session.scalar(select(func.count()).select_from(RateHit)
                          .where(RateHit.key == key, RateHit.at > now - window)) or 0
    if used >= limit:
        return False
    session.add(RateHit(key=key, at=now))
    session.flush()
    return True


def acquire_lease(session: Session, name: str, holder: str, ttl: float, now: float | None = None) -> bool:
    """Take or renew the named lease for `ttl` seconds; False if another holder has it. Caller commits."""
    now = time.time() if now is None else now
    _serialise(session, f"lease:{name}")
    lease = session.get(Lease, name)
    if lease is None:
        session.add(Lease(name=name, holder=holder, until=now + ttl))
        session.flush()
        return True
    if lease.holder != holder and lease.until > now:
        return False
    session.execute(update(Lease).where(Lease.name == name).values(holder=holder, until=now + ttl))
    return True
