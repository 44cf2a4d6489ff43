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
from typing import Any, Awaitable, Callable, Protocol

import aiomqtt

from . import const as C
from . import protocol
from .config import StationConfig
from .counters import Counters
from .errors import CommandTimeout, LockerError, LockerOffline, OutboxError, ProtocolError
from .fwserve import FwServe, FwServeError
from .outbox import Outbox, Record

log = logging.getLogger("jincun.gateway.lockerlink")
_BOOT = re.compile(C.BOOT_RE)

LINK_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (locker TEXT PRIMARY KEY, boot TEXT NOT NULL, acked INTEGER NOT NULL);
"""
MAX_PENDING_CMDS = 256
MAX_INFLIGHT_EVENTS = 5000
INCOMING_QUEUE_MAX = 100_000
REBIRTH_MIN_INTERVAL_S = 2.0
PUBLISH_TIMEOUT_S = 3.0
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

    def view(self) -> dict:
        return {"n": self.n, "size": self.size, "st": self.st, "door": self.door, "occ": self.occ,
                "ref": self.ref}


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


class _DropCounter(logging.Handler):
    """Counts the messages aiomqtt discards when its incoming queue is full (it only logs them)."""

    def __init__(self, counters: Counters) -> None:
        super().__init__(logging.WARNING)
        self.counters = counters

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Message queue is full"):
            # the lockers re-send what was not eacked, so this costs time, not data
            self.counters.inc("mqtt_incoming_dropped")


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
        self._client: aiomqtt.Client | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._pending_locker: dict[str, str] = {}
        self._tasks: set[asyncio.Task] = set()
        self._links: dict[str, tuple[str, int]] = {}
        self._inflight_n = 0
        self._inflight_free = asyncio.Event()
        # event types the handlers act on (None: all); the rest need no handler task
        self.handled_types: set[str] | None = None
        self._eack_flushers: set[str] = set()
        # the firmware set each locker is downloading now (fwreqs of other lockers are refused)
        self.fw_servers: dict[str, FwServe] = {}
        # a logger of this link's own (not registered globally), so its drop counter dies with the link
        self._mqtt_log = logging.Logger("jincun.gateway.mqtt")
        self._mqtt_log.parent = log
        self._mqtt_log.addHandler(_DropCounter(counters))
        outbox.add_schema(LINK_SCHEMA)

    # ---- lifecycle ----

    async def load(self) -> None:
        """Read the persisted event watermarks (call after the outbox is open)."""
        rows = await self.outbox.query(lambda conn: conn.execute("SELECT locker, boot, acked FROM links").fetchall())
        self._links = {lk: (boot, acked) for lk, boot, acked in rows}

    async def run(self) -> None:
        """Connect, subscribe and handle messages until cancelled; raises on a lost connection."""
        m = self.cfg.mqtt
        client = aiomqtt.Client(m.host, m.port, username=m.username, password=m.password,
                                identifier=f"{self.station}-gateway", clean_session=False, logger=self._mqtt_log,
                                max_queued_incoming_messages=INCOMING_QUEUE_MAX, keepalive=30)
        try:
            async with client:
                self._client = client
                await client.subscribe(f"{C.PREFIX}/{self.station}/+/+", qos=1)
                self.connected.set()
                log.info("locker link connected to %s:%s", m.host, m.port)
                async for msg in client.messages:
                    await self.handle(str(msg.topic), bytes(msg.payload or b""))
        except aiomqtt.MqttError as exc:
            raise LockerError(f"broker connection: {exc}") from exc
        finally:
            self.connected.clear()
            self._client = None
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
        try:
            body = protocol.decode(t.kind, payload)
        except ProtocolError as exc:
            self.counters.inc("rejected_payloads")
            log.warning("rejected %s from %s: %s", t.kind, t.locker, exc)
            if t.kind == "evt" and exc.code == C.E_BAD_FIELD:
                await self._quarantine(ls, payload)
            return
        ls.last_seen = time.time()
        if t.kind == "evt":
            # stored as received: the locker's own bytes go to the cloud, and nothing is encoded again
            await self._on_evt(ls, body, raw=payload.decode("utf-8"))
            return
        await getattr(self, f"_on_{t.kind}")(ls, body)

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
        await getattr(self, f"_on_{kind}")(ls, body)

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

    async def _quarantine(self, ls: LockerState, payload: bytes) -> None:
        """Keep a malformed event that still names its (boot, seq): the locker re-sends it until acked,
        so dropping it would block every later eack. It goes to the cloud, which dead-letters it."""
        obj = json.loads(payload)
        boot, seq = obj.get("boot"), obj.get("seq")
        if not (isinstance(boot, str) and _BOOT.match(boot) and type(seq) is int and 1 <= seq <= C.SEQ_MAX):
            return
        self.counters.inc("quarantined_events")
        await self._on_evt(ls, obj, valid=False)

    async def _on_evt(self, ls: LockerState, evt: dict, valid: bool = True, raw: str | None = None) -> None:
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
        try:
            fut = self.outbox.submit(Record(src=ls.id, kind="evt", body=evt, boot=boot, seq=seq, raw=raw))
        except OutboxError as exc:
            # not acked, so the locker keeps it in flash and re-sends
            self.counters.inc("evt_not_stored")
            log.error("event %s/%s/%s refused: %s", ls.id, boot, seq, exc)
            return
        while self._inflight_n >= MAX_INFLIGHT_EVENTS:
            # back-pressure: stop taking messages; the broker queues them meanwhile
            self._inflight_free.clear()
            await self._inflight_free.wait()
        self._inflight_n += 1
        fut.add_done_callback(lambda f: self._evt_done(ls, evt, valid, f))

    def _evt_done(self, ls: LockerState, evt: dict, valid: bool, fut: asyncio.Future) -> None:
        """The event's commit finished: apply it, advance the eack watermark, call the handlers.

        A done-callback rather than a task per event: at thousands of events a second the task
        machinery was most of the gateway's CPU.
        """
        self._inflight_n -= 1
        if self._inflight_n < MAX_INFLIGHT_EVENTS:
            self._inflight_free.set()
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self.counters.inc("evt_not_stored")
            log.error("event %s/%s/%s not stored, locker will re-send: %s", ls.id, evt["boot"], evt["seq"], exc)
            return
        boot, seq = evt["boot"], evt["seq"]
        new = fut.result() and valid
        if new:
            self._apply(ls, evt)
        else:
            self.counters.inc("evt_duplicates")
        if ls.ev_boot == boot and seq > ls.acked:
            ls.committed.add(seq)
            hi = ls.acked
            while hi + 1 in ls.committed:
                hi += 1
                ls.committed.discard(hi)
            if hi > ls.acked:
                ls.acked = hi
                self._kick_eack(ls)
        if new and (self.handled_types is None or evt["type"] in self.handled_types):
            for h in self.event_handlers:
                self._spawn(h(ls.id, evt), f"event handler for {evt['type']}")

    def _kick_eack(self, ls: LockerState) -> None:
        # one watermark write and one eack per locker per commit group, not per event: under load the
        # flusher finds many events acked at once
        if ls.id not in self._eack_flushers:
            self._eack_flushers.add(ls.id)
            self._spawn(self._flush_eacks(ls), "eack")

    async def _flush_eacks(self, ls: LockerState) -> None:
        try:
            while True:
                boot, hi = ls.ev_boot, ls.acked
                if boot is None or self._links.get(ls.id) == (boot, hi):
                    return
                await self._save_link(ls.id, boot, hi)
                await self._publish_eack(ls.id, boot, hi)
        finally:
            self._eack_flushers.discard(ls.id)

    async def _save_link(self, locker: str, boot: str, acked: int) -> None:
        # persisted before the eack goes out, so a restarted gateway never waits for events the locker deleted
        def save(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO links VALUES (?,?,?) ON CONFLICT(locker) DO UPDATE SET boot=excluded.boot,"
                         " acked=MAX(CASE WHEN links.boot=excluded.boot THEN links.acked ELSE 0 END, excluded.acked)",
                         (locker, boot, acked))
        await self.outbox.run(save)
        self._links[locker] = (boot, acked)

    def _apply(self, ls: LockerState, evt: dict) -> None:
        t = evt["type"]
        comp = ls.comps.get(evt.get("c")) if "c" in evt else None
        if comp is None:
            return
        if t == "door":
            comp.door = "open" if evt["open"] else "closed"
        elif t == "deposit":
            comp.st, comp.occ, comp.ref = "occupied", True, evt["ref"]
        elif t in ("deposit_void", "pickup"):
            comp.st, comp.occ, comp.ref = "empty", False, None
        elif t == "state":
            comp.st = evt["st"]
        elif t == "alarm" and evt["kind"] == "lock_jam":
            comp.st = "fault"  # the controller takes a jammed compartment out of service itself

    async def _on_birth(self, ls: LockerState, b: dict) -> None:
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
        if b["boot"] != ls.ev_boot:
            self._set_ev_boot(ls, b["boot"], b["seq"] - b.get("outbox", 0))
        self._store(ls, "birth", b)
        self._spawn(self.send_command(ls.id, "time", ts=int(time.time())), "time command")
        for h in self.birth_handlers:
            self._spawn(h(ls.id), "birth handler")

    async def _on_status(self, ls: LockerState, s: dict) -> None:
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

    async def _on_tele(self, ls: LockerState, t: dict) -> None:
        self._store(ls, "tele", t)

    async def _on_fwreq(self, ls: LockerState, req: dict) -> None:
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

    async def _on_ack(self, ls: LockerState, a: dict) -> None:
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
            # a short wait: a publish caught in a broker restart must not hold the eack flusher for long
            await client.publish(protocol.build_topic(self.station, locker, kind), payload, qos=1,
                                 timeout=PUBLISH_TIMEOUT_S)
        except aiomqtt.MqttError as exc:
            raise LockerOffline(f"publish failed: {exc}") from exc

    async def _publish_eack(self, locker: str, boot: str, seq: int) -> None:
        local = self.local.get(locker)
        if local is not None:
            local.eack(boot, seq)
            return
        try:
            await self._publish(locker, "eack", protocol.encode_eack(boot, seq))
            self.counters.inc("eacks_sent")
        except LockerOffline as exc:
            # the locker re-sends and gets the eack then
            self.counters.inc("eack_failed")
            log.warning("eack to %s not sent: %s", locker, exc)

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
        except asyncio.TimeoutError:
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

