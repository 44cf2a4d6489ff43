"""Parcel lifecycle sweeps: reminders at 24 h and 48 h, overdue after N days (then the return flow),
replacement codes, and fake sign-off evidence."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import commands
from . import constants as K
from .errors import CommandRefused, NotFound
from .models import Carrier, Event, Notification, Parcel, PickupCode, SignoffFlag, Station
from .parcels import DONE, REMINDED, RETURNABLE, WAITING, advance
from .principal import Principal
from .settings import Settings
from .sms import queued

log = logging.getLogger("jincun.cloud.lifecycle")


def sweep(session: Session, settings: Settings, *, now: float | None = None) -> dict[str, int]:
    """Queue due reminders, mark overdue parcels (and start their return), flag parcels never delivered;
    idempotent (a parcel counts its reminders, a flag is raised once). Caller commits. `now` is the clock seam
    tests and the demo move."""
    now = time.time() if now is None else now
    first, second = settings.reminder_hours
    done = {"reminders": 0, "overdue": 0, "never_delivered": never_delivered(session, settings, now=now)}
    parcels = session.scalars(select(Parcel).where(Parcel.status.in_(REMINDED), Parcel.deposited_at.is_not(None),
                                                   Parcel.deposited_at <= now - first * 3600)
                              .order_by(Parcel.id).limit(5000)).all()
    for p in parcels:
        waited = now - (p.deposited_at or now)
        if waited >= settings.overdue_days * 86400:
            p.overdue_at = now
            advance(session, p, "overdue", now, "sweep")
            start_return(session, settings, p)
            done["overdue"] += 1
            continue
        due = 2 if waited >= second * 3600 else 1
        if p.reminders < due and p.phone:
            p.reminders = due
            station = session.get(Station, p.station_id)
            carrier = session.get(Carrier, p.carrier) if p.carrier else None
            message = settings.sms_style.reminder(
                carrier=carrier.name_zh if carrier else p.carrier, station=station.name if station else p.station_id,
                locker=p.locker_id, c=p.compartment, hours=second if due == 2 else first)
            session.add(Notification(**queued(p.phone, message, ref=p.ref, now=now)))
            done["reminders"] += 1
    return done


SWEEP = Principal(name="sweep", role="admin")


def start_return(session: Session, settings: Settings, parcel: Parcel) -> None:
    """An overdue parcel goes back to its carrier: the station revokes the villager's code and lists it for the
    carrier's courier (a `return` command), the villager is told by SMS; the carrier has the overdue webhook."""
    if parcel.locker_id is not None and parcel.compartment is not None:
        try:
            with session.begin_nested():
                commands.issue(session, settings, SWEEP, station_id=parcel.station_id, op="return",
                               locker=parcel.locker_id, c=parcel.compartment, reason="overdue",
                               ttl=settings.overdue_days * 86400, extra={"ref": parcel.ref})
        except (CommandRefused, NotFound) as exc:
            log.error("parcel %s cannot go back through its locker: %s", parcel.ref, exc)
    if parcel.phone:
        station = session.get(Station, parcel.station_id)
        carrier = session.get(Carrier, parcel.carrier) if parcel.carrier else None
        message = settings.sms_style.returning(carrier=carrier.name_zh if carrier else parcel.carrier,
                                               station=station.name if station else parcel.station_id)
        session.add(Notification(**queued(parcel.phone, message, ref=parcel.ref)))


def never_delivered(session: Session, settings: Settings, *, now: float) -> int:
    """Flag the parcels a carrier pre-advised that no courier deposited within `never_delivered_hours`, for the
    county's quality table; returns how many were flagged now (a flag is raised once)."""
    late = now - settings.never_delivered_hours * 3600
    flagged = select(SignoffFlag.parcel_id).where(SignoffFlag.kind == K.FLAG_NEVER_DELIVERED)
    rows = session.scalars(select(Parcel).where(
        Parcel.status == "preadvised", Parcel.direction == "inbound", Parcel.locker_id.is_(None),
        Parcel.created_at <= late, Parcel.id.not_in(flagged)).order_by(Parcel.id).limit(5000)).all()
    for p in rows:
        raise_flag(session, p, K.FLAG_NEVER_DELIVERED, extra={"preadvised_at": p.created_at, "checked_at": now})
    return len(rows)


def mark_returned(session: Session, who: Principal, *, ref: str, reason: str) -> Parcel:
    """Close the return flow of an overdue parcel (the courier took it back). Caller commits."""
    parcel = session.scalar(select(Parcel).where(Parcel.ref == ref))
    if parcel is None:
        raise NotFound(f"no parcel {ref}")
    if parcel.status not in RETURNABLE:
        raise CommandRefused(409, f"parcel {ref} is {parcel.status}, only overdue parcels are returned")
    parcel.returned_at = time.time()
    advance(session, parcel, "returned", parcel.returned_at, f"staff:{who.name}")
    commands.audit(session, who, "parcel_returned", ref, reason)
    return parcel


def deliver_door(session: Session, who: Principal, *, ref: str, reason: str) -> Parcel:
    """A parcel taken to the recipient's door instead of the locker. Caller commits."""
    parcel = session.scalar(select(Parcel).where(Parcel.ref == ref))
    if parcel is None:
        raise NotFound(f"no parcel {ref}")
    if who.role == "station_agent" and who.station_id != parcel.station_id:
        raise CommandRefused(403, "a station agent acts only on their own station")
    if parcel.status in DONE:
        raise CommandRefused(409, f"parcel {ref} is {parcel.status} already")
    advance(session, parcel, "delivered_door", time.time(), f"staff:{who.name}")
    commands.audit(session, who, "delivered_door", ref, reason)
    return parcel


