"""MQTT 3.1.1 client: sans-IO packet codec plus an asyncio session over one TCP stream.

Reconnecting is not done here: the connectivity layer (jc.link) owns retries and backoff.
With an ssl.SSLContext the stream is TLS: the broker's certificate is checked against the context's CA and
the host name (an IP address is matched against the certificate's IP entries) before CONNECT leaves.
"""

import asyncio
import struct
import time
from jc.errors import JcError

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

MAX_PACKET = 2048
_IPPROTO_TCP = 6
_TCP_NODELAY = 1
MAX_REMAINING = 268435455


class MQTTError(JcError):
    """The session is unusable (protocol violation, refused, timed out or closed)."""


def _why(e):
    """An exception as one line (mbedTLS's messages come wrapped in newlines)."""
    return ("%s" % e).strip() or repr(e)


# ---- sans-IO encode ----

def _varlen(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def _packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + _varlen(len(body)) + body


def enc_connect(client_id, user=None, password=None, keepalive=60, clean=True,
                will_topic=None, will_msg=b"", will_qos=0, will_retain=False):
    flags = 0
    if clean:
        flags |= 0x02
    payload = _str(client_id)
    if will_topic is not None:
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += _str(will_topic) + _str(will_msg)
    if user is not None:
        flags |= 0x80
        payload += _str(user)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    return _packet(CONNECT, 0, body)


def enc_publish(topic, payload, qos=0, retain=False, pid=0, dup=False):
    flags = (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = _str(topic)
    if qos:
        body += struct.pack("!H", pid)
    return _packet(PUBLISH, flags, body + payload)


def set_dup(packet):
    """Return a copy of an encoded PUBLISH with the DUP flag set (for retransmission)."""
    return bytes([packet[0] | 0x08]) + packet[1:]


def enc_puback(pid):
    return _packet(PUBACK, 0, struct.pack("!H", pid))


def enc_subscribe(pid, topics):
    body = struct.pack("!H", pid)
    for t, q in topics:
        body += _str(t) + bytes([q])
    return _packet(SUBSCRIBE, 0x02, body)


def enc_pingreq():
    return b"\xc0\x00"


def enc_disconnect():
    return b"\xe0\x00"


# ---- sans-IO decode ----

class Decoder:
    """Split a byte stream into (type, flags, body) packets; oversize packets are skipped and counted."""

    def __init__(self, max_packet=MAX_PACKET):
        self.max = max_packet
        self.buf = bytearray()
        self.skip = 0
        self.oversize = 0

    def feed(self, data):
        """Add bytes; return the list of complete packets."""
        self.buf.extend(data)
        out = []
        while True:
            if self.skip:
                k = min(self.skip, len(self.buf))
                self.buf = self.buf[k:]
                self.skip -= k
                if self.skip:
                    return out
            if len(self.buf) < 2:
                return out
            n = 0
            mult = 1
            i = 1
            while True:
                if i >= len(self.buf):
                    return out
                b = self.buf[i]
                n += (b & 0x7F) * mult
                i += 1
                if not b & 0x80:
                    break
                mult *= 128
                if i > 4:
                    raise MQTTError("malformed remaining length")
            head = self.buf[0]
            if i + n > self.max:
                self.oversize += 1
                self.buf = self.buf[i:]
                self.skip = n
                continue
            if len(self.buf) < i + n:
                return out
            body = bytes(self.buf[i:i + n])
            self.buf = self.buf[i + n:]
            out.append((head >> 4, head & 0x0F, body))


def dec_connack(body):
    """Return (session_present, return_code)."""
    if len(body) != 2:
        raise MQTTError("bad CONNACK")
    return bool(body[0] & 1), body[1]


def dec_publish(flags, body):
    """Return (topic, payload, qos, pid, retain, dup)."""
    qos = (flags >> 1) & 3
    if qos > 2 or len(body) < 2:
        raise MQTTError("bad PUBLISH")
    tl = struct.unpack_from("!H", body, 0)[0]
    if 2 + tl > len(body):
        raise MQTTError("bad PUBLISH topic")
    topic = body[2:2 + tl]
    i = 2 + tl
    pid = 0
    if qos:
        if i + 2 > len(body):
            raise MQTTError("bad PUBLISH pid")
        pid = struct.unpack_from("!H", body, i)[0]
        i += 2
    return topic, body[i:], qos, pid, bool(flags & 1), bool(flags & 8)


def dec_pid(body):
    if len(body) < 2:
        raise MQTTError("short packet")
    return struct.unpack_from("!H", body, 0)[0]


def dec_suback(body):
    """Return (pid, [granted qos...])."""
    return dec_pid(body), list(body[2:])


# ---- asyncio session ----

class Session:
    """One connected MQTT session; on_message(topic_bytes, payload_bytes) is called for each PUBLISH."""

    RESPONSE_MS = 5000
    MAX_INFLIGHT = 16

    def __init__(self, on_message, max_packet=MAX_PACKET, log=None):
        self.on_message = on_message
        self.dec = Decoder(max_packet)
        self._log = log or (lambda *a: None)
        self.reader = None
        self.writer = None
        self.keepalive = 60
        self.pid = 0
        self.inflight = {}  # pid -> [packet, sent_ms]
        self.waiters = {}  # pid -> asyncio.Event for SUBACK/PUBACK
        self.closed = asyncio.Event()
        self.alive = False
        self.tls = False  # the session runs over TLS
        self.last_rx = 0
        self.last_tx = 0
        self.ping_out = False
        self.retransmits = 0
        self.rx_errors = 0
        self.tasks = []
        self._pending = []  # packets that arrived in the same read as CONNACK
        self._rbuf = bytearray(512)  # reused for every socket read
        self._rmv = memoryview(self._rbuf)

    def _next_pid(self):
        for _ in range(65535):
            self.pid = self.pid % 65535 + 1
            if self.pid not in self.inflight and self.pid not in self.waiters:
                return self.pid
        raise MQTTError("no free packet id")

    async def _write(self, data):
        if not self.alive:
            raise MQTTError("not connected")
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (OSError, ValueError) as e:  # mbedTLS reports a refused certificate as ValueError
            self._fail("write: " + _why(e))
            raise MQTTError("write failed: " + _why(e))
        self.last_tx = time.ticks_ms()

    async def connect(self, host, port, client_id, user=None, password=None, keepalive=60,
                      will=None, timeout_ms=10000, tls=None, server_hostname=None):
        """Open TCP (+ TLS with tls, an ssl.SSLContext) + CONNECT; will = (topic, payload, qos, retain).

        Raise MQTTError on failure, a refused certificate included.
        """
        self.keepalive = keepalive
        try:
            self.reader, self.writer = await asyncio.wait_for_ms(
                asyncio.open_connection(host, port), timeout_ms)
        except (OSError, asyncio.TimeoutError) as e:
            raise MQTTError("tcp connect %s:%s: %r" % (host, port, e))
        self.alive = True
        self._nodelay()
        if tls is not None:
            self._wrap(tls, server_hostname or host)
        wt, wm, wq, wr = will if will else (None, b"", 0, False)
        try:
            # the TLS handshake runs inside this first write: a broker that accepts TCP and then says
            # nothing must not hold the session forever
            await asyncio.wait_for_ms(
                self._write(enc_connect(client_id, user, password, keepalive, True, wt, wm, wq, wr)), timeout_ms)
        except asyncio.TimeoutError:
            self._fail("no TLS handshake")
            raise MQTTError("no TLS handshake with %s:%s" % (host, port))
        try:
            ptype, flags, body = await asyncio.wait_for_ms(self._read_one(), timeout_ms)
        except asyncio.TimeoutError:
            self._fail("no CONNACK")
            raise MQTTError("no CONNACK")
        except (OSError, ValueError) as e:
            self._fail("read: " + _why(e))
            raise MQTTError("no CONNACK: " + _why(e))
        if ptype != CONNACK:
            self._fail("expected CONNACK")
            raise MQTTError("expected CONNACK, got %d" % ptype)
        _, rc = dec_connack(body)
        if rc != 0:
            self._fail("refused")
            raise MQTTError("connection refused, code %d" % rc)
        self.last_rx = time.ticks_ms()
        self.tasks = [asyncio.create_task(self._rx_loop()), asyncio.create_task(self._timer_loop())]

    def _wrap(self, ctx, hostname):
        """Put TLS over the connected socket; the handshake runs on the first write.

        The socket is wrapped here rather than by open_connection(ssl=...): TCP_NODELAY has to be set on the
        plain socket, and MicroPython's TLS socket has no setsockopt.
        """
        sock = self.writer.s
        try:
            tsock = ctx.wrap_socket(sock, server_hostname=hostname, do_handshake_on_connect=False)
            tsock.setblocking(False)
        except (OSError, ValueError) as e:
            self._fail("tls: " + _why(e))
            raise MQTTError("tls: " + _why(e))
        self.writer.s = tsock  # open_connection returns one Stream as both reader and writer
        self.reader.s = tsock
        self.tls = True

    def _nodelay(self):
        """Send small packets at once: a PUBACK followed by a request would otherwise wait on Nagle."""
        sock = getattr(self.writer, "s", None)
        try:
            sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except (AttributeError, OSError):
            pass  # a port without the option still works, only slower for back-to-back packets

    async def _read_one(self):
        while True:
            if self._pending:
                return self._pending.pop(0)
            data = await self.reader.read(512)
            if not data:
                raise MQTTError("closed by peer")
            self._pending.extend(self.dec.feed(data))

    async def _rx_loop(self):
        try:
            while self._pending:
                await self._handle(*self._pending.pop(0))
            while self.alive:
                n = await self.reader.readinto(self._rbuf)
                if n is None:
                    continue  # a TLS record not yet complete: no application bytes to read
                if not n:
                    self._fail("closed by peer")
                    return
                self.last_rx = time.ticks_ms()
                for pk in self.dec.feed(self._rmv[:n]):
                    await self._handle(*pk)
        except (OSError, ValueError, MQTTError) as e:
            self._fail("rx: %r" % e)

    async def _handle(self, ptype, flags, body):
        if ptype == PUBLISH:
            try:
                topic, payload, qos, pid, _, _ = dec_publish(flags, body)
            except MQTTError as e:
                self.rx_errors += 1
                self._log("mqtt", "bad PUBLISH dropped:", e)
                return
            if qos == 1:
                await self._write(enc_puback(pid))
            elif qos == 2:
                self.rx_errors += 1  # we subscribe at QoS 1 only; a QoS 2 delivery is a broker bug
                return
            self.on_message(topic, payload)
        elif ptype == PUBACK:
            pid = dec_pid(body)
            self.inflight.pop(pid, None)
            ev = self.waiters.pop(pid, None)
            if ev:
                ev.set()
        elif ptype == SUBACK:
            pid, granted = dec_suback(body)
            ev = self.waiters.pop(pid, None)
            if 0x80 in granted:
                self._log("mqtt", "subscription refused", pid)
                self.rx_errors += 1
            if ev:
                ev.set()
        elif ptype == PINGRESP:
            self.ping_out = False
        else:
            self.rx_errors += 1
            self._log("mqtt", "unexpected packet type", ptype)

    async def _timer_loop(self):
        try:
            while self.alive:
                await asyncio.sleep_ms(200)
                now = time.ticks_ms()
                ka = self.keepalive * 1000
                if ka and time.ticks_diff(now, self.last_rx) > ka * 3 // 2:
                    self._fail("keepalive timeout")
                    return
                if ka and time.ticks_diff(now, self.last_tx) > ka // 2 and not self.ping_out:
                    self.ping_out = True
                    await self._write(enc_pingreq())
                for pid in list(self.inflight):
                    ent = self.inflight.get(pid)
                    if ent and time.ticks_diff(now, ent[1]) > self.RESPONSE_MS:
                        ent[0] = set_dup(ent[0])
                        ent[1] = now
                        self.retransmits += 1
                        await self._write(ent[0])
        except MQTTError:
            pass

    async def publish(self, topic, payload, qos=0, retain=False, wait=False):
        """Send a PUBLISH; QoS 1 is retransmitted with DUP until PUBACK. wait=True waits for the PUBACK."""
        if qos == 0:
            await self._write(enc_publish(topic, payload, 0, retain))
            return 0
        while len(self.inflight) >= self.MAX_INFLIGHT and self.alive:
            await asyncio.sleep_ms(20)
        pid = self._next_pid()
        pk = enc_publish(topic, payload, 1, retain, pid)
        ev = asyncio.Event() if wait else None
        if ev:
            self.waiters[pid] = ev
        self.inflight[pid] = [pk, time.ticks_ms()]
        await self._write(pk)
        if ev:
            await self._wait(ev)
        return pid

    async def subscribe(self, topics):
        pid = self._next_pid()
        ev = asyncio.Event()
        self.waiters[pid] = ev
        await self._write(enc_subscribe(pid, topics))
        await self._wait(ev)

    async def _wait(self, ev):
        try:
            await asyncio.wait_for_ms(ev.wait(), self.RESPONSE_MS * 3)
        except asyncio.TimeoutError:
            self._fail("no response")
            raise MQTTError("no response from broker")
        if not self.alive:
            raise MQTTError("connection lost")

    def _fail(self, why):
        if self.alive:
            self._log("mqtt", "session ended:", why)
        self.alive = False
        for ev in self.waiters.values():
            ev.set()
        self.waiters = {}
        w = self.writer
        try:
            if w:
                w.close()
                # MicroPython's Stream.close() leaves the socket open (only wait_closed() closes it), and an open
                # socket keeps the broker from publishing our last will until the keepalive runs out.
                sock = getattr(w, "s", None)
                if sock is not None:
                    sock.close()
        except OSError:
            pass
        self.closed.set()

    async def disconnect(self):
        if self.alive:
            try:
                await self._write(enc_disconnect())
            except MQTTError:
                pass
        self._fail("disconnect")
        for t in self.tasks:
            t.cancel()
