"""Limits on staff actions a dishonest insider or a stolen login could abuse, each crossing audited and alarmed.

Code lookups (a live code opens a villager's parcels) are counted per staff member; the county's service
key (the admin token) is a machine, not a person, and is not counted here.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import commands
from .auth import Principal
from .models import Alarm
from .ratelimit import hit
from .settings import Settings

log = logging.getLogger("jincun.cloud.guards")

SERVICE_PRINCIPAL = "admin-token"
ALARM_CODE_LOOKUPS = "code_lookup_limit"


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
        commands.audit(session, who, "code_lookup", station_id)
        return True
    commands.audit(session, who, "code_lookup_refused", station_id, limit=limit)
    raise_alarm(session, station_id=station_id, kind=ALARM_CODE_LOOKUPS, now=now,
                text=f"{who.name} ({who.role}) passed {limit} code lookups an hour")
    return False
