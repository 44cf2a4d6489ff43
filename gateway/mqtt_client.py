"""The locker link's MQTT 3.1.1 client: an asyncio Protocol over mqtt_codec, no threads.

Incoming PUBLISHes are handed over in batches: each socket read is parsed whole, the complete PUBLISH
packets go to `on_messages` in one call, and the PUBACKs of the QoS 1 ones leave in one write. A PUBACK only
tells the broker the message reached the gateway; delivery to the outbox is made durable by the locker
link's own eacks, so the broker acknowledgement costs nothing in safety. Back-pressure is `pause()`: the
socket is no longer read, TCP fills, and the broker queues for the (persistent) session meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from . import mqtt_codec as M
from .errors import BrokerError, BrokerRefused, MqttProtocolError

log = logging.getLogger("jincun.gateway.mqtt")

MessagesHandler = Callable[[list[M.Publish]], None]


class MqttClient(asyncio.Protocol):
    """One MQTT session. connect() then subscribe()/publish(); `closed` resolves (with the reason as its
    exception) when the session ends, which the owner awaits to learn that it must reconnect."""

    def __init__(self, client_id: str, *, username: str | None = None, password: str | None = None,
                 clean_session: bool = True, keepalive: int = 30, on_messages: MessagesHandler | None = None,
                 max_inflight: int = 256, ack_timeout: float = 3.0, max_packet: int = M.MAX_PACKET) -> None:
        self.client_id = client_id
        self.username, self.password = username, password
        self.clean_session = clean_session
        self.keepalive = keepalive
        self.on_messages = on_messages or (lambda msgs: None)
        self.max_inflight = max_inflight
        self.ack_timeout = ack_timeout
        self.parser = M.Parser(max_packet)
        self.session_present = False
        self.received = 0
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connack: asyncio.Future | None = None
        self.closed: asyncio.Future | None = None
        # PUBACK or SUBACK awaited, by packet id (None: a publish_nowait whose PUBACK is not awaited)
        self._acks: dict[int, asyncio.Future | None] = {}
        self._next_id = 0
        self._slots: asyncio.Semaphore | None = None
        self._last_rx = 0.0
        self._last_tx = 0.0
        self._paused = False
        self._ping_task: asyncio.Task | None = None

    # ---- session ----

    async def connect(self, host: str, port: int, *, timeout: float = 10.0) -> bool:
        """Open the TCP connection and the MQTT session; returns the broker's session-present flag.

        Raises BrokerRefused for a refused CONNECT, BrokerError when the broker cannot be reached."""
        loop = self._loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        self._connack = loop.create_future()
        self._slots = asyncio.Semaphore(self.max_inflight)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: self, host, port), timeout)
        except (TimeoutError, OSError) as exc:
            raise BrokerError(f"cannot reach the broker at {host}:{port}: {exc or 'timeout'}") from None
        self._send(M.encode_connect(self.client_id, clean_session=self.clean_session, keepalive=self.keepalive,
                                    username=self.username, password=self.password))
        try:
            ack: M.Connack = await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        except TimeoutError:
            self._abort(BrokerError(f"no CONNACK from {host}:{port} within {timeout} s"))
            raise self._reason() from None
        except BrokerError:
            self._abort(None)
            raise
        if ack.code:
            why = M.CONNACK_CODES.get(ack.code, "unknown reason")
            err = BrokerRefused(f"broker {host}:{port} refused the connection: {why} (code {ack.code})", ack.code)
            self._abort(err)
            raise err
        self.session_present = ack.session_present
        if self.keepalive:
            self._ping_task = loop.create_task(self._keepalive())
        return ack.session_present

    async def subscribe(self, topics: list[tuple[str, int]], *, timeout: float | None = None) -> tuple[int, ...]:
        """Subscribe and await the SUBACK; a refused filter (0x80) raises BrokerRefused."""
        pid = self._packet_id()
        fut = self._expect(pid)
        self._send(M.encode_subscribe(pid, topics))
        suback = await self._await_ack(pid, fut, timeout, "SUBACK")
        refused = [t for (t, _), g in zip(topics, suback.granted) if g == M.SUBACK_FAILURE]
        if refused:
            raise BrokerRefused(f"broker refused the subscription to {', '.join(refused)}")
        return suback.granted

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                      timeout: float | None = None) -> None:
        """Publish; with QoS 1 wait for the broker's PUBACK (at most `max_inflight` are outstanding)."""
        if qos == 0:
            self._send(M.encode_publish(topic, payload, retain=retain))
            return
        assert self._slots is not None
        async with self._slots:
            pid = self._packet_id()
            fut = self._expect(pid)
            self._send(M.encode_publish(topic, payload, qos=1, packet_id=pid, retain=retain))
            await self._await_ack(pid, fut, timeout, "PUBACK")

    def publish_nowait(self, msgs: list[tuple[str, bytes]], *, qos: int = 1) -> None:
        """Publish (topic, payload) pairs in one write, without waiting: with QoS 1 the packet ids stay taken
        until their PUBACKs come; QoS 0 has none.

        For messages whose loss is repaired by a later one (a cumulative eack): waiting would hold the sender
        behind everything the broker sends before that PUBACK. BrokerError when `max_inflight` are out.
        """
        if not qos:
            self._send(b"".join(M.encode_publish(topic, payload) for topic, payload in msgs))
            return
        if len(self._acks) + len(msgs) > self.max_inflight:
            raise BrokerError(f"{len(self._acks)} publishes wait for their PUBACK")
        packets = []
        for topic, payload in msgs:
            pid = self._packet_id()
            self._acks[pid] = None
            packets.append(M.encode_publish(topic, payload, qos=1, packet_id=pid))
        self._send(b"".join(packets))

    def pause(self) -> None:
        """Stop reading from the broker (it queues for the session) until resume()."""
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            # the broker's silence while we did not read says nothing about the link
            self._last_rx = time.monotonic()
            self._transport.resume_reading()

    @property
    def paused(self) -> bool:
        return self._paused

    async def close(self) -> None:
        """Send DISCONNECT (the broker then discards the will) and close the connection."""
        t = self._transport
        if t is not None and not t.is_closing():
            t.write(M.encode_disconnect())
            t.close()
        self._finish(BrokerError("client closed the session"))
        if self._ping_task is not None:
            self._ping_task.cancel()

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._last_rx = self._last_tx = time.monotonic()

    def data_received(self, data: bytes) -> None:
        self._last_rx = time.monotonic()
        try:
            packets = self.parser.feed(data)
        except MqttProtocolError as exc:
            log.error("broker sent bad MQTT, closing the session: %s", exc)
            self._abort(exc)
            return
        msgs: list[M.Publish] = []
        acks: list[int] = []
        for p in packets:
            if type(p) is M.Publish:
                msgs.append(p)
                if p.qos:
                    acks.append(p.packet_id)  # type: ignore[arg-type]
            elif type(p) is M.Puback or type(p) is M.Suback:
                fut = self._acks.pop(p.packet_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(p)
            elif type(p) is M.Connack:
                if self._connack is not None and not self._connack.done():
                    self._connack.set_result(p)
        if msgs:
            self.received += len(msgs)
            try:
                self.on_messages(msgs)
            except Exception as exc:  # noqa: BLE001 - a handler bug must end the session loudly, not the loop
                log.exception("message handler failed")
                self._abort(BrokerError(f"message handler failed: {exc!r}"))
                return
        if acks and self._transport is not None:
            self._send(b"".join([bytes((0x40, 2, a >> 8, a & 0xFF)) for a in acks]))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._finish(BrokerError(f"connection to the broker lost: {exc}" if exc else
                                 "the broker closed the connection"))
        if self._ping_task is not None:
            self._ping_task.cancel()

    # ---- internals ----

    def _send(self, data: bytes) -> None:
        t = self._transport
        if t is None or t.is_closing():
            raise self._reason()
        t.write(data)
        self._last_tx = time.monotonic()

    def _reason(self) -> BrokerError:
        c = self.closed
        if c is not None and c.done() and not c.cancelled() and isinstance(c.exception(), BrokerError):
            return c.exception()  # type: ignore[return-value]
        return BrokerError("not connected to the broker")

    def _finish(self, reason: BrokerError) -> None:
        if self.closed is not None and not self.closed.done():
            self.closed.set_exception(reason)
            self.closed.exception()  # retrieved here, so an owner that never awaits it logs no warning
        err = self._reason()
        for fut in (self._connack, *[f for f in self._acks.values() if f is not None]):
            if fut is not None and not fut.done():
                fut.set_exception(err)
        self._acks.clear()

    def _abort(self, reason: BrokerError | None) -> None:
        if reason is not None:
            self._finish(reason)
        if self._transport is not None:
            self._transport.abort()

    def _packet_id(self) -> int:
        # ids are reused only once their PUBACK/SUBACK came: skip any still outstanding
        for _ in range(0xFFFF):
            self._next_id = self._next_id % 0xFFFF + 1
            if self._next_id not in self._acks:
                return self._next_id
        raise BrokerError("no free MQTT packet id")

    def _expect(self, pid: int) -> asyncio.Future:
        assert self._loop is not None
        fut = self._loop.create_future()
        self._acks[pid] = fut
        return fut

    async def _await_ack(self, pid: int, fut: asyncio.Future, timeout: float | None, what: str):
        try:
            return await asyncio.wait_for(fut, timeout or self.ack_timeout)
        except TimeoutError:
            raise BrokerError(f"no {what} for packet {pid} within {timeout or self.ack_timeout} s") from None
        finally:
            if self._acks.get(pid) is fut:
                del self._acks[pid]

    async def _keepalive(self) -> None:
        # PINGREQ after half the keepalive without sending; the link is dead after 1.5 keepalives of silence
        every = self.keepalive / 2
        while self._transport is not None:
            await asyncio.sleep(min(every, 1.0))
            now = time.monotonic()
            if self._paused:
                self._last_rx = now
            elif now - self._last_rx > self.keepalive * 1.5:
                log.error("broker silent for %.0f s, closing the session", now - self._last_rx)
                self._abort(BrokerError(f"broker silent for {now - self._last_rx:.0f} s (keepalive "
                                        f"{self.keepalive} s)"))
                return
            if now - self._last_tx >= every or now - self._last_rx >= every:
                try:
                    self._send(M.encode_pingreq())
                except BrokerError:
                    return
