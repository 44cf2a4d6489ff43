"""Eacks: the per-locker watermark of committed events, persisted before the eack that tells the locker so.

The watermark (highest seq of a boot up to which every event is committed) is written in the batch's own
transaction by the outbox writer (`stage`), so the eack can leave as soon as the batch commits; cases the
writer cannot see through fall back to one flusher per locker that saves the watermark and then sends the
eack. Eacks after commits go out in rounds, one per locker per round, all in one write, at QoS 0 (they are
cumulative, protocol §3.6).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial

from . import protocol
from .counters import Counters
from .errors import LockerError, LockerOffline
from .lockerstate import LocalLocker, LockerState
from .mqtt_client import MqttClient
from .stationdb import Outbox, Record

log = logging.getLogger("jincun.gateway.lockerlink")

SAVE_LINK = ("INSERT INTO links VALUES (?,?,?) ON CONFLICT(locker) DO UPDATE SET boot=excluded.boot,"
             " acked=MAX(CASE WHEN links.boot=excluded.boot THEN links.acked ELSE 0 END, excluded.acked)")
EACK_INTERVAL_S = 0.02  # under load, eacks go out in rounds at most this often (one per locker a round)

Spawn = Callable[[Awaitable, str], None]


class Eacks:
    """Watermarks and eacks of every locker of the station."""

    def __init__(self, station: str, outbox: Outbox, counters: Counters, local: dict[str, LocalLocker],
                 client: Callable[[], MqttClient | None], spawn: Spawn) -> None:
        self.station = station
        self.outbox = outbox
        self.counters = counters
        self.local = local
        self._client = client
        self._spawn = spawn
        # persisted watermarks (boot, acked) as the event loop knows them; the eack last sent per locker
        self.links: dict[str, tuple[str, int]] = {}
        self._eacked: dict[str, tuple[str, int]] = {}
        self._topics: dict[str, str] = {}
        # eacks waiting for the next round (see queue)
        self._due: dict[str, tuple[str, int]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._flushers: set[str] = set()
        # the outbox writer thread's own view: per locker the highest seq of the boot up to which every
        # event is committed (only the writer touches it, inside and right after its transactions)
        self._wm: dict[str, tuple[str, int]] = {}
        self._wm_staged: dict[str, tuple[str, int]] = {}
        self._wm_tx = -1

    async def load(self) -> None:
        """Read the persisted watermarks (after the outbox is open)."""
        rows = await self.outbox.query(lambda conn: conn.execute("SELECT locker, boot, acked FROM links").fetchall())
        self.links = {lk: (boot, acked) for lk, boot, acked in rows}
        self._wm = dict(self.links)

    # ---- on the outbox writer ----

    def stage(self, floors: dict[str, tuple[str | None, int]],
              recs: list[Record], stored: list[bool]) -> tuple[dict, Callable[[], None]]:
        """On the outbox writer, in the batch's own transaction: persist each locker's new watermark (written
        once per transaction, just before the commit), so its eack can go out as soon as the batch commits
        instead of after a second commit.

        The watermark grows only through seqs that follow it without a hole, from the last one the writer
        saw committed or the one the event loop knew when it submitted the batch (both committed or
        persisted already). A batch whose events follow a failed one finds the hole and persists nothing;
        the event loop's own tracking and the eack flusher cover that case.
        """
        wm = self._wm
        if self._wm_tx != self.outbox.tx_serial:
            # a new transaction: what earlier ones staged is either committed (now in wm) or rolled back
            self._wm_tx = self.outbox.tx_serial
            self._wm_staged.clear()
        staged_before = self._wm_staged
        cur: dict[str, list] = {}
        for rec in recs:
            st = cur.get(rec.src)
            if st is None or st[0] != rec.boot:
                # only the boot the event loop is on: an older boot's row must not replace the newer one
                base = -1
                fl = floors.get(rec.src)
                if fl is not None and fl[0] == rec.boot:
                    base = fl[1]
                    for w in (wm.get(rec.src), staged_before.get(rec.src)):
                        if w is not None and w[0] == rec.boot and w[1] > base:
                            base = w[1]
                st = cur[rec.src] = [rec.boot, base, base]
            if st[1] >= 0 and rec.seq == st[1] + 1:
                st[1] = rec.seq
        staged = {src: (boot, hi) for src, (boot, hi, start) in cur.items() if hi > start}
        if staged:
            # later batches of the same transaction build on these, and the newest per locker is written
            # once, just before the commit, however many batches the transaction holds
            staged_before.update(staged)
            self.outbox.before_commit("links", self._write_staged)
        return staged, partial(wm.update, staged)

    def _write_staged(self, conn: sqlite3.Connection) -> None:
        conn.executemany(SAVE_LINK, [(src, boot, hi) for src, (boot, hi) in self._wm_staged.items()])

    # ---- on the event loop ----

    def committed(self, staged: dict[str, tuple[str, int]] | None, kick: dict[str, LockerState]) -> None:
        """A batch committed: note the watermarks it persisted, then eack the lockers whose watermark moved."""
        for src, (boot, hi) in (staged or {}).items():
            old = self.links.get(src)
            if old is None or old[0] != boot or old[1] < hi:
                self.links[src] = (boot, hi)
        if not kick:
            return
        # ready() holds only for a locker whose boot was saved, so ev_boot is set
        eacks = [(ls.id, ls.ev_boot, ls.acked) for ls in kick.values() if ls.ev_boot is not None and self.ready(ls)]
        if eacks:
            self.queue(eacks)
        for ls in kick.values():
            self.kick(ls)

    def ready(self, ls: LockerState) -> bool:
        """The watermark was written with the events (and no flusher is busy): the eack can go now."""
        if ls.id in self._flushers or ls.id in self.local:
            return False
        saved = self.links.get(ls.id)
        return saved is not None and saved == (ls.ev_boot, ls.acked) and self._eacked.get(ls.id) != saved

    def kick(self, ls: LockerState) -> None:
        # one watermark write and one eack per locker per commit group, not per event: under load the
        # flusher finds many events acked at once
        if ls.id in self._flushers or self._eacked.get(ls.id) == (ls.ev_boot, ls.acked):
            return
        self._flushers.add(ls.id)
        self._spawn(self._flush(ls), "eack")

    def queue(self, eacks: list[tuple[str, str, int]]) -> None:
        """Eacks after a commit: sent at once if none went out in the last EACK_INTERVAL_S, else with the
        next round. Under load commits come hundreds of times a second; an eack per locker per commit was a
        third of the broker's messages, and being cumulative, one per round says the same."""
        due = self._due
        for locker, boot, seq in eacks:
            due[locker] = (boot, seq)
            # counted as sent from here: the round sends it, so no flusher is needed for it
            self._eacked[locker] = (boot, seq)
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last + EACK_INTERVAL_S - loop.time()
        if wait <= 0:
            self._round()
        else:
            self._timer = loop.call_later(wait, self._round)

    def _round(self) -> None:
        self._timer = None
        self._last = asyncio.get_running_loop().time()
        if self._due:
            eacks = [(locker, boot, seq) for locker, (boot, seq) in self._due.items()]
            self._due.clear()
            self.send(eacks)

    def send(self, eacks: list[tuple[str, str, int]]) -> None:
        """Send cumulative eacks, all in one write (one per locker, after a commit)."""
        client = self._client()
        try:
            if client is None:
                raise LockerOffline("gateway is not connected to the station broker")
            topics = self._topics
            msgs = []
            for locker, boot, seq in eacks:
                topic = topics.get(locker)
                if topic is None:
                    topic = topics[locker] = protocol.build_topic(self.station, locker, "eack")
                # boot and seq come from validated events: the bytes protocol.encode_eack gives, built directly
                msgs.append((topic, b'{"v":1,"boot":"%s","seq":%d}' % (boot.encode(), seq)))
            # QoS 0: an eack lost with a dropped connection is repaired by the next one (they are cumulative)
            # or by the locker's re-send after EACK_RESEND (protocol §3.6); no PUBACKs either way
            client.publish_nowait(msgs, qos=0)
            self.counters.inc("eacks_sent", len(msgs))
        except LockerError as exc:  # BrokerError included
            # the lockers re-send and get the eack then, so these count as done
            self.counters.inc("eack_failed", len(eacks))
            log.warning("%d eacks not sent: %s", len(eacks), exc)
        for locker, boot, seq in eacks:
            self._eacked[locker] = (boot, seq)

    async def _flush(self, ls: LockerState) -> None:
        try:
            while True:
                boot, hi = ls.ev_boot, ls.acked
                if boot is None or self._eacked.get(ls.id) == (boot, hi):
                    return
                saved = self.links.get(ls.id)
                if saved is None or saved[0] != boot or saved[1] < hi:
                    await self._save(ls.id, boot, hi)
                await self.publish(ls.id, boot, hi)
                self._eacked[ls.id] = (boot, hi)
        finally:
            self._flushers.discard(ls.id)

    async def _save(self, locker: str, boot: str, acked: int) -> None:
        # persisted before the eack goes out, so a restarted gateway never waits for events the locker deleted
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(SAVE_LINK, (locker, boot, acked))
            # every event up to acked is committed (or given up by policy): the writer may build on it
            w = self._wm.get(locker)
            if w is None or w[0] != boot or w[1] < acked:
                self._wm[locker] = (boot, acked)
        await self.outbox.run(save)
        self.links[locker] = (boot, acked)

    async def publish(self, locker: str, boot: str, seq: int) -> None:
        local = self.local.get(locker)
        if local is not None:
            local.eack(boot, seq)
            return
        self.send([(locker, boot, seq)])
