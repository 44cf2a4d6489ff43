"""The locker link's MQTT client: paho-mqtt 2 driven from the gateway's asyncio loop, no threads.

paho does the protocol (MQTT 3.1.1 or 5: packets, session, keepalive, packet ids); this module gives it the
event loop as its network loop, through paho's external-loop API (`loop_read`, `loop_write`, `loop_misc` and
the socket callbacks), and adds what the locker link needs on top:

- **A persistent session.** `clean_session=False` keeps the session in the broker while the client is away
  (MQTT 5: clean_start false and a session that never expires). What the broker sends before the PUBACKs is
  bounded by the client's Receive Maximum under MQTT 5, by the broker's `max_inflight_messages` under 3.1.1.
- **Batches.** Each readable event costs one `recv` of up to 256 KiB; paho then parses the packets of that
  read out of memory (its reads of one byte at a time are served from the buffer, not the socket), and the
  PUBLISHes go to `on_messages` in lists of at most `batch_max`.
- **Acks after commit.** The client runs with paho's `manual_ack`: a QoS 1 message is PUBACKed only when the
  owner calls `ack()` (the link does so once the message's transaction has ended), so a gateway that dies
  between receiving and committing leaves the message with the broker, which sends it again.
- **One write per turn.** Everything paho queues in one turn of the loop (PUBACKs, eacks, commands) leaves in
  one `send`.
- **Back-pressure.** `pause()` stops reading the socket; TCP fills and the broker holds the rest for the
  persistent session. While paused paho's keepalive check is held too (the broker's silence then says
  nothing about the link).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .errors import BrokerError, BrokerRefused

log = logging.getLogger("jincun.gateway.mqtt")

READ_SIZE = 256 * 1024
MISC_EVERY_S = 0.5  # paho's keepalive check (PINGREQ, dead link) runs this often
SESSION_NEVER_EXPIRES = 0xFFFFFFFF  # MQTT 5: the broker keeps the session as long as it runs


class Message(NamedTuple):
    """One PUBLISH from the broker; `mid` is what `MqttClient.ack` takes for a QoS 1 one."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool


MessagesHandler = Callable[[list[Message]], None]

MQTT311 = 4  # protocol levels as the CONNECT packet names them
MQTT5 = 5
_PAHO_PROTOCOL = {MQTT311: paho.MQTTv311, MQTT5: paho.MQTTv5}


