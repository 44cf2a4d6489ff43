"""Locker link: the gateway's MQTT session with every locker controller of the station (§2-§3)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol
from collections.abc import Awaitable, Callable

from jincun.mirror import mirror

from . import const as C
from . import protocol
from .config import StationConfig
from .counters import Counters
from .errors import BrokerError, CommandTimeout, LockerError, LockerOffline, OutboxError, ProtocolError
from .fwserve import FwServe, FwServeError
from .mqtt_client import MqttClient
from .mqtt_codec import Publish
from .stationdb import Outbox, Record

log = logging.getLogger("jincun.gateway.lockerlink")
_BOOT = re.compile(C.BOOT_RE)

_SAVE_LINK = ("INSERT INTO links VALUES (?,?,?) ON CONFLICT(locker) DO UPDATE SET boot=excluded.boot,"
              " acked=MAX(CASE WHEN links.boot=excluded.boot THEN links.acked ELSE 0 END, excluded.acked)")
MAX_PENDING_CMDS = 256
MAX_INFLIGHT_EVENTS = 5000
RESUME_INFLIGHT_EVENTS = MAX_INFLIGHT_EVENTS // 2
MQTT_KEEPALIVE_S = 30
# publishes awaiting their PUBACK: eacks are not waited for, and under a burst their PUBACKs queue behind the
# events the broker is still sending, so the window must hold a few seconds of eacks
MQTT_MAX_INFLIGHT = 8192
REBIRTH_MIN_INTERVAL_S = 2.0
PUBLISH_TIMEOUT_S = 3.0
EACK_INTERVAL_S = 0.02  # under load, eacks go out in rounds at most this often (one per locker a round)
BIRTH_GRACE_S = 1.0


@dataclass
class Comp:
    """Live state of one compartment as the locker last reported it."""

    n: int
    size: str
    st: str = "unknown"
    door: str = "unknown"
    occ: bool = False
    ref: str | None = None
    mm: bool = False  # the sensor reads a parcel the compartment's state does not account for

    def view(self) -> dict:
        return {"n": self.n, "size": self.size, "st": self.st, "door": self.door, "occ": self.occ,
                "ref": self.ref, "mm": self.mm}

    def assignable(self) -> bool:
        """Free for a new deposit: empty by state, and by its last occupancy reading (the sensor wins)."""
        return self.st == "empty" and not self.occ and not self.mm

    def follow(self, evt: dict) -> None:
        """Move as the locker's event says, by the one mirror the cloud uses too (jincun/mirror.py)."""
        cur = {"st": self.st, "door": self.door, "occ": self.occ, "ref": self.ref, "mm": self.mm}
        for key, value in mirror(evt, cur).items():
            setattr(self, key, value)


@dataclass
class LockerState:
    """Session state of one locker: connection, boot, event watermark, compartments."""

    id: str
    comps: dict[int, Comp]
    online: bool = False
    boot: str | None = None
    fw: str | None = None
    birth_at: float | None = None
    last_seen: float | None = None
    ev_boot: str | None = None
    acked: int = 0
    max_seq: int = 0
    committed: set[int] = field(default_factory=set)
    last_rebirth: float = 0.0
    vault: int | None = None

    def view(self) -> dict:
        return {"id": self.id, "online": self.online, "boot": self.boot, "fw": self.fw,
                "synced": self.birth_at is not None, "last_seen": self.last_seen,
                "acked_seq": self.acked, "comps": [c.view() for c in sorted(self.comps.values(), key=lambda c: c.n)]}


class LocalLocker(Protocol):
    """A locker the gateway runs itself (a lock board): commands are calls, eacks are calls."""

    online: bool

    async def command(self, op: str, fields: dict) -> dict: ...

    def eack(self, boot: str, seq: int) -> None: ...


EventHandler = Callable[[str, dict], Awaitable[None]]
BirthHandler = Callable[[str], Awaitable[None]]


