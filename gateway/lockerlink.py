"""Locker link: the gateway's MQTT session with every locker controller of the station (§2-§3)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import ssl
import time
from functools import partial
from typing import Any
from collections.abc import Awaitable

from . import const as C
from . import protocol
from .config import StationConfig
from .counters import Counters
from .eacks import Eacks
from .errors import BrokerError, CommandTimeout, LockerError, LockerOffline, OutboxError, ProtocolError
from .fwserve import FwServe, FwServeError
from .lockerstate import BirthHandler, Comp, EventHandler, LocalLocker, LockerState
from .mqtt_client import MQTT311, Message, MqttClient
from .stationdb import Outbox, Record

log = logging.getLogger("jincun.gateway.lockerlink")
_BOOT = re.compile(C.BOOT_RE)

MAX_PENDING_CMDS = 256
MAX_INFLIGHT_EVENTS = 5000
RESUME_INFLIGHT_EVENTS = MAX_INFLIGHT_EVENTS // 2
MQTT_KEEPALIVE_S = 30
MQTT_MAX_INFLIGHT = 256  # the gateway's own QoS 1 publishes (commands) awaiting their PUBACK
MQTT_BATCH_MAX = 500  # messages handed over at a time: the back-pressure check runs this often
REBIRTH_MIN_INTERVAL_S = 2.0
PUBLISH_TIMEOUT_S = 3.0
BIRTH_GRACE_S = 1.0


class LockerLink:
    """Subscribes to the station's lockers, stores what they send, acks events, sends commands."""

    def __init__(self, cfg: StationConfig, outbox: Outbox, counters: Counters, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.cfg = cfg
        self.ssl_context = ssl_context  # for a station broker reached over TLS
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
        self.eacks = Eacks(self.station, outbox, counters, self.local, lambda: self._client, self._spawn)
        # the last outbox submission: the broker's PUBACK for a message waits for it (the writer is FIFO)
        self._tail: asyncio.Future | None = None
        self._inflight_n = 0
        self._inflight_free = asyncio.Event()
        # events accepted from the current batch of messages, submitted to the outbox together
        self._batch_recs: list[Record] = []
        self._batch_items: list[tuple[LockerState, dict, bool]] = []
        # evt topics of this station's lockers, so a batch skips topic parsing for all but the first message
        self._evt_topics: dict[str, LockerState] = {}
        # event types the handlers act on (None: all); the rest need no handler task
        self.handled_types: set[str] | None = None
        # the firmware set each locker is downloading now (fwreqs of other lockers are refused)
        self.fw_servers: dict[str, FwServe] = {}

    # ---- lifecycle ----

    async def load(self) -> None:
        """Read the persisted event watermarks (call after the outbox is open)."""
        await self.eacks.load()

    async def run(self) -> None:
        """Connect, subscribe and handle messages until cancelled; raises on a lost connection."""
        m = self.cfg.mqtt
        # a persistent session: while the gateway restarts or pauses reading, the broker queues for it, and it
        # sends no more unacked messages than its max_inflight_messages (gateway/broker.py). MQTT 3.1.1: paho
        # takes its PUBLISHes at twice its MQTT 5 rate, and the broker's log (broker_audit.py) is the witness
        # of a refused publish either way. The client id is the username: the station broker sets it so
        # anyway (use_username_as_clientid)
        client = MqttClient(m.username, username=m.username, password=m.password, protocol=MQTT311,
                            clean_session=False, keepalive=MQTT_KEEPALIVE_S, on_messages=self.handle_batch,
                            ack_timeout=PUBLISH_TIMEOUT_S, max_inflight=MQTT_MAX_INFLIGHT,
                            batch_max=MQTT_BATCH_MAX, ssl_context=self.ssl_context)
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

    def handle_batch(self, msgs: list[Message]) -> None:
        """Handle a batch of messages (at most MQTT_BATCH_MAX of one socket read); their events go to the
        outbox as one submission, and the broker gets their PUBACKs once that transaction has ended.

        Called by the MQTT client as it parses a read, so it must not block: when too many events are in
        flight to the outbox, the client stops reading and the broker holds the rest.
        """
        self.counters.inc("mqtt_received", len(msgs))
        topics = self._evt_topics
        decode = protocol.decode
        recs, items = self._batch_recs, self._batch_items
        now = time.time()
        for m in msgs:
            if m[4] and not m[0].endswith(C.RETAINED_SUFFIX):
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
        if client is None:
            return
        # the broker's PUBACKs once these messages' transactions have ended: a gateway that stops before that
        # leaves them with the broker, which sends them again
        mids = [m[3] for m in msgs if m[2]]
        if mids:
            tail = self._tail
            if tail is None:
                client.ack(mids)
            else:
                # run after the callbacks already on it (its batch's own first), so PUBACKs keep their order
                tail.add_done_callback(lambda _f: client.ack(mids))
        if self._inflight_n >= MAX_INFLIGHT_EVENTS and not client.paused:
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
            fut = self.outbox.submit_many(recs, partial(self.eacks.stage, floors))
        except OutboxError as exc:
            # not acked, so the lockers keep them in flash and re-send
            self.counters.inc("evt_not_stored", len(recs))
            log.error("%d events refused: %s", len(recs), exc)
            return
        self._inflight_n += len(recs)
        self._tail = fut
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
        if kind != "evt":
            self._flush_batch()
            getattr(self, f"_on_{kind}")(ls, body)
            return
        self._accept_evt(ls, body)
        self._flush_batch()
        # a local locker waits while too many events are in flight to the outbox
        while self._inflight_n >= MAX_INFLIGHT_EVENTS:
            self._inflight_free.clear()
            await self._inflight_free.wait()

    def _set_ev_boot(self, ls: LockerState, boot: str, guess_acked: int) -> None:
        stored = self.eacks.links.get(ls.id)
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
            saved = self.eacks.links.get(ls.id)
            if saved and saved[0] == boot:
                self._spawn(self.eacks.publish(ls.id, boot, saved[1]), "eack")
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
        self.eacks.committed(staged, kick)

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
        self._tail = fut

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

    @property
    def in_flight(self) -> int:
        """Events handed to the outbox and not yet committed: at most MAX_INFLIGHT_EVENTS and one batch."""
        return self._inflight_n

    def set_retired(self, ids: set[str]) -> tuple[set[str], set[str]]:
        """Mark the lockers the cloud retired (all others live again); (newly retired, back in service) of this
        station's own lockers. A retired locker takes no new deposit; everything else about it goes on."""
        retired = {ls.id for ls in self.lockers.values() if ls.id in ids and not ls.retired}
        back = {ls.id for ls in self.lockers.values() if ls.id not in ids and ls.retired}
        for ls in self.lockers.values():
            ls.retired = ls.id in ids
        return retired, back

    def retired(self) -> list[str]:
        return sorted(ls.id for ls in self.lockers.values() if ls.retired)

    def online_count(self) -> int:
        return sum(1 for ls in self.lockers.values() if ls.online)

    def in_service(self) -> tuple[int, int]:
        """(online, all) of the lockers not retired in the cloud: what the station reports upstream."""
        live = [ls for ls in self.lockers.values() if not ls.retired]
        return sum(1 for ls in live if ls.online), len(live)

    def view(self) -> list[dict]:
        return [ls.view() for ls in self.lockers.values()]

