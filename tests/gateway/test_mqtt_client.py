"""The locker link's MQTT client (paho driven from the event loop) against the station's real Mosquitto."""

import asyncio
import os
import signal

import pytest

from gateway.errors import BrokerError, BrokerRefused
from gateway.mqtt_client import MQTT5, MQTT311, MqttClient
from gwkit import STATION, until

BASE = f"jc/v1/{STATION}"


def gateway_client(msgs=None, batches=None, *, ack: bool = True, **kw) -> MqttClient:
    """The gateway's client; with ack, each batch is PUBACKed as soon as it is handed over."""
    c: MqttClient

    def on_messages(batch):
        if batches is not None:
            batches.append(len(batch))
        if msgs is not None:
            msgs.extend(batch)
        if ack:
            c.ack([m.mid for m in batch if m.qos])
    kw.setdefault("clean_session", False)
    c = MqttClient(f"{STATION}-gateway", username="gateway", password="gw-pass-1234", on_messages=on_messages,
                   **kw)
    return c


async def test_connect_subscribe_and_take_messages_in_batches(station, lockers):
    cfg, broker = station
    msgs, batches = [], []
    c = gateway_client(msgs, batches, batch_max=100)
    assert await c.connect("127.0.0.1", broker.port) is False
    try:
        assert await c.subscribe([(f"{BASE}/+/+", 1)]) == (1,)
        l1 = lockers(broker.port, "l1").connect()
        # published without waiting for each PUBACK, so the broker sends them back to back
        infos = [l1.c.publish(f"{l1.base}/evt", b'{"n":%d}' % i, qos=1) for i in range(500)]
        for info in infos:
            info.wait_for_publish(5)
        await until(lambda: len(msgs) == 500, what="500 messages")
        assert [m.payload for m in msgs] == [b'{"n":%d}' % i for i in range(500)]
        assert {(m.topic, m.qos) for m in msgs} == {(f"{l1.base}/evt", 1)}
        assert max(batches) > 1 and len(batches) < 500, "many messages per socket read"
        assert max(batches) <= 100, "handed over in lists of at most batch_max"
        # every QoS 1 message was acked to the broker: nothing is sent again on a reconnect
        await c.close()
        msgs.clear()
        c = gateway_client(msgs)
        assert await c.connect("127.0.0.1", broker.port) is True
        await asyncio.sleep(0.5)
        assert msgs == []
    finally:
        await c.close()


async def test_bad_password_is_refused_with_a_clear_error(station):
    cfg, broker = station
    c = MqttClient("someone", username="gateway", password="wrong-password")
    with pytest.raises(BrokerRefused, match="refused the connection: (bad user name or password|not authori[sz]ed)") \
            as e:
        await c.connect("127.0.0.1", broker.port)
    assert e.value.code in (134, 135)  # MQTT 3.1.1 return codes 4 and 5, as paho names them
    with pytest.raises(BrokerError, match="cannot reach"):
        await MqttClient("x").connect("127.0.0.1", 9, timeout=2)


async def test_subscription_granted_qos_and_a_filter_the_broker_cannot_take(mosquitto_factory):
    # mosquitto 2.0 grants a filter its ACL forbids (and then delivers nothing); paho refuses a malformed one
    # before it leaves; both must surface, not hang
    broker = mosquitto_factory("allow_anonymous true\nmax_qos 0\n")
    c = MqttClient("probe")
    await c.connect("127.0.0.1", broker.port)
    try:
        granted = await c.subscribe([("a/#", 1)])
        assert granted == (0,)
        with pytest.raises(BrokerRefused, match="subscription refused"):
            await c.subscribe([("a/#/b", 1)], timeout=2)
        assert await c.subscribe([("b/+", 1)]) == (0,), "the session goes on"
    finally:
        await c.close()


