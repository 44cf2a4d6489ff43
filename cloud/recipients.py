"""Recipients: their name, consent and door-to-door need, as staff and the villagers themselves set them."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import commands
from . import constants as K
from .errors import CommandRefused, NotFound
from .parcels import DONE, HIDDEN_FROM_RECIPIENT
from .models import Parcel, PickupCode, Recipient, SignoffFlag, Station
from .principal import Principal
from .schemas import ConsentPublic, RecipientUpdate
from .ratelimit import hit, wait_left
from .settings import Settings

log = logging.getLogger("jincun.cloud.recipients")

# door-to-door changes a phone may make in an hour, each sent to its stations; a change beyond them is refused
# and the setting stays as the stations have it
ASSIST_PER_HOUR = 10
ASSIST_WINDOW_S = 3600.0


def get_recipient(session: Session, *, phone: str) -> Recipient:
    """The recipient of a phone number, or NotFound."""
    rec = session.get(Recipient, phone)
    if rec is None:
        raise NotFound(f"no recipient {phone}")
    return rec


def set_recipient(session: Session, who: Principal, phone: str, data: RecipientUpdate,
                  settings: Settings) -> Recipient:
    """Create or update a recipient; consent changes are audited; a changed door-to-door choice goes to the
    stations, or is refused whole (CommandRefused 429, nothing changed) beyond ASSIST_PER_HOUR. Caller commits
    (and rolls back on a refusal)."""
    now = time.time()
    rec = session.get(Recipient, phone)
    door_change = data.door_help is not None and data.door_help != (rec.door_help if rec else False)
    if door_change:
        may_change_door_help(session, phone, now)
    if rec is None:
        rec = Recipient(phone=phone, consent="unknown", door_help=False, updated_at=now)
        session.add(rec)
    if data.name is not None:
        rec.name = data.name
    if door_change and data.door_help is not None:
        rec.door_help = data.door_help
        tell_stations(session, settings, who, phone, data.door_help)
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
    log.info("door-to-door change of ****%s refused: %d changes this hour already", phone[-4:], ASSIST_PER_HOUR)
    raise CommandRefused(429, f"door-to-door help changed {ASSIST_PER_HOUR} times this hour; try again later",
                         key="door_help_limit", limit=ASSIST_PER_HOUR, wait=wait)


def tell_stations(session: Session, settings: Settings, who: Principal, phone: str, door_help: bool) -> int:
    """Send a villager's door-to-door choice to the stations that hold or expect their parcels (an `assist`
    command each, §5.2): the station's list follows within the downlink's poll, and keeps it offline. The
    change was counted (may_change_door_help) before it was made."""
    stations = session.scalars(select(Parcel.station_id).where(Parcel.phone == phone, Parcel.status.not_in(DONE))
                               .distinct().limit(20)).all()
    sent = 0
    for station_id in stations:
        try:
            commands.issue(session, settings, who, station_id=station_id, op="assist", ttl=7 * 86400,
                           reason="door-to-door choice", extra={"phone": phone, "door_help": door_help})
            sent += 1
        except (CommandRefused, NotFound):
            continue  # a station agent's change reaches their own station only
    return sent


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
