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


def wait_left(session: Session, key: str, *, limit: int, window: float, now: float | None = None) -> float:
    """Seconds until `key` may be counted again (0: it may now), by the same count as `hit`."""
    now = time.time() if now is None else now
    times = list(session.scalars(select(RateHit.at).where(RateHit.key == key, RateHit.at > now - window)
                                 .order_by(RateHit.at)))
    if len(times) < limit:
        return 0.0
    return max(0.0, times[len(times) - limit] + window - now)


def lockout_left(times: list[float], now: float, *, fails: int, first_s: float, max_s: float) -> float:
    """Seconds a key is still locked, from its failure times (ascending): every `fails`-th failure locks it
    for first_s, doubling with each further lockout up to max_s. Refused tries are not failures."""
    k = len(times) // fails
    if k == 0:
        return 0.0
    return max(0.0, times[k * fails - 1] + min(max_s, first_s * 2 ** min(k - 1, 30)) - now)


def lockout_wait(session: Session, key: str, now: float, *, fails: int, first_s: float, max_s: float,
                 forget_s: float) -> float:
    """How long `key` is locked out (0: it may try). Failures are forgiven after forget_s without one."""
    _serialise(session, key)
    times = list(session.scalars(select(RateHit.at).where(RateHit.key == key).order_by(RateHit.at)))
    if times and times[-1] <= now - forget_s:
        session.execute(delete(RateHit).where(RateHit.key == key))
        return 0.0
    return lockout_left(times, now, fails=fails, first_s=first_s, max_s=max_s)


def lockout_fail(session: Session, key: str, now: float) -> None:
    """Count one failure of `key` (call after lockout_wait said 0, in the same transaction)."""
    session.add(RateHit(key=key, at=now))
    session.flush()


def lockout_clear(session: Session, key: str) -> None:
    """Forget the failures of `key` (its own success)."""
    session.execute(delete(RateHit).where(RateHit.key == key))


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