def replacement_code(session: Session, settings: Settings, who: Principal, *, station_id: str,
                     phone: str, reason: str) -> tuple[str, list[commands.Command]]:
    """Issue a new code for a recipient's waiting parcels at a station and queue `code_sync` per locker."""
    if who.role == "station_agent" and who.station_id != station_id:
        raise CommandRefused(403, "a station agent acts only on their own station")
    parcels = session.scalars(select(Parcel).where(Parcel.station_id == station_id, Parcel.phone == phone,
                                                   Parcel.status.in_(WAITING),
                                                   Parcel.locker_id.is_not(None))).all()
    if not parcels:
        raise NotFound(f"no parcel waiting for {phone} at {station_id}")
    code = f"{secrets.randbelow(10**6):06d}"
    exp_ts = int(time.time()) + settings.overdue_days * 86400
    for old in session.scalars(select(PickupCode).where(PickupCode.station_id == station_id,
                                                        PickupCode.phone == phone, PickupCode.used.is_(False))):
        old.used = True
    by_locker: dict[str, list[Parcel]] = {}
    for p in parcels:
        by_locker.setdefault(p.locker_id or "", []).append(p)
    cmds = []
    for locker, group in sorted(by_locker.items()):
        refs = [p.ref for p in group]
        cs = sorted({p.compartment for p in group if p.compartment is not None})
        session.add(PickupCode(station_id=station_id, phone=phone, code=code, refs=refs, exp=exp_ts, used=False,
                               created_at=time.time(), locker_id=locker, origin="cloud"))
        cmds.append(commands.issue(session, settings, who, station_id=station_id, op="code_sync", locker=locker,
                                   reason=reason, ttl=86400,
                                   extra={"phone": phone, "code": code, "refs": refs, "cs": cs, "exp_ts": exp_ts}))
    station = session.get(Station, station_id)
    message = settings.sms_style.recode(station=station.name if station else station_id, code=code)
    session.add(Notification(**queued(phone, message, ref=parcels[0].ref)))
    return code, cmds


def evidence(session: Session, parcel: Parcel) -> dict[str, Any]:
    """Locker events that show (or fail to show) a deposit door cycle with occupancy and a pickup."""
    found: dict[str, list] = {"deposit": [], "pickup": [], "door": [], "code_ok": []}
    if parcel.locker_id is None:
        return {**found, "missing": ["deposit", "pickup"], "locker": None}
    rows = session.execute(select(Event.src, Event.boot, Event.seq, Event.type, Event.rx, Event.body).where(
        Event.station_id == parcel.station_id, Event.src == parcel.locker_id, Event.kind == "evt",
        Event.type.in_(("deposit", "pickup", "door", "code_ok"))).order_by(Event.rx).limit(20000)).all()
    for src, boot, seq, type_, rx, body in rows:
        entry = {"locker": src, "boot": boot, "seq": seq, "ts": body.get("ts"), "rx": rx, "type": type_}
        if type_ in ("deposit", "pickup") and body.get("ref") == parcel.ref:
            found[type_].append(entry)
        elif type_ == "door" and body.get("c") == parcel.compartment:
            found["door"].append({**entry, "open": body.get("open")})
        elif type_ == "code_ok" and parcel.compartment in (body.get("cs") or []):
            found["code_ok"].append({**entry, "cs": body.get("cs")})
    missing = []
    # a deposit event is itself "door closed after a deposit opening with occupancy" (§3.2)
    if not found["deposit"]:
        missing.append("deposit")
    if not found["pickup"]:
        missing.append("pickup")
    return {**found, "missing": missing, "locker": parcel.locker_id, "compartment": parcel.compartment}


def raise_flag(session: Session, parcel: Parcel, kind: str, *, extra: dict[str, Any] | None = None) -> SignoffFlag:
    """Store (or refresh) a sign-off flag with fresh evidence. Caller commits."""
    ev = {**evidence(session, parcel), **(extra or {})}
    flag = session.scalar(select(SignoffFlag).where(SignoffFlag.parcel_id == parcel.id, SignoffFlag.kind == kind))
    if flag is None:
        flag = SignoffFlag(parcel_id=parcel.id, kind=kind, at=time.time(), evidence=ev, resolved=False)
        try:
            with session.begin_nested():
                session.add(flag)
                session.flush()
        except IntegrityError:
            # another worker raised the same flag in the meantime
            flag = session.scalars(select(SignoffFlag).where(SignoffFlag.parcel_id == parcel.id,
                                                             SignoffFlag.kind == kind)).one()
    else:
        flag.evidence = ev
    log.warning("sign-off flag %s on parcel %s: missing %s", kind, parcel.ref, ev.get("missing"))
    return flag


def carrier_signed(session: Session, parcel: Parcel, *, at: float) -> SignoffFlag | None:
    """A carrier says "signed": flag it unless the locker shows both the deposit and the pickup."""
    parcel.carrier_signed_at = at
    if parcel.locker_id is None:
        return None
    ev = evidence(session, parcel)
    if not ev["missing"]:
        return None
    return raise_flag(session, parcel, K.FLAG_CARRIER_SIGNED, extra={"signed_at": at})
