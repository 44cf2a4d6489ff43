"""Alarms reach people: each episode of trouble is told once when it starts and once when it ends.

An episode is one condition at one place: a compartment forced open or jammed, a locker or a whole station
offline, a locker on low supply voltage, an uplink backlog growing at a station, or a remote-open limit
crossed. The sweep (cloud/app.py, once a minute under the sweep lease) works out which conditions hold now
from what the database already shows, opens an episode for each new one and closes the episodes whose
condition is gone. Opening and closing each queue one message:

- an SMS to the station's maintenance phone (`stations.maint_phone`), or to the county's duty phone
  (`JINCUN_DUTY_PHONE`) for a station without one, through the SMS outbox with its retries;
- optionally a text to a WeCom (企业微信) or DingTalk (钉钉) group robot (`JINCUN_ALERT_WEBHOOK_URL`,
  `JINCUN_ALERT_WEBHOOK_KIND`, and for DingTalk's signed robots `JINCUN_ALERT_WEBHOOK_SECRET`), through the
  `alert_posts` outbox, retried with backoff.

An open episode holds the `open_key` of its place and condition, which is unique: a condition that holds
over many sweeps, or flaps within one, is told once. The sweep is idempotent, so a crash between sweeps
loses nothing and repeats nothing.

When a condition ends:
- a locker alarm (forced open, jam, remote-open limit): when staff acknowledge it on the dashboard;
- offline: when the station or locker is heard from again, or the locker is retired in the cloud;
- low voltage: when the supply is back above the threshold plus a margin (no flapping around the line);
- backlog: when the station's outbox is back under the limits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from . import sms_text
from .guards import ALARM_OPEN_CAP
from .models import Alarm, AlertEpisode, AlertPost, GatewayHealth, Locker, Notification, Station
from .settings import Settings

log = logging.getLogger("jincun.cloud.alerts")

# condition -> (Chinese, English): what the message and the pages call it
CONDITIONS: dict[str, tuple[str, str]] = {
    "forced_open": ("被强行打开", "forced open"),
    "lock_jam": ("锁卡住", "lock jammed"),
    "station_offline": ("站点断网", "station offline"),
    "locker_offline": ("柜子离线", "locker offline"),
    "low_voltage": ("电压过低", "low supply voltage"),
    "outbox_growing": ("数据积压未上传", "uplink backlog growing"),
    "open_limit": ("远程开柜超限", "remote-open limit crossed"),
}
ALARM_CONDITIONS = {"forced_open": "forced_open", "lock_jam": "lock_jam", ALARM_OPEN_CAP: "open_limit"}
VOLTAGE_MARGIN = 0.3  # volts above the threshold before a low-voltage episode ends
POST_BACKOFF_MAX = 3600.0


@dataclass(frozen=True)
class Condition:
    """A condition that holds now at one place."""

    station_id: str
    locker_id: str  # "-" for the whole station
    c: int | None
    kind: str
    detail: str = ""

    @property
    def key(self) -> str:
        return f"{self.station_id}/{self.locker_id}/{self.c if self.c is not None else '-'}/{self.kind}"


def _alarm_conditions(session: Session) -> Iterable[Condition]:
    rows = session.execute(select(Alarm.station_id, Alarm.locker_id, Alarm.c, Alarm.kind)
                           .where(Alarm.acked.is_(False), Alarm.kind.in_(ALARM_CONDITIONS)))
    for station_id, locker_id, c, kind in rows:
        yield Condition(station_id, locker_id or "-", c, ALARM_CONDITIONS[kind])


def _gateway_conditions(session: Session, settings: Settings, now: float) -> tuple[list[Condition], set[str]]:
    out, offline = [], set()
    for g in session.scalars(select(GatewayHealth)):
        if now - g.at > settings.alert_offline_minutes * 60:
            out.append(Condition(g.station_id, "-", None, "station_offline"))
            offline.add(g.station_id)
            continue
        age = g.oldest_unsent_s or 0.0
        if g.outbox_depth >= settings.alert_outbox_items or age >= settings.alert_outbox_age_s:
            out.append(Condition(g.station_id, "-", None, "outbox_growing",
                                 f"{g.outbox_depth} items, oldest {int(age // 60)} min"))
    return out, offline


def _locker_conditions(session: Session, settings: Settings, now: float, open_keys: set[str],
                       station_offline: set[str]) -> Iterable[Condition]:
    for lk in session.scalars(select(Locker)):
        if lk.station_id in station_offline:
            continue  # the station's episode says it; its lockers' last news is stale, not wrong
        since = lk.status_rx or lk.last_seen
        # a locker retired in the cloud is no fault: its silence is expected
        if lk.active and lk.online not in ("online", "unknown") and since is not None \
                and now - since > settings.alert_offline_minutes * 60:
            yield Condition(lk.station_id, lk.id, None, "locker_offline")
        if lk.vin is not None:
            low = Condition(lk.station_id, lk.id, None, "low_voltage", f"{lk.vin:.1f} V")
            limit = settings.alert_low_voltage + (VOLTAGE_MARGIN if low.key in open_keys else 0.0)
            if lk.vin < limit:
                yield low


def conditions(session: Session, settings: Settings, now: float, open_keys: set[str]) -> list[Condition]:
    """Every condition that holds now."""
    gw, offline = _gateway_conditions(session, settings, now)
    return [*_alarm_conditions(session), *gw, *_locker_conditions(session, settings, now, open_keys, offline)]


def _place(session: Session, station_id: str, locker_id: str, c: int | None) -> tuple[str, str]:
    """The station's name and the place as people say it (1号柜 4号格口)."""
    name = session.scalar(select(Station.name).where(Station.id == station_id)) or station_id
    if locker_id == "-":
        return name, ""
    return name, sms_text.box(locker_id, c)


