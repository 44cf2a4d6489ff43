"""Sans-IO MQTT 3.1.1 codec for the benchmark's load: packet encoders and an incremental parser, no I/O.

The gateway speaks MQTT through paho (gateway/mqtt_client.py). The benchmark's simulated lockers do not: one
worker process must offer tens of thousands of events a second without taking the cores the gateway is
measured on, so they write packets on plain sockets with this codec. Only what they use: CONNECT/CONNACK,
PUBLISH (QoS 0 and 1), PUBACK, SUBSCRIBE/SUBACK, PINGREQ/PINGRESP, DISCONNECT. The parser takes bytes as the
socket gives them (any split, many packets per chunk) and returns every complete packet in one call, so one
socket read costs one call however many messages it carries.

A packet longer than the parser's `max_packet` is a protocol error (MqttProtocolError).
"""

from __future__ import annotations

from typing import NamedTuple


class MqttProtocolError(ValueError):
    """Bytes that are not valid MQTT 3.1.1 (or a packet over the bound): the stream cannot be resynchronised."""


CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
SUBACK_FAILURE = 0x80
MAX_PACKET = 64 * 1024
_RL_MAX = 268_435_455  # the largest remaining length four bytes can say

CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class Connack(NamedTuple):
    session_present: bool
    code: int