async def test_qos1_publish_is_acked_and_reaches_the_locker(station, lockers):
    cfg, broker = station
    l1 = lockers(broker.port, "l1", auto_ack=False).connect()
    c = gateway_client(max_inflight=8)
    await c.connect("127.0.0.1", broker.port)
    try:
        def eack(i):
            return c.publish(f"{BASE}/l1/eack", b'{"v":1,"boot":"%s","seq":%d}' % (l1.boot.encode(), i))
        # at most max_inflight publishes outstanding: one more is refused at once, not queued without bound
        with pytest.raises(BrokerError, match="too many publishes"):
            await asyncio.gather(*[eack(i) for i in range(1, 10)])
        await until(lambda: len(l1.eacks) == 8, what="the first 8 eacks")
        # packet ids are reused once acked: five more rounds of 8
        for r in range(5):
            await asyncio.gather(*[eack(i) for i in range(10 + r * 8, 18 + r * 8)])
        await until(lambda: len(l1.eacks) == 48, what="48 eacks at the locker")
        assert sorted(e["seq"] for e in l1.eacks) == list(range(1, 9)) + list(range(10, 50))
    finally:
        await c.close()


async def test_broker_restart_ends_the_session_with_an_error(station):
    cfg, broker = station
    c = gateway_client()
    await c.connect("127.0.0.1", broker.port)
    await c.subscribe([(f"{BASE}/+/+", 1)])
    broker.restart()
    with pytest.raises(BrokerError, match="connection to the broker lost"):
        await asyncio.wait_for(c.closed, 10)
    with pytest.raises(BrokerError):
        await c.publish(f"{BASE}/l1/cmd", b"{}")
    await c.close()


async def test_keepalive_holds_an_idle_link_and_detects_a_silent_broker(station):
    cfg, broker = station
    c = gateway_client(keepalive=1)
    await c.connect("127.0.0.1", broker.port)
    try:
        await asyncio.sleep(3.5)  # mosquitto drops a client silent for 1.5 keepalives
        assert not c.closed.done()
        await c.publish(f"{BASE}/l1/cmd", b"{}")
        os.kill(broker.proc.pid, signal.SIGSTOP)  # the broker hangs: TCP stays up, nothing answers
        try:
            with pytest.raises(BrokerError, match="broker silent past the keepalive"):
                await asyncio.wait_for(c.closed, 5)
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
    finally:
        await c.close()


@pytest.mark.parametrize("protocol", [MQTT311, MQTT5], ids=["mqtt311", "mqtt5"])
async def test_persistent_session_keeps_messages_while_the_gateway_is_away(station, lockers, protocol):
    cfg, broker = station
    c = gateway_client(protocol=protocol)
    await c.connect("127.0.0.1", broker.port)
    await c.subscribe([(f"{BASE}/+/+", 1)])
    await c.close()
    l1 = lockers(broker.port, "l1").connect()
    for i in range(5):
        l1.pub("evt", b'{"n":%d}' % i)
    msgs = []
    c = gateway_client(msgs, protocol=protocol)
    assert await c.connect("127.0.0.1", broker.port) is True  # no subscribe: the session has it
    try:
        await until(lambda: len(msgs) == 5, what="queued messages")
        assert [m.payload for m in msgs] == [b'{"n":%d}' % i for i in range(5)]
    finally:
        await c.close()


async def test_pause_leaves_messages_with_the_broker_until_resume(station, lockers):
    cfg, broker = station
    msgs = []
    c = gateway_client(msgs, keepalive=1)
    await c.connect("127.0.0.1", broker.port)
    try:
        await c.subscribe([(f"{BASE}/+/+", 1)])
        c.pause()
        l1 = lockers(broker.port, "l1").connect()
        for i in range(20):
            l1.pub("evt", b'{"n":%d}' % i)
        await asyncio.sleep(2.5)  # longer than the dead-link timeout: a paused link is not dead
        assert msgs == [] and not c.closed.done()
        c.resume()
        await until(lambda: len(msgs) == 20, what="messages after resume")
        assert [m.payload for m in msgs] == [b'{"n":%d}' % i for i in range(20)]
    finally:
        await c.close()