def message(session: Session, settings: Settings, ep: AlertEpisode, phase: str) -> sms_text.Message:
    """The SMS for an episode's start (`alert`) or end (`alert_ok`)."""
    station, place = _place(session, ep.station_id, ep.locker_id, ep.c)
    what = CONDITIONS[ep.kind][0]
    at = time.strftime("%m-%d %H:%M", time.localtime(ep.opened_at if phase == "alert" else ep.closed_at))
    style = settings.sms_style
    return sms_text.build(phase, station=station, signature=style.signature, public_url=style.public_url,
                          box=place, what=what, at=at)


def _queue(session: Session, settings: Settings, ep: AlertEpisode, phase: str, now: float) -> None:
    msg = message(session, settings, ep, phase)
    phone = session.scalar(select(Station.maint_phone).where(Station.id == ep.station_id)) or settings.duty_phone
    if phone:
        session.add(Notification(phone=phone, status="queued", attempts=0, ref=None, created_at=now,
                                 text=msg.text, kind=msg.kind, params=dict(msg.params)))
    if settings.alert_webhook_url is not None:
        session.add(AlertPost(episode_id=ep.id, phase=phase, text=msg.text, status="queued", attempts=0,
                              next_at=now, created_at=now))


def sweep(session: Session, settings: Settings, *, now: float | None = None) -> dict[str, int]:
    """Open an episode for each new condition and close those that ended; each queues its messages once."""
    now = time.time() if now is None else now
    open_eps = {ep.open_key or "": ep for ep in session.scalars(select(AlertEpisode).where(
        AlertEpisode.open_key.is_not(None)))}
    holding = {cond.key: cond for cond in conditions(session, settings, now, set(open_eps))}
    opened = closed = 0
    for key, cond in holding.items():
        if key in open_eps:
            continue
        ep = AlertEpisode(station_id=cond.station_id, locker_id=cond.locker_id, c=cond.c, kind=cond.kind,
                          open_key=key, opened_at=now, detail=cond.detail[:200] or None)
        session.add(ep)
        session.flush()
        _queue(session, settings, ep, "alert", now)
        log.warning("alert %s at %s/%s", cond.kind, cond.station_id, cond.locker_id)
        opened += 1
    for key, ep in open_eps.items():
        if key in holding:
            continue
        ep.open_key, ep.closed_at = None, now
        _queue(session, settings, ep, "alert_ok", now)
        log.info("alert %s at %s/%s is over", ep.kind, ep.station_id, ep.locker_id)
        closed += 1
    return {"opened": opened, "closed": closed}


