"""The benchmark load's MQTT 3.1.1 codec against byte vectors written out from the specification."""

import pytest

from bench import mqttwire as M
from bench.mqttwire import MqttProtocolError


def test_connect_bytes():
    got = M.encode_connect("gw", clean_session=False, keepalive=30, username="u", password="pw")
    assert got == bytes([0x10, 21, 0, 4]) + b"MQTT" + bytes([4, 0xC0, 0, 30, 0, 2]) + b"gw" + \
        bytes([0, 1]) + b"u" + bytes([0, 2]) + b"pw"
    clean = M.encode_connect("c", keepalive=60)
    assert clean == bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 60, 0, 1]) + b"c"
    with pytest.raises(MqttProtocolError):
        M.encode_connect("c", password="x")


def test_publish_puback_subscribe_ping_disconnect_bytes():
    assert M.encode_publish("a/b", b"hi", qos=1, packet_id=10) == \
        bytes([0x32, 9, 0, 3]) + b"a/b" + bytes([0, 10]) + b"hi"
    assert M.encode_publish("t", b"x", qos=1, packet_id=0x1234, dup=True, retain=True) == \
        bytes([0x3B, 6, 0, 1]) + b"t" + bytes([0x12, 0x34]) + b"x"
    assert M.encode_publish("t", b"", qos=0) == bytes([0x30, 3, 0, 1]) + b"t"
    assert M.encode_puback(0x0102) == bytes([0x40, 2, 1, 2])
    assert M.encode_subscribe(1, [("a/+", 1), ("b", 0)]) == \
        bytes([0x82, 12, 0, 1, 0, 3]) + b"a/+" + bytes([1, 0, 1]) + b"b" + bytes([0])
    assert M.encode_pingreq() == bytes([0xC0, 0])
    assert M.encode_disconnect() == bytes([0xE0, 0])
    for bad in ({"qos": 1}, {"qos": 1, "packet_id": 0}, {"qos": 1, "packet_id": 65536}, {"qos": 2, "packet_id": 1}):
        with pytest.raises(MqttProtocolError):
            M.encode_publish("t", b"x", **bad)


@pytest.mark.parametrize("n,enc", [(0, [0]), (127, [0x7F]), (128, [0x80, 1]), (16383, [0xFF, 0x7F]),
                                   (16384, [0x80, 0x80, 1]), (2097151, [0xFF, 0xFF, 0x7F]),
                                   (2097152, [0x80, 0x80, 0x80, 1]), (268435455, [0xFF, 0xFF, 0xFF, 0x7F])])
def test_remaining_length_vectors(n, enc):
    assert M._remaining(n) == bytes(enc)


def test_parses_every_packet_the_broker_sends():
    p = M.Parser()
    data = (bytes([0x20, 2, 1, 0]) + bytes([0x20, 2, 0, 5])
            + bytes([0x32, 9, 0, 3]) + b"a/b" + bytes([0, 10]) + b"hi"
            + bytes([0x3A, 6, 0, 1]) + b"t" + bytes([0xFF, 0xFE]) + b"x"
            + bytes([0x31, 3, 0, 1]) + b"r"
            + bytes([0x30, 3, 0, 1]) + b"q"
            + bytes([0x40, 2, 0, 7])
            + bytes([0x90, 5, 0, 2, 1, 0, 0x80])
            + bytes([0xD0, 0]))
    assert p.feed(data) == [
        M.Connack(True, 0), M.Connack(False, 5),
        M.Publish("a/b", b"hi", 1, 10, False, False),
        M.Publish("t", b"x", 1, 0xFFFE, True, False), M.Publish("r", b"", 0, None, False, True),
        M.Publish("q", b"", 0, None, False, False),
        M.Puback(7), M.Suback(2, (1, 0, 0x80)), M.Pingresp()]
    assert p.buffered == 0


def _stream() -> tuple[bytes, list]:
    pubs = [M.Publish(f"jc/v1/s/l{i}/evt", b"{\"seq\":%d}" % i + b"p" * (i * 37 % 300), 1, i + 1, False, False)
            for i in range(40)]
    big = M.Publish("big", b"B" * 20000, 0, None, False, False)  # a 3-byte remaining length
    pkts = [M.Connack(False, 0), *pubs[:20], M.Puback(3), big, M.Pingresp(), *pubs[20:], M.Suback(1, (1,))]
    enc = {M.Connack: lambda k: bytes([0x20, 2, int(k.session_present), k.code]),
           M.Publish: lambda k: M.encode_publish(k.topic, k.payload, qos=k.qos, packet_id=k.packet_id),
           M.Puback: lambda k: M.encode_puback(k.packet_id),
           M.Pingresp: lambda k: bytes([0xD0, 0]),
           M.Suback: lambda k: bytes([0x90, 2 + len(k.granted), 0, k.packet_id, *k.granted])}
    return b"".join(enc[type(k)](k) for k in pkts), pkts


def test_a_feed_split_at_every_byte_gives_the_same_packets():
    data, want = _stream()
    for cut in range(len(data) + 1):
        p = M.Parser()
        got = p.feed(data[:cut]) + p.feed(data[cut:])
        assert got == want, cut
        assert p.buffered == 0


def test_a_byte_at_a_time_and_odd_chunks():
    data, want = _stream()
    p = M.Parser()
    got = []
    for i in range(len(data)):
        got += p.feed(data[i:i + 1])
    assert got == want
    p = M.Parser()
    got, i, step = [], 0, 1
    while i < len(data):
        got += p.feed(memoryview(data)[i:i + step])
        i, step = i + step, step * 3 % 4093 + 1
    assert got == want


@pytest.mark.parametrize("data,why", [
    (bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), "malformed remaining length"),
    (bytes([0x30, 0x80, 0x80, 0x80, 0x80]), "malformed remaining length"),
    (bytes([0x36, 5, 0, 1]) + b"t" + bytes([0, 1]), "QoS 3"),
    (bytes([0x32, 3, 0, 1]) + b"t", "packet id"),
    (bytes([0x30, 2, 0, 9]), "shorter than its topic"),
    (bytes([0x30, 3, 0, 1, 0xFF]), "not UTF-8"),
    (bytes([0x40, 3, 0, 1, 2]), "PUBACK"),
    (bytes([0x90, 3, 0, 1, 7]), "bad return code"),
    (bytes([0x10, 0]), "unexpected packet type 1"),
    (bytes([0x30, 0x81, 0x80, 0x04]), "exceeds"),
])
def test_malformed_input_is_a_clear_error(data, why):
    with pytest.raises(MqttProtocolError, match=why):
        M.Parser().feed(data)


def test_the_packet_bound_is_checked_before_the_body_arrives():
    p = M.Parser(max_packet=100)
    assert p.feed(M.encode_publish("t", b"x" * 97)) == [M.Publish("t", b"x" * 97, 0, None, False, False)]
    with pytest.raises(MqttProtocolError, match="101 bytes exceeds the 100-byte bound") as e:
        p.feed(M.encode_publish("t", b"x" * 98)[:3])  # only the header has arrived
    assert isinstance(e.value, ValueError)
