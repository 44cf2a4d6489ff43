"""Recipients: their name, consent and door-to-door need, as staff and the villagers themselves set them."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from jincun.phone import mask_phone

from . import commands
from . import constants as K
from .errors import CommandRefused, NotFound
from .parcels import DONE, HIDDEN_FROM_RECIPIENT
from .models import Command, Parcel, PickupCode, Recipient, SignoffFlag, Station
from .principal import Principal
from .schemas import ConsentPublic, RecipientUpdate
from .ratelimit import hit, wait_left
from .settings import Settings

log = logging.getLogger("jincun.cloud.recipients")

# door-to-door changes a phone may make in an hour, each sent to its stations; a change beyond them is refused
# and the setting stays as the stations have it
ASSIST_PER_HOUR = 10
ASSIST_WINDOW_S = 3600.0
# an `assist` command waits this long for a station that is offline
ASSIST_TTL_S = 7 * 86400
# who sends a door-to-door choice to the stations: the cloud itself, whoever changed the choice (the villager,
# an agent of one station, the county), so it reaches every station of the villager's parcels
DOOR_TO_DOOR = Principal(name="door-to-door", role="admin")


def get_recipient(session: Session, *, phone: str) -> Recipient:
    """The recipient of a phone number, or NotFound."""
    rec = session.get(Recipient, phone)
    if rec is None:
        raise NotFound(f"no recipient {phone}")
    return rec


def set_recipient(session: Session, who: Principal, phone: str, data: RecipientUpdate,
                  settings: Settings) -> Recipient:
    """Create or update a recipient; consent and door-to-door changes are audited; a changed door-to-door
    choice goes to the stations (tell_stations), or is refused whole (CommandRefused 429, nothing changed)
    beyond ASSIST_PER_HOUR. Caller commits (and rolls back on a refusal)."""
    now = time.time()
    rec = session.get(Recipient, phone)
    before = rec.door_help if rec else False
    door_change = data.door_help is not None and data.door_help != before
    if door_change:
        may_change_door_help(session, phone, now)
    if rec is None:
        rec = Recipient(phone=phone, consent="unknown", door_help=False, updated_at=now)
        session.add(rec)
    if data.name is not None:
        rec.name = data.name
    if door_change and data.door_help is not None:
        commands.audit(session, who, "door_help", phone, None, before=before, after=data.door_help)
        rec.door_help = data.door_help
        tell_stations(session, settings, phone, data.door_help)
    if data.consent is not None and data.consent != rec.consent:
        commands.audit(session, who, "consent", phone, None, before=rec.consent, after=data.consent)
        rec.consent, rec.consent_at = data.consent, now
    rec.updated_at = now
    session.flush()
    return rec


def may_change_door_help(session: Session, phone: str, now: float) -> None:
    """Count one door-to-door change of a phone, or refuse it (429, with the wait) beyond ASSIST_PER_HOUR: a phone
    flipping its choice over and over does not flood its stations' downlink, and a change the stations would
    not get is not made in the cloud either, so the two never disagree."""
    key = f"assist:{phone}:{int(ASSIST_WINDOW_S)}"
    if hit(session, key, limit=ASSIST_PER_HOUR, window=ASSIST_WINDOW_S, now=now):
        return
    wait = wait_left(session, key, limit=ASSIST_PER_HOUR, window=ASSIST_WINDOW_S, now=now)
    log.info("door-to-door change of %s refused: %d changes this hour already", mask_phone(phone), ASSIST_PER_HOUR)
    raise CommandRefused(429, f"door-to-door help changed {ASSIST_PER_HOUR} times this hour; try again later",
                         key="door_help_limit", limit=ASSIST_PER_HOUR, wait=wait)


# ---- what each station holds of a villager's choice ------------------------------------------------------
# One rule for both moments a station may need a villager's door-to-door choice: it is sent (an `assist`
# command, §5.2) to a station that needs it and does not have it. A station needs it when it holds or expects
# an inbound parcel of theirs, or holds an earlier choice of theirs (a "yes" there must become a "no"). What a
# station has is the newest `assist` it was sent for the phone that reached it or still will (acknowledged, or
# queued and not expired); the station keeps the latest it was sent (gateway/assist.py), so a repeat is harmless.

def told(session: Session, *, phone: str, station_id: str, now: float | None = None) -> bool | None:
    """The door-to-door choice of `phone` the station has or will have from the cloud, None if none."""
    now = time.time() if now is None else now
    payload = session.scalars(select(Command.payload).where(
        Command.station_id == station_id, Command.op == "assist", Command.payload["phone"].as_string() == phone,
        or_(Command.status == "done", and_(Command.status == "queued", Command.expires_at > now)))
        .order_by(Command.cursor.desc()).limit(1)).first()
    return None if payload is None else bool(payload.get("door_help"))


def _send(session: Session, settings: Settings, phone: str, station_id: str, door_help: bool) -> None:
    commands.issue(session, settings, DOOR_TO_DOOR, station_id=station_id, op="assist", ttl=ASSIST_TTL_S,
                   reason="door-to-door choice", extra={"phone": phone, "door_help": door_help})


def tell_stations(session: Session, settings: Settings, phone: str, door_help: bool) -> int:
    """Send a changed door-to-door choice to every station that needs it and does not have it: those holding or
    expecting an inbound parcel of the phone, and those holding an earlier choice of it. The cloud sends it, not
    whoever made the change (a station agent's change reaches the villager's other stations too); the station's
    list follows within the downlink's poll and keeps it offline. The change was counted (may_change_door_help)
    before it was made. Returns how many stations were sent it."""
    live = set(session.scalars(select(Parcel.station_id).where(
        Parcel.phone == phone, Parcel.direction == "inbound", Parcel.status.not_in(DONE)).distinct()).all())
    # a station holds an earlier choice only if the phone had a parcel there (nothing else sends one)
    ever = set(session.scalars(select(Parcel.station_id).where(Parcel.phone == phone).distinct()).all())
    sent = 0
    for station_id in sorted(ever):
        has = told(session, phone=phone, station_id=station_id)
        if has is not door_help and (station_id in live or has is not None):
            _send(session, settings, phone, station_id, door_help)
            sent += 1
    return sent


def parcel_arrived(session: Session, settings: Settings, *, phone: str, station_id: str, door_help: bool) -> bool:
    """An inbound parcel of `phone` appeared for a station (the station's parcel record, a carrier's pre-advice):
    a villager who chose door-to-door help is sent to that station's list unless it has the choice already, so
    a choice made before the parcel came reaches the station that now needs it, once. `door_help` is the
    phone's choice as the caller read it. Returns whether a command was queued."""
    if not door_help or told(session, phone=phone, station_id=station_id) is True:
        return False
    _send(session, settings, phone, station_id, True)
    return True


