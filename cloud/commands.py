"""Downlink commands (docs/protocol.md §5.2, §5.3): authorised, rate-limited, audited, queued per station."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import constants as K
from . import guards
from .audit import audit
from .errors import CommandRefused, NotFound
from .models import Command, Compartment, Locker, PickupCode, Station
from .principal import Principal
from .ratelimit import hit
from .settings import Settings

log = logging.getLogger("jincun.cloud.commands")

OPS_NEEDING_REASON = ("open", "disable", "enable")
ROLES_FOR_OP = {
    "open": ("admin", "maintenance"),
    "disable": ("admin", "maintenance", "station_agent"),
    "enable": ("admin", "maintenance", "station_agent"),
    "rebirth": ("admin", "maintenance", "station_agent"),
    "fw_rollout": ("admin", "maintenance"),
    "config": ("admin",),
    "code_sync": ("admin", "maintenance", "station_agent", "recipient"),
    # a villager's door-to-door choice, and an overdue parcel going back to its carrier (the lifecycle sweep)
    "assist": ("admin", "maintenance", "station_agent", "recipient"),
    "return": ("admin",),
}


def new_command_id() -> str:
    """A fresh command id (fits `[A-Za-z0-9_-]{1,24}`)."""
    return "k-" + secrets.token_hex(8)


def issue(session: Session, settings: Settings, who: Principal, *, station_id: str, op: str,
          locker: str | None = None, c: int | None = None, reason: str | None = None,
          extra: dict[str, Any] | None = None, ttl: float | None = None) -> Command:
    """Check role, target, reason and limits, then queue the command and audit it. Caller commits."""
    if op not in K.COMMAND_OPS:
        raise CommandRefused(422, f"unknown op {op}", key="unknown_op")
    if who.role not in ROLES_FOR_OP[op]:
        raise CommandRefused(403, f"role {who.role} may not send {op}", key="role_may_not", op=op)
    if who.role == "station_agent" and who.station_id != station_id:
        raise CommandRefused(403, "a station agent acts only on their own station", key="own_station")
    station = session.get(Station, station_id)
    if station is None:
        raise NotFound(f"no station {station_id}")
    if op in OPS_NEEDING_REASON:
        if not reason or not reason.strip():
            raise CommandRefused(422, f"{op} needs a reason", key="needs_reason", op=op)
        if locker is None or c is None:
            raise CommandRefused(422, f"{op} needs a locker and a compartment", key="needs_compartment",
                                  op=op)
    if locker is not None and session.get(Locker, (station_id, locker)) is None:
        raise CommandRefused(422, f"locker {locker} is not registered for station {station_id}", key="no_locker",
                             locker=locker)
    if c is not None and locker is not None and session.scalar(select(Compartment.id).where(
            Compartment.station_id == station_id, Compartment.locker_id == locker, Compartment.n == c)) is None:
        raise CommandRefused(422, f"locker {locker} has no compartment {c}", key="no_compartment_n",
                             locker=locker, comp=c)
    now = time.time()
    if op == "open":
        # the cloud's limits sit at or below the gateway's own (3 a minute, 20 a day per station)
        checks = [(f"open:station:{station_id}:60", settings.open_limit_per_minute, 60.0),
                  (f"open:station:{station_id}:86400", settings.open_limit_per_day, 86400.0),
                  (f"open:operator:{who.name}:3600", settings.operator_open_limit_per_hour, 3600.0)]
        # and across the county: a county-wide hourly cap, and a cap on the stations one operator opens doors
        # at in an hour, so neither a stolen login nor a batch of freshly made operators can open in bulk
        checks.append(("open:county:3600", settings.county_open_limit_per_hour, 3600.0))
        spread = guards.stations_opened_by(session, who.name, now - 3600.0)
        if station_id not in spread and len(spread) >= settings.operator_station_limit_per_hour:
            _refuse_open(session, settings, who, station_id, f"{station_id}/{locker}/{c}", reason,
                         f"open:operator-stations:{who.name}:3600", settings.operator_station_limit_per_hour, now)
        for key, limit, window in checks:
            if not hit(session, key, limit=limit, window=window, now=now):
                _refuse_open(session, settings, who, station_id, f"{station_id}/{locker}/{c}", reason, key, limit,
                             now)
    payload: dict[str, Any] = {}
    if locker is not None:
        payload["locker"] = locker
    if c is not None:
        payload["c"] = c
    if op in ("open", "disable", "enable"):
        payload.update(by=who.name, why=(reason or "").strip()[: K.MAX_REASON])
    payload.update(extra or {})
    cmd = Command(cmd_id=new_command_id(), station_id=station_id, locker_id=locker, op=op, payload=payload,
                  issued_by=who.name, reason=reason, issued_at=now,
                  expires_at=now + (ttl or settings.command_ttl_seconds), status="queued")
    session.add(cmd)
    session.flush()
    audit(session, who, f"command_{op}", f"{station_id}/{locker or '-'}/{c if c is not None else '-'}", reason,
          cmd_id=cmd.cmd_id)
    log.info("%s (%s) queued %s %s for %s/%s/%s", who.name, who.role, op, cmd.cmd_id, station_id, locker, c)
    return cmd


def _refuse_open(session: Session, settings: Settings, who: Principal, station_id: str, target: str,
                 reason: str | None, key: str, limit: int, now: float) -> None:
    """Audit a refused remote open, raise the alarm (dashboard and duty phone), then refuse with 429."""
    audit(session, who, "open_refused", target, reason, limit=key)
    guards.open_cap_crossed(session, settings, who, station_id, key, limit, now)
    raise CommandRefused(429, f"remote open limit reached ({limit}: {key.split(':')[1]})", key="open_limit",
                         limit=limit)


def wire(cmd: Command) -> dict[str, Any]:
    """A command as the gateway receives it (§5.2)."""
    return {"cursor": cmd.cursor, "id": cmd.cmd_id, "op": cmd.op, **cmd.payload,
            "issued_at": int(cmd.issued_at), "expires_at": int(cmd.expires_at)}


def pending(session: Session, *, station_id: str, after: int, now: float | None = None) -> list[dict[str, Any]]:
    """Unexpired, unacknowledged commands for a station with a cursor above `after`."""
    now = time.time() if now is None else now
    rows = session.scalars(select(Command).where(Command.station_id == station_id, Command.cursor > after,
                                                 Command.expires_at > now, Command.status == "queued")
                           .order_by(Command.cursor).limit(K.COMMANDS_PAGE)).all()
    return [wire(c) for c in rows]


def acknowledge(session: Session, *, station_id: str, cmd_id: str, ok: bool, err: str | None,
                at: float | None) -> Command:
    """Record the gateway's result once; a repeated ack changes nothing. Caller commits."""
    cmd = session.scalar(select(Command).where(Command.cmd_id == cmd_id))
    if cmd is None or cmd.station_id != station_id:
        # another station's command id is answered like an unknown one: nothing to learn from it
        raise NotFound(f"no command {cmd_id} for station {station_id}")
    if cmd.status != "queued":
        return cmd
    cmd.status = "done" if ok else "failed"
    cmd.ack_ok, cmd.ack_err, cmd.ack_at = ok, (None if ok else err), at or time.time()
    if cmd.op == "code_sync" and ok:
        _activate_synced_code(session, cmd)
    return cmd


def _activate_synced_code(session: Session, cmd: Command) -> None:
    """The station now holds the replacement: the recipient's older codes at this station are retired."""
    body = cmd.payload
    for code in session.scalars(select(PickupCode).where(PickupCode.station_id == cmd.station_id,
                                                         PickupCode.phone == body["phone"],
                                                         PickupCode.used.is_(False))).all():
        if code.code != body["code"]:
            code.used = True
