"""Limits on staff actions a dishonest insider or a stolen login could abuse, each crossing audited and alarmed.

Staff logins are throttled per name and per client address: five wrong passwords for one name lock that name
for a minute, twenty from one address (whatever names) lock the address, each lockout twice as long as the
one before up to 16 minutes, forgiven after an hour without a failure. During a lockout even the right
password is refused, so guessing learns nothing; the lockout is short, so locking someone out costs the
attacker a steady stream of tries for minutes of nuisance.

Code lookups (a live code opens a villager's parcels) are counted per staff member; the county's service
key (the admin token) is a machine, not a person, and is not counted here.
"""

from __future__ import annotations

import logging
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from .audit import audit
from .auth import Principal
from .models import Alarm, Command
from .ratelimit import hit, lockout_clear, lockout_fail, lockout_wait
from .settings import Settings

log = logging.getLogger("jincun.cloud.guards")

SERVICE_PRINCIPAL = "admin-token"
ALARM_CODE_LOOKUPS = "code_lookup_limit"
ALARM_OPEN_CAP = "remote_open_limit"


def raise_alarm(session: Session, *, station_id: str, kind: str, text: str, now: float) -> bool:
    """An alarm on the maintenance dashboard, unless the same one is still unacknowledged; True if new."""
    open_one = session.scalar(select(Alarm.id).where(Alarm.station_id == station_id, Alarm.kind == kind,
                                                     Alarm.text == text, Alarm.acked.is_(False)).limit(1))
    if open_one is not None:
        return False
    session.add(Alarm(station_id=station_id, locker_id="-", c=None, kind=kind, at=now, text=text[:300]))
    log.warning("alarm %s at %s: %s", kind, station_id, text)
    return True


def count_code_lookup(session: Session, settings: Settings, who: Principal, station_id: str, now: float) -> bool:
    """Count and audit one code lookup by a staff member; False (audited, alarmed) over the hourly limit.

    The code itself is never written down: the audit line names the station only.
    """
    if who.name == SERVICE_PRINCIPAL:
        return True
    limit = settings.code_lookup_limit_per_hour
    if hit(session, f"codelookup:{who.name}:3600", limit=limit, window=3600.0, now=now):
        audit(session, who, "code_lookup", station_id)
        return True
    audit(session, who, "code_lookup_refused", station_id, limit=limit)
    raise_alarm(session, station_id=station_id, kind=ALARM_CODE_LOOKUPS, now=now,
                text=f"{who.name} ({who.role}) passed {limit} code lookups an hour")
    return False


class LockoutRule(TypedDict):
    """How many failures lock a key out, for how long at first and at most, and when they are forgiven."""

    fails: int
    first_s: float
    max_s: float
    forget_s: float


LOGIN_BY_NAME: LockoutRule = {"fails": 5, "first_s": 60.0, "max_s": 960.0, "forget_s": 3600.0}
LOGIN_BY_ADDR: LockoutRule = {"fails": 20, "first_s": 60.0, "max_s": 960.0, "forget_s": 3600.0}


def login_locked(session: Session, name: str, addr: str, now: float) -> int:
    """Whole seconds until `name` may try to log in from `addr`; 0 when it may now."""
    left = max(lockout_wait(session, f"loginfail:addr:{addr}", now, **LOGIN_BY_ADDR),
               lockout_wait(session, f"loginfail:name:{name.lower()}", now, **LOGIN_BY_NAME))
    return int(left) + (left > int(left))


def login_result(session: Session, name: str, addr: str, ok: bool, now: float) -> None:
    """Count a failed login against the name and the address; a success clears only the name's count."""
    if ok:
        lockout_clear(session, f"loginfail:name:{name.lower()}")
        return
    lockout_fail(session, f"loginfail:name:{name.lower()}", now)
    lockout_fail(session, f"loginfail:addr:{addr}", now)


def stations_opened_by(session: Session, operator: str, since: float) -> set[str]:
    """The stations at which `operator` queued remote opens since `since`."""
    return set(session.scalars(select(Command.station_id).where(
        Command.op == "open", Command.issued_by == operator, Command.issued_at > since).distinct()))


def open_cap_crossed(session: Session, settings: Settings, who: Principal, station_id: str, key: str, limit: int,
                     now: float) -> None:
    """A remote-open cap was crossed: an alarm on the dashboard, told to the station's maintenance phone (or the
    county's duty phone) once per episode by the alert sweep (cloud/alerts.py)."""
    scope = key.split(":")[1]
    text = f"remote opens refused: {who.name} ({who.role}) reached the {scope} limit of {limit}"
    raise_alarm(session, station_id=station_id, kind=ALARM_OPEN_CAP, text=text, now=now)
