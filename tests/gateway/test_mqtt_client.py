"""The locker link's own MQTT client against the station's real Mosquitto (passwords, ACL, persistence)."""

import asyncio
import os
import signal

import pytest

from gateway.errors import BrokerError, BrokerRefused
from gateway.mqtt_client import MqttClient
from gwkit import STATION, until

BASE = f"jc/v1/{STATION}"


def gateway_client(msgs=None, batches=None, **kw) -> MqttClient:
    def on_messages(batch):
        if batches is not None:
            batches.append(len(batch))
        if msgs is not None:
            msgs.extend(batch)
    kw.setdefault("clean_session", False)
    return MqttClient(f"{STATION}-gateway", username="gateway", password="gw-pass-1234", on_messages=on_messages,
                      **kw)


async def test_connect_subscribe_and_take_messages_in_batches(station, lockers):
    cfg, broker = station
    msgs, batches = [], []
    c = gateway_client(msgs, batches)
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
    with pytest.raises(BrokerRefused, match="refused the connection: (bad user name or password|not authorised)") \
            as e:
        await c.connect("127.0.0.1", broker.port)
    assert e.value.code in (4, 5)
    with pytest.raises(BrokerError, match="cannot reach"):
        await MqttClient("x").connect("127.0.0.1", 9, timeout=2)


async def test_subscription_granted_qos_and_a_filter_the_broker_cannot_take(mosquitto_factory):
    # mosquitto 2.0 grants a filter its ACL forbids (and then delivers nothing) and drops the connection
    # for a malformed one; both must surface, not hang
    broker = mosquitto_factory("allow_anonymous true\nmax_qos 0\n")
    c = MqttClient("probe")
    await c.connect("127.0.0.1", broker.port)
    try:
        granted = await c.subscribe([("a/#", 1)])
        assert granted == (0,)
        with pytest.raises(BrokerError):
            # a malformed filter: mosquitto refuses it by closing the connection
            await c.subscribe([("a/#/b", 1)], timeout=2)
    finally:
        await c.close()


async def test_qos1_publish_is_acked_and_reaches_the_locker(station, lockers):
    cfg, broker = station
    l1 = lockers(broker.port, "l1", auto_ack=False).connect()
    c = gateway_client()
    await c.connect("127.0.0.1", broker.port)
    try:
        # more publishes than packet ids in flight: ids are reused only once acked
        c.max_inflight = 8
        c._slots = asyncio.Semaphore(8)
        await asyncio.gather(*[c.publish(f"{BASE}/l1/eack", b'{"v":1,"boot":"%s","seq":%d}' % (l1.boot.encode(), i))
                               for i in range(1, 41)])
        await until(lambda: len(l1.eacks) == 40, what="40 eacks at the locker")
        assert sorted(e["seq"] for e in l1.eacks) == list(range(1, 41))
    finally:
        await c.close()


async def test_broker_restart_ends_the_session_with_an_error(station):
    cfg, broker = station
    c = gateway_client()
    await c.connect("127.0.0.1", broker.port)
    await c.subscribe([(f"{BASE}/+/+", 1)])
    broker.restart()
    with pytest.raises(BrokerError, match="connection to the broker lost|the broker closed the connection"):
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
            with pytest.raises(BrokerError, match="broker silent"):
                await asyncio.wait_for(c.closed, 5)
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
    finally:
        await c.close()


async def test_persistent_session_keeps_messages_while_the_gateway_is_away(station, lockers):
    cfg, broker = station
    c = gateway_client()
    await c.connect("127.0.0.1", broker.port)
    await c.subscribe([(f"{BASE}/+/+", 1)])
    await c.close()
    l1 = lockers(broker.port, "l1").connect()
    for i in range(5):
        l1.pub("evt", b'{"n":%d}' % i)
    msgs = []
    c = gateway_client(msgs)
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
