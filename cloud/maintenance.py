"""Maintenance reads and actions: alarms and their acknowledgement, command history, gateway health reports,
sign-off flags and the audit log. A station agent sees their own station only; every action is audited.

Shared by the staff API and the maintenance pages, so both apply the same scope and write the same audit.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import commands
from .errors import NotFound
from .models import Alarm, AuditEntry, Command, GatewayHealth, Locker, SignoffFlag
from .principal import Principal


def _scope(who: Principal, station: str | None) -> str | None:
    """The station a caller may look at: a station agent's own, whatever was asked."""
    return who.station_id if who.role == "station_agent" else station


def list_alarms(session: Session, who: Principal, *, station: str | None = None, open_only: bool = True,
                limit: int = 200) -> list[Alarm]:
    """Alarms, newest first."""
    stmt = select(Alarm).order_by(Alarm.at.desc(), Alarm.id.desc()).limit(limit)
    if station := _scope(who, station):
        stmt = stmt.where(Alarm.station_id == station)
    if open_only:
        stmt = stmt.where(Alarm.acked.is_(False))
    return list(session.scalars(stmt).all())


def ack_alarm(session: Session, who: Principal, *, alarm_id: int) -> Alarm:
    """Acknowledge an alarm (idempotent; audited once); NotFound for another station's alarm."""
    alarm = session.get(Alarm, alarm_id)
    if alarm is None or (who.role == "station_agent" and alarm.station_id != who.station_id):
        raise NotFound(f"no alarm {alarm_id}")
    if not alarm.acked:
        alarm.acked, alarm.acked_by, alarm.acked_at = True, who.name, time.time()
        commands.audit(session, who, "alarm_ack", f"{alarm.station_id}/{alarm.locker_id}/{alarm.id}", None,
                       kind=alarm.kind)
    return alarm


def gateway_reports(session: Session, who: Principal) -> list[GatewayHealth]:
    """The latest health report of each station's gateway, by station."""
    stmt = select(GatewayHealth).order_by(GatewayHealth.station_id)
    if who.role == "station_agent":
        stmt = stmt.where(GatewayHealth.station_id == who.station_id)
    return list(session.scalars(stmt).all())


def lockers_in_service(session: Session, reports: list[GatewayHealth]) -> dict[str, tuple[int, int]]:
    """Each report's lockers online and in all, by station, without the lockers retired in the cloud.

    A gateway that has pulled the retirement counts only its lockers in service; an older one counts every
    locker of its station.json, a retired one too. Its count is taken down by the station's retired lockers,
    at most by how far it exceeds the lockers in service (a report that left them out already is not taken
    down twice), and its online count by the retired lockers the cloud last heard as online."""
    ids = [g.station_id for g in reports]
    active: dict[str, int] = {}
    retired: dict[str, int] = {}
    retired_online: dict[str, int] = {}
    for station_id, is_active, online in session.execute(
            select(Locker.station_id, Locker.active, Locker.online).where(Locker.station_id.in_(ids))):
        if is_active:
            active[station_id] = active.get(station_id, 0) + 1
        else:
            retired[station_id] = retired.get(station_id, 0) + 1
            retired_online[station_id] = retired_online.get(station_id, 0) + (online == "online")
    out = {}
    for g in reports:
        sid = g.station_id
        total = g.lockers_total - min(retired.get(sid, 0), max(0, g.lockers_total - active.get(sid, 0)))
        out[sid] = (max(0, min(total, g.lockers_online - retired_online.get(sid, 0))), total)
    return out


def list_commands(session: Session, who: Principal, *, station: str | None = None, op: str | None = None,
                  locker: str | None = None, limit: int = 100) -> list[Command]:
    """Commands with their acknowledgement, newest first."""
    stmt = select(Command).order_by(Command.cursor.desc()).limit(limit)
    if station := _scope(who, station):
        stmt = stmt.where(Command.station_id == station)
    if op:
        stmt = stmt.where(Command.op == op)
    if locker:
        stmt = stmt.where(Command.locker_id == locker)
    return list(session.scalars(stmt).all())


def resolve_flag(session: Session, who: Principal, *, flag_id: int, reason: str) -> SignoffFlag:
    """Close a fake sign-off flag after checking it (audited)."""
    flag = session.get(SignoffFlag, flag_id)
    if flag is None:
        raise NotFound(f"no flag {flag_id}")
    flag.resolved = True
    commands.audit(session, who, "flag_resolved", str(flag_id), reason)
    return flag


def audit_entries(session: Session, *, limit: int = 100) -> list[dict]:
    """The audit log, newest first."""
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
    return [{"at": r.at, "actor": r.actor, "role": r.role, "action": r.action, "target": r.target,
             "reason": r.reason, "detail": r.detail} for r in rows]