class _Paho(paho.Client):
    """paho's Client whose socket I/O goes through memory buffers that MqttClient fills and empties.

    paho routes every byte through `_sock_recv` and `_sock_send`: reading serves its small reads from the
    chunk the event loop just took off the socket, and writing collects what one `loop_write` produces.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.rx = b""
        self.rx_pos = 0
        self.rx_eof = False
        self.tx: bytearray | None = None  # collecting: loop_write's packets go here, not to the socket

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self.rx_pos
        if pos >= len(self.rx):
            if self.rx_eof:
                return b""
            raise BlockingIOError
        self.rx_pos = pos + bufsize
        return self.rx[pos:pos + bufsize]

    def _sock_send(self, buf: bytes | bytearray) -> int:
        if self.tx is None:
            return super()._sock_send(buf)
        self.tx += buf
        return len(buf)


class MqttClient:
    """One MQTT session. connect() then subscribe()/publish(); `closed` resolves (with the reason as its
    exception) when the session ends, which the owner awaits to learn that it must reconnect."""

    def __init__(self, client_id: str, *, username: str | None = None, password: str | None = None,
                 clean_session: bool = True, keepalive: int = 30, on_messages: MessagesHandler | None = None,
                 max_inflight: int = 256, ack_timeout: float = 3.0, batch_max: int = 500,
                 receive_maximum: int = 500, ssl_context: ssl.SSLContext | None = None,
                 protocol: int = MQTT311) -> None:
        self.client_id = client_id
        self.keepalive = keepalive
        self.on_messages = on_messages or (lambda msgs: None)
        self.ack_timeout = ack_timeout
        self.batch_max = batch_max
        self.session_present = False
        self.received = 0
        self.closed: asyncio.Future | None = None
        # MQTT 5: a persistent session is clean_start false with a session expiry, and Receive Maximum tells
        # the broker how many QoS 1 messages it may send before their PUBACKs (Mosquitto holds MQTT 3.1.1
        # clients to its max_inflight_messages instead). MQTT 5 also says why a publish was refused; paho
        # decodes its PUBLISHes at about half the 3.1.1 rate (docs/gateway.md, "Locker link").
        if protocol not in _PAHO_PROTOCOL:
            raise ValueError(f"MQTT protocol level {protocol}: 4 (3.1.1) or 5")
        self.protocol = protocol
        self.clean_session = clean_session
        self.receive_maximum = receive_maximum
        extra: dict[str, Any] = {} if protocol == MQTT5 else {"clean_session": clean_session}
        p = self._p = _Paho(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=_PAHO_PROTOCOL[protocol],
                            manual_ack=True, **extra)
        if username is not None:
            p.username_pw_set(username, password)
        if ssl_context is not None:
            p.tls_set_context(ssl_context)
        # outgoing QoS 1 publishes in flight, and queued behind them, both bounded
        p.max_inflight_messages_set(max_inflight)
        p.max_queued_messages_set(max_inflight)
        p.on_connect = self._on_connect
        p.on_subscribe = self._on_ack  # a SUBACK, with the granted codes
        p.on_publish = self._on_ack  # a PUBACK (QoS 1) or a QoS 0 publish written
        p.on_message = self._on_message
        p.on_disconnect = self._on_disconnect
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._connack: asyncio.Future | None = None
        self._acks: dict[int, asyncio.Future] = {}  # SUBACK or PUBACK awaited, by packet id
        self._batch: list[Message] = []
        self._paused = False
        self._reading = False
        self._flush_due = False
        self._out = b""  # what the socket did not take in one send
        self._misc: asyncio.TimerHandle | None = None

    # ---- session ----

    async def connect(self, host: str, port: int, *, timeout: float = 10.0) -> bool:
        """Open the TCP connection and the MQTT session; returns the broker's session-present flag.

        Raises BrokerRefused for a refused CONNECT, BrokerError when the broker cannot be reached."""
        loop = self._loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        self._connack = loop.create_future()
        p = self._p
        p.connect_timeout = timeout
        try:
            # the TCP (and TLS) handshake blocks: on a worker thread, before any socket callback is set, so
            # paho writes the CONNECT itself there; from here on only the loop thread touches the client
            if self.protocol == MQTT5:
                props = Properties(PacketTypes.CONNECT)
                props.ReceiveMaximum = self.receive_maximum
                if not self.clean_session:
                    props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
                start = partial(p.connect, host, port, self.keepalive, clean_start=self.clean_session,
                                properties=props)
            else:
                start = partial(p.connect, host, port, self.keepalive)
            await asyncio.wait_for(loop.run_in_executor(None, start), timeout + 1)
        except (TimeoutError, OSError, ValueError) as exc:
            raise BrokerError(f"cannot reach the broker at {host}:{port}: {exc or 'timeout'}") from None
        sock = p.socket()
        if not isinstance(sock, socket.socket):
            raise BrokerError("paho opened no socket")
        self._sock = sock
        p.on_socket_register_write = self._want_write
        p.on_socket_close = lambda client, userdata, sock: self._detach()
        self._start_reading()
        self._misc = loop.call_later(MISC_EVERY_S, self._tick)
        if p.want_write():
            self._want_write(p, None, sock)
        try:
            flags, code = await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        except TimeoutError:
            self._abort(BrokerError(f"no CONNACK from {host}:{port} within {timeout} s"))
            raise self._reason() from None
        except BrokerError:
            self._abort(None)
            raise
        if code.is_failure:
            err = BrokerRefused(f"broker {host}:{port} refused the connection: {str(code).lower()} "
                                f"(code {code.value})", code.value)
            self._abort(err)
            raise err
        self.session_present = bool(flags.session_present)
        return self.session_present

    async def subscribe(self, topics: list[tuple[str, int]], *, timeout: float | None = None) -> tuple[int, ...]:
        """Subscribe and await the SUBACK; a refused filter (0x80) raises BrokerRefused."""
        self._check(MQTTErrorCode.MQTT_ERR_SUCCESS)
        try:
            rc, mid = self._p.subscribe(topics)
        except ValueError as exc:  # paho checks each filter before it leaves
            raise BrokerRefused(f"subscription refused: {exc}") from None
        self._check(rc)
        assert mid is not None
        codes = await self._await_ack(mid, timeout, "SUBACK")
        granted = tuple(c.value for c in codes)
        refused = [t for (t, _), g in zip(topics, granted) if g >= 0x80]
        if refused:
            raise BrokerRefused(f"broker refused the subscription to {', '.join(refused)}")
        return granted

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                      timeout: float | None = None) -> None:
        """Publish; with QoS 1 wait for the broker's PUBACK (BrokerRefused if it carries a failure code)."""
        self._check(MQTTErrorCode.MQTT_ERR_SUCCESS)
        try:
            info = self._p.publish(topic, payload, qos=qos, retain=retain)
        except ValueError as exc:  # a topic or payload paho will not send
            raise BrokerError(f"publish refused: {exc}") from None
        self._check(info.rc)
        if qos:
            code = await self._await_ack(info.mid, timeout, "PUBACK")
            # MQTT 5 says why it did not take it (e.g. not authorised); under 3.1.1 only the broker's log does
            if getattr(code, "is_failure", False):
                raise BrokerRefused(f"broker refused the publish to {topic}: {str(code).lower()}", code.value)

    def publish_nowait(self, msgs: list[tuple[str, bytes]], *, qos: int = 0) -> None:
        """Publish (topic, payload) pairs without waiting; they leave in this turn's one write.

        For messages whose loss is repaired by a later one (a cumulative eack). BrokerError when not connected
        or when paho's bounded queue of QoS 1 publishes is full.
        """
        self._check(MQTTErrorCode.MQTT_ERR_SUCCESS)
        publish = self._p.publish
        for topic, payload in msgs:
            self._check(publish(topic, payload, qos=qos).rc)

    def ack(self, mids: list[int]) -> None:
        """PUBACK these QoS 1 messages (in the order they came); they leave in this turn's one write."""
        if self._sock is None:
            return  # the session is gone: the broker sends them again on the next one
        ack = self._p.ack
        for mid in mids:
            ack(mid, 1)

    def pause(self) -> None:
        """Stop reading from the broker (it queues for the session) until resume()."""
        if not self._paused:
            self._paused = True
            self._stop_reading()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._sock is not None:
                # what the last read held beyond the pause first, then the socket again
                self._drain()
                if not self._paused:
                    self._start_reading()

    @property
    def paused(self) -> bool:
        return self._paused

    async def close(self) -> None:
        """Send DISCONNECT (the broker then discards the will) and close the connection."""
        p = self._p
        if self._sock is not None:
            self._flush()
            p.on_socket_register_write = None
            try:
                p.disconnect()  # written at once now that no register callback is set
            except OSError:
                pass
        self._finish(BrokerError("client closed the session"))
        self._abort(None)

    # ---- the event loop as paho's network loop ----

    def _start_reading(self) -> None:
        if not self._reading and self._sock is not None and self._loop is not None:
            self._loop.add_reader(self._sock, self._readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading and self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock)
        self._reading = False

    def _readable(self) -> None:
        sock, p = self._sock, self._p
        if sock is None:
            return
        try:
            data = sock.recv(READ_SIZE)
            if isinstance(sock, ssl.SSLSocket):
                # records ssl has decrypted already: the file descriptor will not say they are there
                while sock.pending():
                    data += sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except (OSError, ssl.SSLError) as exc:
            log.warning("broker connection failed: %s", exc)
            data = b""
        if not data:
            p.rx_eof = True
        # bytes of the last read that a pause left unread are consumed first
        p.rx = p.rx[p.rx_pos:] + data if p.rx_pos < len(p.rx) else data
        p.rx_pos = 0
        self._drain()

    def _drain(self) -> None:
        """Parse what was read, handing PUBLISHes over in lists of at most batch_max, until the buffer is
        used up, the link pauses, or the session ends."""
        p = self._p
        batch = self._batch
        try:
            while not self._paused and self._sock is not None:
                if p.rx_pos >= len(p.rx) and not p.rx_eof:
                    break
                # one packet a call; at the end of the stream paho reports the lost connection and closes
                if p.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                if len(batch) >= self.batch_max:
                    self._deliver()
        finally:
            if batch:
                self._deliver()

    def _deliver(self) -> None:
        msgs = self._batch[:]
        self._batch.clear()
        self.received += len(msgs)
        try:
            self.on_messages(msgs)
        except Exception as exc:  # noqa: BLE001 - a handler bug must end the session loudly, not the loop
            log.exception("message handler failed")
            self._abort(BrokerError(f"message handler failed: {exc!r}"))

    def _want_write(self, client: Any, userdata: Any, sock: Any) -> None:
        # paho queued a packet: everything queued until the end of this turn leaves in one write
        if not self._flush_due and self._loop is not None:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        p, sock = self._p, self._sock
        if sock is None:
            return
        p.tx = bytearray()
        try:
            p.loop_write()
            data = self._out + bytes(p.tx)
        finally:
            p.tx = None
        self._out = b""
        self._send(data)

    def _send(self, data: bytes) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop is None or not data:
            return
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            n = 0
        except OSError as exc:
            self._abort(BrokerError(f"connection to the broker lost: {exc}"))
            return
        if n < len(data):
            if not self._out:
                loop.add_writer(sock, self._writable)
            self._out = data[n:]

    def _writable(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop is None:
            return
        data, self._out = self._out, b""
        loop.remove_writer(sock)
        self._send(data)

    def _tick(self) -> None:
        self._misc = None
        if self._sock is None or self._loop is None:
            return
        if not self._paused:
            self._p.loop_misc()  # PINGREQ when idle; closes a link silent past the keepalive
        if self._sock is not None:
            self._misc = self._loop.call_later(MISC_EVERY_S, self._tick)

    # ---- paho's callbacks ----

    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any = None) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result((flags, code))

    def _on_message(self, client: Any, userdata: Any, m: paho.MQTTMessage) -> None:
        try:
            topic = m.topic
        except UnicodeDecodeError:
            log.warning("dropped a message with a topic that is not UTF-8")
            if m.qos:
                self.ack([m.mid])
            return
        self._batch.append(tuple.__new__(Message, (topic, m.payload, m.qos, m.mid, m.retain)))

    def _on_ack(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any = None) -> None:
        fut = self._acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(codes)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any = None) -> None:
        if getattr(code, "value", None) == 141:  # paho's "keep alive timeout"
            why = f"broker silent past the keepalive ({self.keepalive} s)"
        else:
            why = f"connection to the broker lost: {code}"
        self._finish(BrokerError(why))

    # ---- internals ----

    def _check(self, rc: MQTTErrorCode | int) -> None:
        if self._sock is None:
            raise self._reason()
        if rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            raise BrokerError("too many publishes wait for their PUBACK")
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is None:
            raise self._reason()

    def _detach(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is not None and loop is not None:
            self._stop_reading()
            if self._out:
                loop.remove_writer(sock)
        self._sock = None
        self._out = b""
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

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
        for fut in (self._connack, *self._acks.values()):
            if fut is not None and not fut.done():
                fut.set_exception(err)
        self._acks.clear()

    def _abort(self, reason: BrokerError | None) -> None:
        """End the session: this client object is done with. paho is not asked to close, so it calls no
        callback any more."""
        if reason is not None:
            self._finish(reason)
        sock = self._sock
        if sock is not None:
            self._p.on_disconnect = None
            self._detach()
            sock.close()

    async def _await_ack(self, mid: int, timeout: float | None, what: str) -> Any:
        assert self._loop is not None
        fut = self._acks[mid] = self._loop.create_future()
        try:
            return await asyncio.wait_for(fut, timeout or self.ack_timeout)
        except TimeoutError:
            raise BrokerError(f"no {what} for packet {mid} within {timeout or self.ack_timeout} s") from None
        finally:
            if self._acks.get(mid) is fut:
                del self._acks[mid]
