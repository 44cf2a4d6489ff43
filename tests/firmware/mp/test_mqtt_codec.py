"""MQTT 3.1.1 packet codec (sans-IO)."""

from check import eq, true, raises
from jc import mqtt


def test_connect_bytes():
    pk = mqtt.enc_connect("s1-l1", "l1", "pw", 30, True, "jc/v1/s1/l1/status", b'{"v":1}', 1, True)
    eq(pk[0], 0x10)
    body = pk[2:]
    eq(pk[1], len(body))
    eq(body[:6], b"\x00\x04MQTT")
    eq(body[6], 4)
    # user, password, will retain, will qos 1, will flag, clean session
    eq(body[7], 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02)
    eq(body[8:10], b"\x00\x1e")
    eq(body[10:17], b"\x00\x05s1-l1")
    true(body.endswith(b"\x00\x02l1\x00\x02pw"))


def test_publish_roundtrip_byte_by_byte():
    pk = mqtt.enc_publish("a/b", b"hello", 1, False, 513)
    d = mqtt.Decoder()
    got = []
    for i in range(len(pk)):
        got += d.feed(pk[i:i + 1])
    eq(len(got), 1)
    t, f, body = got[0]
    eq(t, mqtt.PUBLISH)
    eq(mqtt.dec_publish(f, body), (b"a/b", b"hello", 1, 513, False, False))


def test_dup_flag_for_retransmit():
    pk = mqtt.set_dup(mqtt.enc_publish("t", b"x", 1, True, 7))
    t, f, body = mqtt.Decoder().feed(pk)[0]
    eq(mqtt.dec_publish(f, body), (b"t", b"x", 1, 7, True, True))


def test_long_remaining_length():
    for n in (127, 128, 16383, 16384, 20000):
        pk = mqtt.enc_publish("t", b"x" * n, 0)
        t, f, body = mqtt.Decoder(max_packet=30000).feed(pk)[0]
        eq(len(mqtt.dec_publish(f, body)[1]), n)


def test_oversize_packet_skipped_and_counted():
    d = mqtt.Decoder(max_packet=100)
    big = mqtt.enc_publish("t", b"y" * 500, 0)
    small = mqtt.enc_publish("t", b"ok", 0)
    stream = big + small + mqtt.enc_puback(9)
    got = []
    for i in range(0, len(stream), 33):
        got += d.feed(stream[i:i + 33])
    eq(d.oversize, 1)
    eq([p[0] for p in got], [mqtt.PUBLISH, mqtt.PUBACK])
    eq(mqtt.dec_publish(got[0][1], got[0][2])[1], b"ok")
    eq(mqtt.dec_pid(got[1][2]), 9)


def test_several_packets_in_one_read():
    stream = b"\x20\x02\x00\x00" + b"\x90\x03\x00\x05\x01" + b"\xd0\x00"
    got = mqtt.Decoder().feed(stream)
    eq([p[0] for p in got], [mqtt.CONNACK, mqtt.SUBACK, mqtt.PINGRESP])
    eq(mqtt.dec_connack(got[0][2]), (False, 0))
    eq(mqtt.dec_suback(got[1][2]), (5, [1]))


def test_subscribe_and_small_packets():
    pk = mqtt.enc_subscribe(3, [("a", 1), ("b/c", 1)])
    eq(pk, b"\x82\x0c\x00\x03\x00\x01a\x01\x00\x03b/c\x01")
    eq(mqtt.enc_puback(258), b"\x40\x02\x01\x02")
    eq(mqtt.enc_pingreq(), b"\xc0\x00")
    eq(mqtt.enc_disconnect(), b"\xe0\x00")


def test_malformed_length_and_publish():
    raises(mqtt.MQTTError, mqtt.Decoder().feed, b"\x30\xff\xff\xff\xff\x01")
    raises(mqtt.MQTTError, mqtt.dec_publish, 2, b"\x00\x09ab")
    raises(mqtt.MQTTError, mqtt.dec_connack, b"\x00")