class Publish(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    packet_id: int | None
    dup: bool
    retain: bool


class Puback(NamedTuple):
    packet_id: int


class Suback(NamedTuple):
    packet_id: int
    granted: tuple[int, ...]  # one per topic filter asked for; 0x80 = refused


class Pingresp(NamedTuple):
    pass


PINGRESP_PACKET = Pingresp()


# ---- encoders ----

def _remaining(n: int) -> bytes:
    if not 0 <= n <= _RL_MAX:
        raise MqttProtocolError(f"packet too large to encode ({n} bytes)")
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else s
    if len(b) > 0xFFFF:
        raise MqttProtocolError("string longer than 65535 bytes")
    return len(b).to_bytes(2, "big") + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _remaining(len(body)) + body


def encode_connect(client_id: str, *, clean_session: bool = True, keepalive: int = 60,
                   username: str | None = None, password: str | None = None) -> bytes:
    if not 0 <= keepalive <= 0xFFFF:
        raise MqttProtocolError("keepalive must be 0..65535 s")
    if password is not None and username is None:
        raise MqttProtocolError("a password needs a user name (MQTT 3.1.1)")
    flags = (0x02 if clean_session else 0) | (0x80 if username is not None else 0) | \
        (0x40 if password is not None else 0)
    body = _str("MQTT") + bytes((4, flags)) + keepalive.to_bytes(2, "big") + _str(client_id)
    if username is not None:
        body += _str(username)
    if password is not None:
        body += _str(password)
    return _packet(CONNECT << 4, body)


def encode_publish(topic: str, payload: bytes, *, qos: int = 0, packet_id: int | None = None,
                   dup: bool = False, retain: bool = False) -> bytes:
    if qos not in (0, 1):
        raise MqttProtocolError("only QoS 0 and 1 are supported")
    if qos and not (packet_id and 1 <= packet_id <= 0xFFFF):
        raise MqttProtocolError("a QoS 1 publish needs a packet id 1..65535")
    first = (PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = _str(topic) + (packet_id.to_bytes(2, "big") if qos and packet_id else b"") + payload
    return _packet(first, body)


def encode_puback(packet_id: int) -> bytes:
    return bytes((PUBACK << 4, 2, packet_id >> 8, packet_id & 0xFF))


def encode_subscribe(packet_id: int, topics: list[tuple[str, int]]) -> bytes:
    if not topics:
        raise MqttProtocolError("SUBSCRIBE needs at least one topic filter")
    body = packet_id.to_bytes(2, "big") + b"".join(_str(t) + bytes((q,)) for t, q in topics)
    return _packet((SUBSCRIBE << 4) | 0x02, body)


def encode_pingreq() -> bytes:
    return bytes((PINGREQ << 4, 0))


def encode_disconnect() -> bytes:
    return bytes((DISCONNECT << 4, 0))


# ---- parser ----

class Parser:
    """Incremental parser of the packets a broker sends to a client.

    feed() takes any chunk of the byte stream and returns the packets it completed, in order; a partial
    packet waits for the next chunk. A malformed or oversized packet raises MqttProtocolError, after which
    the stream cannot be resynchronised and the connection must be closed.
    """

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self.max_packet = max_packet
        self._buf = b""

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list:
        buf = self._buf + data if self._buf else bytes(data)
        n = len(buf)
        pos = 0
        out: list = []
        append = out.append
        max_packet = self.max_packet
        new = tuple.__new__
        while n - pos >= 2:
            first = buf[pos]
            # remaining length: 1 to 4 bytes, 7 bits each, least significant first
            b = buf[pos + 1]
            if b < 0x80:
                rl, i = b, pos + 2
            else:
                rl, shift, i = b & 0x7F, 7, pos + 2
                while True:
                    if i >= n:
                        if i - pos - 1 >= 4:
                            raise MqttProtocolError("malformed remaining length (more than 4 bytes)")
                        rl = -1
                        break
                    b = buf[i]
                    i += 1
                    rl |= (b & 0x7F) << shift
                    if b < 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise MqttProtocolError("malformed remaining length (more than 4 bytes)")
                if rl < 0:
                    break
            if rl > max_packet:
                raise MqttProtocolError(f"packet of {rl} bytes exceeds the {max_packet}-byte bound")
            end = i + rl
            if end > n:
                break
            ptype = first >> 4
            if ptype == PUBLISH:
                qos = (first >> 1) & 3
                if rl < 2:
                    raise MqttProtocolError("PUBLISH without a topic")
                j = i + 2 + ((buf[i] << 8) | buf[i + 1])
                if qos:
                    if qos == 3:
                        raise MqttProtocolError("PUBLISH with QoS 3")
                    if j + 2 > end:
                        raise MqttProtocolError("PUBLISH shorter than its topic and packet id")
                    pid = (buf[j] << 8) | buf[j + 1]
                    body = j + 2
                elif j > end:
                    raise MqttProtocolError("PUBLISH shorter than its topic")
                else:
                    pid, body = None, j
                try:
                    topic = buf[i + 2:j].decode("utf-8")
                except UnicodeDecodeError:
                    raise MqttProtocolError("PUBLISH topic is not UTF-8") from None
                # tuple.__new__ directly: a NamedTuple's own __new__ is a Python-level call per message
                append(new(Publish, (topic, buf[body:end], qos, pid, bool(first & 0x08), bool(first & 0x01))))
            elif ptype == PUBACK:
                if rl != 2:
                    raise MqttProtocolError("PUBACK must carry 2 bytes")
                append(Puback((buf[i] << 8) | buf[i + 1]))
            elif ptype == CONNACK:
                if rl != 2:
                    raise MqttProtocolError("CONNACK must carry 2 bytes")
                append(Connack(bool(buf[i] & 1), buf[i + 1]))
            elif ptype == SUBACK:
                if rl < 3:
                    raise MqttProtocolError("SUBACK without a return code")
                granted = tuple(buf[i + 2:end])
                if any(g not in (0, 1, 2, SUBACK_FAILURE) for g in granted):
                    raise MqttProtocolError(f"SUBACK with a bad return code {granted}")
                append(Suback((buf[i] << 8) | buf[i + 1], granted))
            elif ptype == PINGRESP:
                if rl:
                    raise MqttProtocolError("PINGRESP must be empty")
                append(PINGRESP_PACKET)
            else:
                raise MqttProtocolError(f"unexpected packet type {ptype} from the broker")
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        return out
