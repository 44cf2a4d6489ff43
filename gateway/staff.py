"""The county's couriers and station agents at the station: pulled from the cloud, kept in the station database,
and checked offline by the terminal.

Every `terminal.staff_sync_s` (30 s) the gateway asks the cloud for the people who may log in at this station
(`GET /api/v1/gateway/couriers`, docs/protocol.md §5.6): each with a terminal id (`c<n>` a courier, `a<n>` a
station agent), name, role, carrier and PIN hash (the one PIN rule, jincun/pins.py). The list replaces the
cached one in one transaction and goes to the terminal's sessions at once; someone no longer listed (retired
in the cloud) cannot log in and their open sessions end. While the cloud is unreachable the cached list holds,
and after a restart it is read back from the database, so logins keep working offline.

The same answer names the station's lockers retired in the cloud (`retired_lockers`): the locker link marks
them, and from then on no new deposit goes into them (deposits.py), while their events, codes and pickups go
on, so the parcels already inside are still collected. A locker the answer no longer names takes deposits
again. The list is kept in the station database too (`meta`, key `retired_lockers`), for a restart offline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from typing import TYPE_CHECKING

import httpx
from pydantic import ValidationError

from . import const as C
from .cloudhttp import cloud_client
from .config import StationConfig, TerminalUser
from .counters import Counters
from .pins import CLOUD_USER_RE, Sessions
from .stationdb import Outbox

if TYPE_CHECKING:
    from .lockerlink import LockerLink

log = logging.getLogger("jincun.gateway.staff")

STAFF_PATH = "/api/v1/gateway/couriers"
STAFF_MAX = 5000  # people one station may list; more is not an answer this gateway keeps
MAX_ANSWER_BYTES = 4 * 1024 * 1024
RETIRED_MAX = 1000  # retired lockers one station may list
RETIRED_KEY = "retired_lockers"  # the station database's copy, a JSON list in `meta`
_LOCKER_ID = re.compile(C.ID_RE)


class StaffSync:
    """Fetches the station's couriers and agents from the cloud, caches them, and hands them to the terminal."""

    def __init__(self, cfg: StationConfig, outbox: Outbox, sessions: Sessions, counters: Counters, *,
                 transport: httpx.AsyncBaseTransport | None = None, link: LockerLink | None = None) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.sessions = sessions
        self.counters = counters
        self.transport = transport
        self.link = link  # marks the lockers retired in the cloud
        self.synced_at: float | None = None
        self.retired: set[str] = set()
        self._failing = False

    async def load(self) -> int:
        """Give the terminal the list cached by the last sync (none yet: station.json alone), and the locker
        link the retired lockers; how many users."""
        def read(conn: sqlite3.Connection) -> tuple[list[tuple], float | None, str | None]:
            at = conn.execute("SELECT at FROM staff_sync").fetchone()
            rows = conn.execute("SELECT id, name, role, carrier, pin_hash FROM staff_users ORDER BY id").fetchall()
            retired = conn.execute("SELECT value FROM meta WHERE key=?", (RETIRED_KEY,)).fetchone()
            return rows, at[0] if at else None, retired[0] if retired else None
        rows, at, retired = await self.outbox.query(read)
        self.synced_at = at
        if retired is not None:
            self._retire({x for x in json.loads(retired) if isinstance(x, str)})
        if at is None:
            return 0
        users = [TerminalUser(id=r[0], name=r[1], role=r[2], carrier=r[3], pin_hash=r[4]) for r in rows]
        self.sessions.set_synced(users)
        return len(users)

    def parse_retired(self, data: dict) -> set[str]:
        """The station's lockers the cloud retired (none named by an older cloud); a bad id is skipped and counted."""
        ids = data.get("retired_lockers", [])
        if not isinstance(ids, list) or len(ids) > RETIRED_MAX:
            raise ValueError("not a list of retired lockers")
        good = [x for x in ids if isinstance(x, str) and _LOCKER_ID.match(x)]
        if len(good) < len(ids):
            self.counters.inc("staff_refused", len(ids) - len(good))
            log.warning("%d retired locker ids from the cloud were not taken", len(ids) - len(good))
        return set(good)

    def parse(self, data: object) -> list[TerminalUser]:
        """The cloud's answer as terminal users; an entry the terminal cannot take is skipped and counted."""
        if not isinstance(data, dict) or not isinstance(data.get("users"), list) or len(data["users"]) > STAFF_MAX:
            raise ValueError("not a list of users")
        out = []
        for item in data["users"]:
            try:
                user = TerminalUser.model_validate(item)
            except ValidationError as exc:
                self.counters.inc("staff_refused")
                log.warning("a user from the cloud was not taken: %s", exc.errors()[0].get("msg"))
                continue
            if not CLOUD_USER_RE.match(user.id):
                self.counters.inc("staff_refused")
                log.warning("the cloud sent a terminal id %r outside its own (c<n>, a<n>)", user.id)
                continue
            out.append(user)
        return out

    async def fetch(self) -> tuple[list[TerminalUser], set[str]] | None:
        """The cloud's current list and retired lockers, or None when they cannot be had now."""
        cloud = self.cfg.cloud
        try:
            async with cloud_client(cloud, self.transport) as client:
                async with client.stream("GET", STAFF_PATH) as resp:
                    if resp.status_code != 200:
                        raise ValueError(f"HTTP {resp.status_code}")
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_ANSWER_BYTES:  # read no further than a list could be
                            raise ValueError("answer too large")
            data = json.loads(body)
            users = self.parse(data)
            retired = self.parse_retired(data)
        except (httpx.HTTPError, ValueError) as exc:
            self.counters.inc("staff_sync_failures")
            # said once per outage (the uplink reports the link itself); every failure is counted
            if not self._failing:
                log.warning("couriers and agents not fetched from the cloud, the cached list holds: %s", exc)
            self._failing = True
            return None
        if self._failing:
            log.info("couriers and agents fetched from the cloud again")
        self._failing = False
        return users, retired

    def _retire(self, ids: set[str]) -> None:
        """Put the retired lockers in force at the locker link."""
        self.retired = ids
        if self.link is None:
            return
        retired, back = self.link.set_retired(ids)
        if retired:
            log.info("lockers retired in the cloud, no new deposits: %s", ", ".join(sorted(retired)))
        if back:
            log.info("lockers back in service: %s", ", ".join(sorted(back)))

    async def sync_once(self) -> bool:
        """One fetch; the list and retired lockers, if had, are stored and in force before this returns."""
        got = await self.fetch()
        if got is None:
            return False
        users, retired = got
        now = time.time()

        def store(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM staff_users")
            conn.executemany("INSERT INTO staff_users VALUES (?,?,?,?,?)",
                             [(u.id, u.name, u.role, u.carrier, u.pin_hash) for u in users])
            conn.execute("INSERT INTO staff_sync VALUES (1, ?) ON CONFLICT(one) DO UPDATE SET at=excluded.at", (now,))
            conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                         (RETIRED_KEY, json.dumps(sorted(retired))))
        await self.outbox.run(store)
        self.synced_at = now
        self._retire(retired)
        gone = self.sessions.set_synced(users)
        if gone:
            self.counters.inc("staff_changed", len(gone))
            log.info("terminal users changed or left: %s", ", ".join(sorted(gone)))
        self.counters.inc("staff_syncs")
        return True

    async def run(self) -> None:
        """Sync now and then every terminal.staff_sync_s, for as long as the gateway runs."""
        while True:
            await self.sync_once()
            await asyncio.sleep(self.cfg.terminal.staff_sync_s)