def list_episodes(session: Session, *, station: str | None = None, open_only: bool = False,
                  limit: int = 200) -> list[AlertEpisode]:
    """Episodes, newest first."""
    stmt = select(AlertEpisode).order_by(AlertEpisode.opened_at.desc(), AlertEpisode.id.desc()).limit(limit)
    if station:
        stmt = stmt.where(AlertEpisode.station_id == station)
    if open_only:
        stmt = stmt.where(AlertEpisode.open_key.is_not(None))
    return list(session.scalars(stmt))


# ---- group robots ------------------------------------------------------------------------------------------
def robot_request(settings: Settings, text: str, *, now: float) -> tuple[str, dict[str, Any]]:
    """The URL and JSON body of a text message to the configured WeCom or DingTalk group robot.

    Both take `{"msgtype": "text", "text": {"content": ...}}`. A DingTalk robot with 加签 wants `timestamp`
    (ms) and `sign` = base64(HMAC-SHA256(secret, "timestamp\\nsecret")) in the query string.
    """
    assert settings.alert_webhook_url is not None
    url = settings.alert_webhook_url.get_secret_value()
    if settings.alert_webhook_kind == "dingtalk" and settings.alert_webhook_secret is not None:
        secret = settings.alert_webhook_secret.get_secret_value()
        ts = str(int(now * 1000))
        digest = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
        sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
        url += ("&" if "?" in url else "?") + f"timestamp={ts}&sign={sign}"
    return url, {"msgtype": "text", "text": {"content": text}}


def _post(client: httpx.Client, settings: Settings, text: str, now: float) -> str | None:
    """Send one text; None when the robot took it, else why not (the URL, which holds a key, is never told)."""
    url, body = robot_request(settings, text, now=now)
    try:
        r = client.post(url, json=body)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if r.status_code != 200:
        return f"HTTP {r.status_code}"
    try:
        answer = r.json()
    except ValueError:
        return "not JSON"
    code = answer.get("errcode") if isinstance(answer, dict) else None
    return None if code == 0 else f"errcode {code}: {str(answer.get('errmsg', ''))[:80]}"


def deliver_posts(maker: sessionmaker[Session], settings: Settings, *, now: float | None = None,
                  client: httpx.Client | None = None, limit: int = 50) -> dict[str, int]:
    """Send the due group-robot texts, oldest first; a refusal (throttling, outage) is retried with backoff."""
    if settings.alert_webhook_url is None:
        return {"sent": 0, "failed": 0}
    now = time.time() if now is None else now
    own = client is None
    client = client or httpx.Client(timeout=settings.sms_http_timeout)
    sent = failed = 0
    try:
        with maker() as session:
            posts = list(session.scalars(select(AlertPost).where(AlertPost.status == "queued",
                                                                 AlertPost.next_at <= now)
                                         .order_by(AlertPost.id).limit(limit)))
            for post in posts:
                why = _post(client, settings, post.text, now)
                post.attempts += 1
                if why is None:
                    post.status, post.last_error = "sent", None
                    sent += 1
                else:
                    post.last_error = why
                    post.next_at = now + min(POST_BACKOFF_MAX, settings.webhook_retry_seconds * 2 ** post.attempts)
                    if post.attempts >= settings.webhook_max_attempts:
                        post.status = "failed"
                    log.warning("alert text to the group robot not taken (%s), attempt %d", why, post.attempts)
                    failed += 1
            session.commit()
    finally:
        if own:
            client.close()
    return {"sent": sent, "failed": failed}


def set_maint_phone(session: Session, station_id: str, phone: str | None) -> bool:
    """Set or clear a station's maintenance phone; False if there is no such station."""
    done = session.execute(update(Station).where(Station.id == station_id).values(maint_phone=phone))
    return bool(getattr(done, "rowcount", 0))