@pytest.mark.parametrize("protocol", [MQTT311, MQTT5], ids=["mqtt311", "mqtt5"])
async def test_a_message_not_acked_is_sent_again_on_the_next_session(station, lockers, protocol):
    """PUBACKs are the owner's: a message handed over but never acked stays with the broker."""
    cfg, broker = station
    msgs = []
    c = gateway_client(msgs, ack=False, protocol=protocol)
    await c.connect("127.0.0.1", broker.port)
    await c.subscribe([(f"{BASE}/+/+", 1)])
    l1 = lockers(broker.port, "l1").connect()
    for i in range(3):
        l1.pub("evt", b'{"n":%d}' % i)
    await until(lambda: len(msgs) == 3, what="three messages")
    c.ack([msgs[0].mid])  # only the first
    await asyncio.sleep(0.2)
    await c.close()
    again = []
    c = gateway_client(again, protocol=protocol)
    assert await c.connect("127.0.0.1", broker.port) is True
    try:
        await until(lambda: len(again) == 2, what="the two unacked messages again")
        assert [m.payload for m in again] == [b'{"n":1}', b'{"n":2}']
        await asyncio.sleep(0.3)
        assert len(again) == 2
    finally:
        await c.close()


async def test_the_client_speaks_tls_with_the_station_ca(mosquitto_factory, tmp_path):
    """With an ssl context the same client reaches a TLS listener checked against the station's CA, and a burst
    read through TLS (records ssl holds already decrypted included) arrives whole and in order."""
    import ssl

    import paho.mqtt.client as mqtt

    from gateway.station_ca import make_station_ca
    from gwkit import RUN_AS, free_port
    paths = make_station_ca(tmp_path / "ca", tmp_path / "srv", station=STATION, hosts=["127.0.0.1"])
    tls_port = free_port()
    broker = mosquitto_factory((f"user {RUN_AS}\n" if RUN_AS else "") + "allow_anonymous true\n"
                               f"listener {tls_port} 127.0.0.1\ncafile {paths['broker ca.pem']}\n"
                               f"certfile {paths['server.pem']}\nkeyfile {paths['server.key']}\n"
                               "tls_version tlsv1.2\n")
    msgs = []
    c = MqttClient("tls-probe", clean_session=True, on_messages=lambda b: (msgs.extend(b), c.ack([m.mid for m in b])),
                   ssl_context=ssl.create_default_context(cafile=str(paths["ca.pem"])))
    await c.connect("127.0.0.1", tls_port)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-pub")
    try:
        await c.subscribe([("t/#", 1)])
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        infos = [pub.publish("t/x", b"m%04d" % i + b"." * 900, qos=1) for i in range(300)]
        for info in infos:
            await asyncio.to_thread(info.wait_for_publish, 10)
        await until(lambda: len(msgs) == 300, what="300 messages over TLS")
        assert [m.payload[:5] for m in msgs] == [b"m%04d" % i for i in range(300)]
        await c.publish("t/back", b"over tls")  # and its PUBACK came back through TLS
    finally:
        pub.loop_stop()
        pub.disconnect()
        await c.close()
    # a broker whose certificate the context does not trust is refused
    other = MqttClient("tls-probe-2", ssl_context=ssl.create_default_context())
    with pytest.raises(BrokerError, match="cannot reach"):
        await other.connect("127.0.0.1", tls_port, timeout=3)


async def test_a_publish_the_acl_denies_is_refused_not_taken_silently(station):
    """MQTT 5: the broker's PUBACK says why it did not take a publish (an MQTT 3.1.1 client hears nothing)."""
    cfg, broker = station
    c = gateway_client(protocol=MQTT5)
    await c.connect("127.0.0.1", broker.port)
    try:
        with pytest.raises(BrokerRefused, match="refused the publish to jc/v1/other-01/l1/cmd: not authori") as e:
            await c.publish("jc/v1/other-01/l1/cmd", b"{}")
        assert e.value.code == 0x87
        await c.publish(f"{BASE}/l1/cmd", b"{}")  # its own station's topic is taken
    finally:
        await c.close()