class LockerLink:
    """Subscribes to the station's lockers, stores what they send, acks events, sends commands."""

    def __init__(self, cfg: StationConfig, outbox: Outbox, counters: Counters) -> None:
        self.cfg = cfg
        self.station = cfg.station
        self.outbox = outbox
        self.counters = counters
        self.lockers = {lk.id: LockerState(lk.id, {c.n: Comp(c.n, c.size) for c in lk.comps})
                        for lk in cfg.all_lockers()}
        self.local: dict[str, LocalLocker] = {}
        self.event_handlers: list[EventHandler] = []
        self.birth_handlers: list[BirthHandler] = []
        self.connected = asyncio.Event()
        self._client: MqttClient | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._pending_locker: dict[str, str] = {}
        self._tasks: set[asyncio.Task] = set()
        # persisted watermarks (boot, acked) as the event loop knows them; the eack last sent per locker
        self._links: dict[str, tuple[str, int]] = {}
        self._eacked: dict[str, tuple[str, int]] = {}
        self._eack_topics: dict[str, str] = {}
        # eacks waiting for the next round (see _queue_eacks)
        self._eack_due: dict[str, tuple[str, int]] = {}
        self._eack_timer: asyncio.TimerHandle | None = None
        self._eack_last = 0.0
        # the outbox writer thread's own view: per locker the highest seq of the boot up to which every
        # event is committed (only the writer touches it, inside and right after its transactions)
        self._wm: dict[str, tuple[str, int]] = {}
        self._wm_staged: dict[str, tuple[str, int]] = {}
        self._wm_tx = -1
        self._inflight_n = 0
        self._inflight_free = asyncio.Event()
        # events accepted from the current batch of messages, submitted to the outbox together
        self._batch_recs: list[Record] = []
        self._batch_items: list[tuple[LockerState, dict, bool]] = []
        # evt topics of this station's lockers, so a batch skips topic parsing for all but the first message
        self._evt_topics: dict[str, LockerState] = {}
        # event types the handlers act on (None: all); the rest need no handler task
        self.handled_types: set[str] | None = None
        self._eack_flushers: set[str] = set()
        # the firmware set each locker is downloading now (fwreqs of other lockers are refused)
        self.fw_servers: dict[str, FwServe] = {}

    # ---- lifecycle ----

    async def load(self) -> None:
        """Read the persisted event watermarks (call after the outbox is open)."""
        rows = await self.outbox.query(lambda conn: conn.execute("SELECT locker, boot, acked FROM links").fetchall())
        self._links = {lk: (boot, acked) for lk, boot, acked in rows}
        self._wm = dict(self._links)

    async def run(self) -> None:
        """Connect, subscribe and handle messages until cancelled; raises on a lost connection."""
        m = self.cfg.mqtt
        # clean_session false: while the gateway restarts or pauses reading, the broker queues for it.
        # The client id is the username: the station broker sets it so anyway (use_username_as_clientid)
        client = MqttClient(m.username, username=m.username, password=m.password,
                            clean_session=False, keepalive=MQTT_KEEPALIVE_S, on_messages=self.handle_batch,
                            ack_timeout=PUBLISH_TIMEOUT_S, max_inflight=MQTT_MAX_INFLIGHT)
        # set before the CONNACK: a persistent session's queued messages may arrive right behind it
        self._client = client
        try:
            await client.connect(m.host, m.port)
            # the kinds lockers send, not a wildcard: the gateway's own commands and eacks are not echoed
            # back to it (the ACL lets a locker write nothing else)
            await client.subscribe([(f"{C.PREFIX}/{self.station}/+/{k}", 1) for k in C.UP_KINDS])
            self.connected.set()
            log.info("locker link connected to %s:%s", m.host, m.port)
            assert client.closed is not None
            await client.closed  # raises the BrokerError that ended the session
        finally:
            self.connected.clear()
            self._client = None
            await client.close()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(LockerOffline("gateway lost the station broker"))
            for lk in self.lockers.values():
                # without the broker the gateway cannot know; the retained status re-arms it on reconnect
                if lk.id not in self.local:
                    lk.online = False

    async def drain(self, timeout: float = 2.0) -> None:
        """Let the background work started by messages finish, then cancel what is left.

        Cancelling is safe: an event whose eack was not sent is re-sent by its locker.
        """
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Awaitable, what: str) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.counters.inc("task_errors")
                log.error("%s failed: %r", what, t.exception())
        task.add_done_callback(done)

    # ---- incoming ----

    async def handle(self, topic: str, payload: bytes) -> None:
        """Handle one MQTT message; bad input is counted and dropped, never raised."""
        self._dispatch(topic, payload)
        self._flush_batch()
        while self._inflight_n >= MAX_INFLIGHT_EVENTS:
            self._inflight_free.clear()
            await self._inflight_free.wait()

    def handle_batch(self, msgs: list[Publish]) -> None:
        """Handle every message of one socket read; their events go to the outbox as one submission.

        Called by the MQTT client in data_received, so it must not block: when too many events are in
        flight to the outbox, the client stops reading and the broker holds the rest.
        """
        topics = self._evt_topics
        decode = protocol.decode
        recs, items = self._batch_recs, self._batch_items
        now = time.time()
        for m in msgs:
            if m[5] and not m[0].endswith(C.RETAINED_SUFFIX):
                self.counters.inc("retained_ignored")
                log.warning("ignored a retained message on %r (only status is retained)", m[0][:120])
                continue
            ls = topics.get(m[0])
            if ls is None:
                self._flush_batch()  # keep the outbox in arrival order across kinds
                self._dispatch(m[0], m[1])
                continue
            payload = m[1]
            try:
                evt = decode("evt", payload)
            except ProtocolError:
                self._flush_batch()
                self._dispatch(m[0], payload)
                continue
            ls.last_seen = now
            boot, seq = evt["boot"], evt["seq"]
            if boot == ls.ev_boot and ls.acked < seq == ls.max_seq + 1:
                # the common case, in order and new: the checks of _accept_evt, inline
                ls.max_seq = seq
                recs.append(Record(ls.id, "evt", evt, boot, seq, now, raw=payload.decode()))
                items.append((ls, evt, True))
            else:
                self._accept_evt(ls, evt, raw=payload.decode())
        self._flush_batch()
        client = self._client
        if client is not None and self._inflight_n >= MAX_INFLIGHT_EVENTS and not client.paused:
            self.counters.inc("link_pauses")
            client.pause()

    def _flush_batch(self) -> None:
        recs, items = self._batch_recs, self._batch_items
        if not recs:
            return
        # emptied in place: handle_batch holds these two lists across the flushes it makes
        recs, items = recs[:], items[:]
        self._batch_recs.clear()
        self._batch_items.clear()
        floors = {ls.id: (ls.ev_boot, ls.acked) for ls in {it[0].id: it[0] for it in items}.values()}
        try:
            fut = self.outbox.submit_many(recs, partial(self._stage_watermarks, floors))
        except OutboxError as exc:
            # not acked, so the lockers keep them in flash and re-send
            self.counters.inc("evt_not_stored", len(recs))
            log.error("%d events refused: %s", len(recs), exc)
            return
        self._inflight_n += len(recs)
        fut.add_done_callback(partial(self._batch_done, items))

    def _dispatch(self, topic: str, payload: bytes) -> None:
        try:
            t = protocol.parse_topic(topic)
        except ProtocolError:
            self.counters.inc("rejected_topics")
            log.warning("dropped message on bad topic %r", topic[:120])
            return
        if t.station != self.station or t.kind in C.DOWN_KINDS:
            return  # our own commands and acks echoed back by the wildcard subscription
        ls = self.lockers.get(t.locker)
        if ls is None:
            self.counters.inc("unknown_lockers")
            log.warning("dropped %s from unknown locker %r", t.kind, t.locker)
            return
        if t.kind == "evt":
            self._evt_topics[topic] = ls
        try:
            body = protocol.decode(t.kind, payload)
        except ProtocolError as exc:
            self.counters.inc("rejected_payloads")
            log.warning("rejected %s from %s: %s", t.kind, t.locker, exc)
            if t.kind == "evt" and exc.code == C.E_BAD_FIELD:
                self._quarantine(ls, payload)
            return
        ls.last_seen = time.time()
        if t.kind == "evt":
            # stored as received: the locker's own bytes go to the cloud, and nothing is encoded again
            self._accept_evt(ls, body, raw=payload.decode("utf-8"))
            return
        getattr(self, f"_on_{t.kind}")(ls, body)

    async def handle_local(self, locker: str, kind: str, body: dict) -> None:
        """A message from a locker the gateway runs itself, checked like one that came over MQTT."""
        ls = self.lockers[locker]
        try:
            body = protocol.decode(kind, json.dumps(body, separators=(",", ":")).encode())
        except ProtocolError as exc:
            self.counters.inc("rejected_payloads")
            log.error("local locker %s made a bad %s: %s", locker, kind, exc)
            return
        ls.last_seen = time.time()
        if kind == "evt":
            self._accept_evt(ls, body)
            await self.handle_flush()
            return
        self._flush_batch()
        getattr(self, f"_on_{kind}")(ls, body)

    async def handle_flush(self) -> None:
        """Submit the accepted events and wait while too many are in flight to the outbox."""
        self._flush_batch()
        while self._inflight_n >= MAX_INFLIGHT_EVENTS:
            self._inflight_free.clear()
            await self._inflight_free.wait()

    def _set_ev_boot(self, ls: LockerState, boot: str, guess_acked: int) -> None:
        stored = self._links.get(ls.id)
        ls.ev_boot = boot
        ls.committed.clear()
        if stored and stored[0] == boot:
            ls.acked = stored[1]
        else:
            if guess_acked:
                self.counters.inc("link_resync")
                log.info("locker %s boot %s: no watermark on record, resuming after seq %d",
                         ls.id, boot, guess_acked)
            ls.acked = max(0, guess_acked)
        ls.max_seq = ls.acked

    def _quarantine(self, ls: LockerState, payload: bytes) -> None:
        """Keep a malformed event that still names its (boot, seq): the locker re-sends it until acked,
        so dropping it would block every later eack. It goes to the cloud, which dead-letters it."""
        obj = json.loads(payload)
        boot, seq = obj.get("boot"), obj.get("seq")
        if not (isinstance(boot, str) and _BOOT.match(boot) and type(seq) is int and 1 <= seq <= C.SEQ_MAX):
            return
        self.counters.inc("quarantined_events")
        # stored as received (the payload decoded as UTF-8 to be judged at all): the cloud keeps these bytes
        self._accept_evt(ls, obj, valid=False, raw=payload.decode("utf-8"))

    def _accept_evt(self, ls: LockerState, evt: dict, valid: bool = True, raw: str | None = None) -> None:
        """Check an event against the locker's watermark and add it to the current batch if it is next."""
        boot, seq = evt["boot"], evt["seq"]
        if boot != ls.ev_boot:
            # a locker re-sends its oldest unacked event first, so one seen without a birth starts there
            self._set_ev_boot(ls, boot, seq - 1)
            if ls.birth_at is None or ls.boot != boot:
                self._rebirth(ls, "events from a boot without a birth")
        if seq <= ls.acked:
            self.counters.inc("evt_duplicates")
            saved = self._links.get(ls.id)
            if saved and saved[0] == boot:
                self._spawn(self._publish_eack(ls.id, boot, saved[1]), "eack")
            return
        if seq > max(ls.max_seq, ls.acked) + 1:
            # Events are stored in order per locker: one past a gap waits in the locker's flash, which sends
            # everything unacknowledged again, oldest first, when asked for a rebirth (or when no eack comes).
            self.counters.inc("seq_gaps")
            log.warning("locker %s boot %s: seq gap %d -> %d", ls.id, boot, max(ls.max_seq, ls.acked), seq)
            self._rebirth(ls, "seq gap")
            return
        ls.max_seq = max(ls.max_seq, seq)
        self._batch_recs.append(Record(src=ls.id, kind="evt", body=evt, boot=boot, seq=seq, raw=raw))
        self._batch_items.append((ls, evt, valid))

    def _stage_watermarks(self, floors: dict[str, tuple[str | None, int]],
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
        conn.executemany(_SAVE_LINK, [(src, boot, hi) for src, (boot, hi) in self._wm_staged.items()])

    def _batch_done(self, items: list[tuple[LockerState, dict, bool]], fut: asyncio.Future) -> None:
        """A batch's commit finished: apply its events, advance the eack watermarks, call the handlers.

        One done-callback per batch, not a task or future per event: at thousands of events a second the
        per-event machinery was most of the gateway's CPU.
        """
        self._inflight_n -= len(items)
        if self._inflight_n < MAX_INFLIGHT_EVENTS:
            self._inflight_free.set()
        client = self._client
        if client is not None and client.paused and self._inflight_n <= RESUME_INFLIGHT_EVENTS:
            client.resume()
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self.counters.inc("evt_not_stored", len(items))
            log.error("%d events not stored, their lockers will re-send: %s", len(items), exc)
            return
        kick: dict[str, LockerState] = {}
        handled = self.handled_types
        handlers = self.event_handlers
        apply = self._apply
        results, staged = fut.result()
        for src, (boot, hi) in (staged or {}).items():
            old = self._links.get(src)
            if old is None or old[0] != boot or old[1] < hi:
                self._links[src] = (boot, hi)
        for (ls, evt, valid), stored in zip(items, results):
            seq = evt["seq"]
            new = stored and valid
            if new:
                if "c" in evt:
                    apply(ls, evt)
            else:
                self.counters.inc("evt_duplicates")
            if seq > ls.acked and ls.ev_boot == evt["boot"]:
                if seq == ls.acked + 1 and not ls.committed:
                    ls.acked = seq
                    kick[ls.id] = ls
                else:
                    ls.committed.add(seq)
                    hi = ls.acked
                    while hi + 1 in ls.committed:
                        hi += 1
                        ls.committed.discard(hi)
                    if hi > ls.acked:
                        ls.acked = hi
                        kick[ls.id] = ls
            if new and handlers and (handled is None or evt["type"] in handled):
                for h in handlers:
                    self._spawn(h(ls.id, evt), f"event handler for {evt['type']}")
        if kick:
            # _eack_ready holds only for a locker whose boot was saved, so ev_boot is set
            eacks = [(ls.id, ls.ev_boot, ls.acked) for ls in kick.values()
                     if ls.ev_boot is not None and self._eack_ready(ls)]
            if eacks:
                self._queue_eacks(eacks)
            for ls in kick.values():
                self._kick_eack(ls)

    def _eack_ready(self, ls: LockerState) -> bool:
        """The watermark was written with the events (and no flusher is busy): the eack can go now."""
        if ls.id in self._eack_flushers or ls.id in self.local:
            return False
        saved = self._links.get(ls.id)
        return saved is not None and saved == (ls.ev_boot, ls.acked) and self._eacked.get(ls.id) != saved

    def _kick_eack(self, ls: LockerState) -> None:
        # one watermark write and one eack per locker per commit group, not per event: under load the
        # flusher finds many events acked at once
        if ls.id in self._eack_flushers or self._eacked.get(ls.id) == (ls.ev_boot, ls.acked):
            return
        self._eack_flushers.add(ls.id)
        self._spawn(self._flush_eacks(ls), "eack")

    def _queue_eacks(self, eacks: list[tuple[str, str, int]]) -> None:
        """Eacks after a commit: sent at once if none went out in the last EACK_INTERVAL_S, else with the
        next round. Under load commits come hundreds of times a second; an eack per locker per commit was a
        third of the broker's messages, and being cumulative, one per round says the same."""
        due = self._eack_due
        for locker, boot, seq in eacks:
            due[locker] = (boot, seq)
            # counted as sent from here: the round sends it, so no flusher is needed for it
            self._eacked[locker] = (boot, seq)
        if self._eack_timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._eack_last + EACK_INTERVAL_S - loop.time()
        if wait <= 0:
            self._eack_round()
        else:
            self._eack_timer = loop.call_later(wait, self._eack_round)

    def _eack_round(self) -> None:
        self._eack_timer = None
        self._eack_last = asyncio.get_running_loop().time()
        if self._eack_due:
            eacks = [(locker, boot, seq) for locker, (boot, seq) in self._eack_due.items()]
            self._eack_due.clear()
            self._send_eacks(eacks)

    def _send_eacks(self, eacks: list[tuple[str, str, int]]) -> None:
        """Send cumulative eacks, all in one write (one per locker, after a commit)."""
        client = self._client
        try:
            if client is None:
                raise LockerOffline("gateway is not connected to the station broker")
            topics = self._eack_topics
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
        except LockerError as exc:
            # the lockers re-send and get the eack then, so these count as done
            self.counters.inc("eack_failed", len(eacks))
            log.warning("%d eacks not sent: %s", len(eacks), exc)
        for locker, boot, seq in eacks:
            self._eacked[locker] = (boot, seq)

    async def _flush_eacks(self, ls: LockerState) -> None:
        try:
            while True:
                boot, hi = ls.ev_boot, ls.acked
                if boot is None or self._eacked.get(ls.id) == (boot, hi):
                    return
                saved = self._links.get(ls.id)
                if saved is None or saved[0] != boot or saved[1] < hi:
                    await self._save_link(ls.id, boot, hi)
                await self._publish_eack(ls.id, boot, hi)
                self._eacked[ls.id] = (boot, hi)
        finally:
            self._eack_flushers.discard(ls.id)

    async def _save_link(self, locker: str, boot: str, acked: int) -> None:
        # persisted before the eack goes out, so a restarted gateway never waits for events the locker deleted
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(_SAVE_LINK, (locker, boot, acked))
            # every event up to acked is committed (or given up by policy): the writer may build on it
            w = self._wm.get(locker)
            if w is None or w[0] != boot or w[1] < acked:
                self._wm[locker] = (boot, acked)
        await self.outbox.run(save)
        self._links[locker] = (boot, acked)

    @staticmethod
    def _apply(ls: LockerState, evt: dict) -> None:
        comp = ls.comps.get(evt["c"]) if "c" in evt else None
        if comp is not None:
            comp.follow(evt)

    def _on_birth(self, ls: LockerState, b: dict) -> None:
        ls.online = True
        ls.boot = b["boot"]
        ls.fw = b["fw"]
        ls.vault = b.get("vault")
        ls.birth_at = time.time()
        for c in b["comps"]:
            comp = ls.comps.get(c["n"])
            if comp is None:
                self.counters.inc("unknown_compartments")
                log.warning("locker %s reports compartment %d that is not configured", ls.id, c["n"])
                continue
            if comp.size != c["size"]:
                log.warning("locker %s compartment %d: size %s, configured %s", ls.id, c["n"], c["size"], comp.size)
                comp.size = c["size"]
            comp.st, comp.door, comp.occ, comp.ref = c["st"], c["door"], c["occ"], c.get("ref")
            comp.mm = c.get("mm", False)
        if b["boot"] != ls.ev_boot:
            self._set_ev_boot(ls, b["boot"], b["seq"] - b.get("outbox", 0))
        self._store(ls, "birth", b)
        self._spawn(self.send_command(ls.id, "time", ts=int(time.time())), "time command")
        for h in self.birth_handlers:
            self._spawn(h(ls.id), "birth handler")

    def _on_status(self, ls: LockerState, s: dict) -> None:
        if s["state"] == "online":
            ls.online = True
            if ls.birth_at is None or ls.boot != s["boot"]:
                # a retained status seen without a birth (the gateway restarted): ask for a snapshot,
                # unless the locker's own birth is just behind it
                self._spawn(self._birth_or_rebirth(ls, s["boot"]), "birth check")
            ls.boot = s["boot"]
        else:
            if ls.online:
                self.counters.inc("lockers_lost")
                log.warning("locker %s lost (last will)", ls.id)
            ls.online = False
            ls.birth_at = None
            for cmd_id in [k for k, lk in self._pending_locker.items() if lk == ls.id]:
                fut = self._pending.get(cmd_id)
                if fut is not None and not fut.done():
                    fut.set_exception(LockerOffline(f"locker {ls.id} went offline"))
        self._store(ls, "status", s)

    async def _birth_or_rebirth(self, ls: LockerState, boot: str) -> None:
        await asyncio.sleep(BIRTH_GRACE_S)
        if ls.online and ls.boot == boot and ls.birth_at is None:
            self._rebirth(ls, "online without a birth")

    def _on_tele(self, ls: LockerState, t: dict) -> None:
        self._store(ls, "tele", t)

    def _on_fwreq(self, ls: LockerState, req: dict) -> None:
        """Answer a chunk request with one `fw_chunk` command; the locker's next fwreq is its ack."""
        srv = self.fw_servers.get(ls.id)
        if srv is None:
            self.counters.inc("fwreq_refused")
            log.warning("fwreq from %s with no update on offer (version %s)", ls.id, req["ver"])
            return
        try:
            payload = srv.answer(json.dumps(req, separators=(",", ":")).encode(), cmd_id="f" + secrets.token_hex(8))
        except FwServeError as exc:
            # the locker asks again, gives up after 10 tries and reports `timeout`
            self.counters.inc("fwreq_refused")
            log.warning("fwreq from %s refused: %s", ls.id, exc)
            return
        self._spawn(self._publish_chunk(ls.id, payload), "fw_chunk")

    async def _publish_chunk(self, locker: str, payload: bytes) -> None:
        try:
            await self._publish(locker, "cmd", payload)
            self.counters.inc("fw_chunks_sent")
        except LockerOffline as exc:
            self.counters.inc("fw_chunks_failed")
            log.warning("fw_chunk to %s not sent: %s", locker, exc)

    def _on_ack(self, ls: LockerState, a: dict) -> None:
        fut = self._pending.pop(a["id"], None)
        if fut is None:
            self.counters.inc("stray_acks")
            return
        if not fut.done():
            fut.set_result(a)

    def _store(self, ls: LockerState, kind: str, body: dict) -> None:
        """Store a seq-less locker record under the gateway's numbering (boot = epoch)."""
        try:
            fut = self.outbox.submit(Record(src=ls.id, kind=kind, body=body))
        except OutboxError as exc:
            self.counters.inc(f"dropped_{kind}")
            log.error("%s from %s not stored: %s", kind, ls.id, exc)
            return

        async def wait() -> None:
            try:
                await fut
            except OutboxError as exc:
                self.counters.inc(f"dropped_{kind}")
                log.error("%s from %s not stored: %s", kind, ls.id, exc)
        self._spawn(wait(), f"store {kind}")

    # ---- outgoing ----

    def _rebirth(self, ls: LockerState, why: str) -> None:
        now = time.monotonic()
        if now - ls.last_rebirth < REBIRTH_MIN_INTERVAL_S:
            return
        ls.last_rebirth = now
        self.counters.inc("rebirths_sent")
        log.info("asking locker %s for a birth: %s", ls.id, why)
        self._spawn(self.send_command(ls.id, "rebirth", wait=False), "rebirth command")

    async def _publish(self, locker: str, kind: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            raise LockerOffline("gateway is not connected to the station broker")
        try:
            # a short wait: a publish caught in a broker restart must not hold its caller for long
            await client.publish(protocol.build_topic(self.station, locker, kind), payload, qos=1,
                                 timeout=PUBLISH_TIMEOUT_S)
        except BrokerError as exc:
            raise LockerOffline(f"publish failed: {exc}") from exc

    async def _publish_eack(self, locker: str, boot: str, seq: int) -> None:
        local = self.local.get(locker)
        if local is not None:
            local.eack(boot, seq)
            return
        self._send_eacks([(locker, boot, seq)])

    async def send_command(self, locker: str, op: str, *, timeout: float | None = None, wait: bool = True,
                           **fields: Any) -> dict | None:
        """Send a command and return the locker's ack dict (ok may be false); CommandTimeout if none."""
        ls = self.lockers.get(locker)
        if ls is None:
            raise LockerError(f"unknown locker {locker!r}")
        if len(self._pending) >= MAX_PENDING_CMDS:
            self.counters.inc("cmd_refused")
            raise LockerError("too many commands waiting for acks")
        cmd_id = "g" + secrets.token_hex(8)
        payload = protocol.encode_cmd(cmd_id, op, **fields)
        local = self.local.get(locker)
        if local is not None:
            self.counters.inc("cmds_sent")
            ack = {"v": 1, "id": cmd_id, **await local.command(op, fields)}
            return ack if wait else None
        if not wait:
            await self._publish(locker, "cmd", payload)
            return None
        fut = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        self._pending_locker[cmd_id] = locker
        try:
            await self._publish(locker, "cmd", payload)
            self.counters.inc("cmds_sent")
            return await asyncio.wait_for(fut, timeout or self.cfg.gateway.cmd_timeout_s)
        except TimeoutError:
            self.counters.inc("cmd_timeouts")
            raise CommandTimeout(f"locker {locker} did not ack {op} {cmd_id}") from None
        finally:
            self._pending.pop(cmd_id, None)
            self._pending_locker.pop(cmd_id, None)

    # ---- views ----

    def online_count(self) -> int:
        return sum(1 for ls in self.lockers.values() if ls.online)

    def view(self) -> list[dict]:
        return [ls.view() for ls in self.lockers.values()]