def consent_of(session: Session, *, phone: str) -> ConsentPublic:
    """Whether a recipient consented to locker delivery (unknown for a phone never seen)."""
    rec = session.get(Recipient, phone)
    if rec is None:
        return ConsentPublic(phone=phone, consent="unknown", locker_allowed=False, door_help=False, at=None)
    return ConsentPublic(phone=phone, consent=rec.consent, locker_allowed=rec.consent == "granted",
                         door_help=rec.door_help, at=rec.consent_at)


def phone_view(session: Session, *, phone: str, limit: int = 50) -> dict[str, Any]:
    """What the villager's phone page shows: their parcels (newest first), the live code of each, their
    record, and the name of each parcel's station (the villager goes to a place, not an id)."""
    parcels = session.scalars(select(Parcel).where(Parcel.phone == phone,
                                                   Parcel.status.not_in(HIDDEN_FROM_RECIPIENT))
                              .order_by(Parcel.updated_at.desc()).limit(limit)).all()
    codes = session.scalars(select(PickupCode).where(PickupCode.phone == phone, PickupCode.used.is_(False))).all()
    station_ids = {p.station_id for p in parcels}
    stations = {s.id: s for s in session.scalars(select(Station).where(Station.id.in_(station_ids))).all()
                } if station_ids else {}
    ids = [p.id for p in parcels]
    # a "not received" report already made: the page shows its state instead of the button
    reported = {pid: resolved for pid, resolved in session.execute(
        select(SignoffFlag.parcel_id, SignoffFlag.resolved).where(
            SignoffFlag.parcel_id.in_(ids), SignoffFlag.kind == K.FLAG_NOT_RECEIVED)).all()} if ids else {}
    return {"parcels": parcels, "code_of": {ref: c.code for c in codes for ref in c.refs},
            "rec": session.get(Recipient, phone), "station_names": {k: s.name for k, s in stations.items()},
            "stations": stations, "reported": reported}


def own_parcel(session: Session, *, phone: str, ref: str) -> Parcel | None:
    """A parcel of this recipient, or None (another's parcel is as good as none)."""
    return session.scalar(select(Parcel).where(Parcel.ref == ref, Parcel.phone == phone))
