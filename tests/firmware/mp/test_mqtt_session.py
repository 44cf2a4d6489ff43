"""MQTT session against a scripted broker peer on a loopback socket: CONNACK, DUP retransmit, PUBACK, PINGREQ."""

import asyncio
import os
import time
from check import eq, true
from jc import mqtt


class Peer:
    """A broker-side script: records every packet the client sends, answers as told."""

    def __init__(self, connack_rc=0, puback=True):
        self.connack_rc = connack_rc
        self.puback = puback
        self.packets = []
        self.writer = None
        self.got = asyncio.Event()

    async def serve(self, reader, writer):
        self.writer = writer
        dec = mqtt.Decoder()
        while True:
            data = await reader.read(256)
            if not data:
                return
            for t, f, body in dec.feed(data):
                self.packets.append((t, f, body))
                self.got.set()
                if t == mqtt.CONNECT:
                    writer.write(bytes([0x20, 2, 0, self.connack_rc]))
                elif t == mqtt.SUBSCRIBE:
                    writer.write(b"\x90\x03" + body[:2] + b"\x01")
                elif t == mqtt.PINGREQ:
                    writer.write(b"\xd0\x00")
                elif t == mqtt.PUBLISH and self.puback and (f >> 1) & 3 == 1:
                    writer.write(mqtt.enc_puback(mqtt.dec_publish(f, body)[3]))
                await writer.drain()

    async def wait_for(self, ptype, count=1, timeout_ms=3000):
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        while sum(1 for p in self.packets if p[0] == ptype) < count:
            self.got.clear()
            left = time.ticks_diff(deadline, time.ticks_ms())
            try:
                await asyncio.wait_for_ms(self.got.wait(), max(left, 1))
            except asyncio.TimeoutError:
                raise AssertionError("no packet type %d x%d; got %r" % (ptype, count, [p[0] for p in self.packets]))


async def _start(peer):
    port = 20000 + int.from_bytes(os.urandom(2), "little") % 20000
    server = await asyncio.start_server(peer.serve, "127.0.0.1", port)
    return server, port


def _run(coro):
    asyncio.run(coro)


def test_qos1_retransmits_with_dup_until_puback():
    async def main():
        peer = Peer(puback=False)
        server, port = await _start(peer)
        s = mqtt.Session(lambda t, p: None)
        s.RESPONSE_MS = 300
        await s.connect("127.0.0.1", port, "c1", "u", "p", 30, will=("st", b"lost", 1, True))
        await s.publish("jc/v1/s/l/evt", b"e1", 1)
        await peer.wait_for(mqtt.PUBLISH, 2)
        pubs = [p for p in peer.packets if p[0] == mqtt.PUBLISH]
        first = mqtt.dec_publish(pubs[0][1], pubs[0][2])
        again = mqtt.dec_publish(pubs[1][1], pubs[1][2])
        eq(first[5], False)
        eq(again[5], True)  # DUP set on the retransmission
        eq(again[:4], first[:4])  # same topic, payload, qos, packet id
        true(s.retransmits >= 1)
        peer.writer.write(mqtt.enc_puback(first[3]))
        await peer.writer.drain()
        await asyncio.sleep_ms(100)
        eq(s.inflight, {})
        await s.disconnect()
        server.close()
    _run(main())


def test_incoming_qos1_is_acknowledged_and_delivered():
    async def main():
        got = []
        peer = Peer()
        server, port = await _start(peer)
        s = mqtt.Session(lambda t, p: got.append((t, p)))
        await s.connect("127.0.0.1", port, "c1", None, None, 30)
        await s.subscribe([("jc/v1/s/l/cmd", 1)])
        peer.writer.write(mqtt.enc_publish("jc/v1/s/l/cmd", b'{"v":1}', 1, False, 77))
        await peer.writer.drain()
        await peer.wait_for(mqtt.PUBACK)
        eq(mqtt.dec_pid([p for p in peer.packets if p[0] == mqtt.PUBACK][0][2]), 77)
        eq(got, [(b"jc/v1/s/l/cmd", b'{"v":1}')])
        await s.disconnect()
        server.close()
    _run(main())


def test_keepalive_sends_pingreq():
    async def main():
        peer = Peer()
        server, port = await _start(peer)
        s = mqtt.Session(lambda t, p: None)
        await s.connect("127.0.0.1", port, "c1", None, None, 1)
        await peer.wait_for(mqtt.PINGREQ, 2, 4000)
        true(s.alive)
        await s.disconnect()
        await peer.wait_for(mqtt.DISCONNECT)
        server.close()
    _run(main())


def test_refused_connection_raises():
    async def main():
        peer = Peer(connack_rc=5)
        server, port = await _start(peer)
        s = mqtt.Session(lambda t, p: None)
        try:
            await s.connect("127.0.0.1", port, "c1", "u", "bad", 30)
        except mqtt.MQTTError as e:
            true("refused" in str(e), str(e))
        else:
            raise AssertionError("no MQTTError")
        true(not s.alive)
        server.close()
    _run(main())
