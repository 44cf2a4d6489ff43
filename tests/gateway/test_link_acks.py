"""The broker's PUBACK only after the commit, and the bound on what the link holds, through real Mosquitto."""

import asyncio
import json
import signal
import sqlite3
import threading

import httpx

from gwkit import PahoLocker, RunningGateway, free_port, make_config, until
from test_failures import start_gateway, wait_health
from test_lockerlink import _burst


async def _received(port: int) -> int:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"http://127.0.0.1:{port}/health", timeout=2)
        return r.json()["counters"]["mqtt_received"]


def _evt_rows(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT src, boot, seq FROM outbox WHERE kind='evt' ORDER BY id").fetchall()


async def test_a_gateway_killed_between_receive_and_commit_gets_the_event_again(station, tmp_path):
    """The station database is held by another writer, so the gateway receives the event but cannot commit
    it; kill -9 then. The locker here never re-sends: only the broker's redelivery can bring the event back."""
    cfg, broker = station
    http_port = free_port()
    data = json.loads(make_config(tmp_path, broker.port, cloud={"downlink": False}).model_dump_json())
    data["gateway"]["http"]["port"] = http_port
    conf = tmp_path / "station.json"
    conf.write_text(json.dumps(data))
    db = data["gateway"]["db"]
    proc = start_gateway(conf)
    l1 = PahoLocker(broker.port, "l1")
    try:
        await wait_health(http_port)
        l1.connect()
        l1.online()
        l1.birth()
        await until(lambda: any(c["op"] == "time" for c in l1.cmds), what="the birth handled")
        before = await _received(http_port)
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the gateway's writer now waits (busy timeout 5 s)
        try:
            evt = l1.evt("door", c=1, open=True)  # returns once the broker has taken it (its PUBACK to l1)
            deadline = asyncio.get_running_loop().time() + 3
            while await _received(http_port) < before + 1:
                assert asyncio.get_running_loop().time() < deadline, "the gateway did not receive the event"
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert _evt_rows(db) == [] and l1.eacks == [], "received, not committed, not eacked"
        proc = start_gateway(conf)
        await wait_health(http_port)
        await until(lambda: l1.acked() == 1, timeout=10, what="the eack after the broker sent the event again")
        assert _evt_rows(db) == [("l1", l1.boot, 1)]
        assert l1.seq == 1 and evt["seq"] == 1
    finally:
        l1.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


async def test_a_flood_stops_at_the_link_bound_and_waits_with_the_broker(station, lockers, monkeypatch):
    """The outbox writer stalls (a held SQLite job, like a slow card) while a locker floods: the link takes at
    most its bound plus one batch, stops reading, and the broker keeps the rest until the writer moves."""
    import gateway.lockerlink as LL
    bound, batch = 100, 20
    monkeypatch.setattr(LL, "MAX_INFLIGHT_EVENTS", bound)
    monkeypatch.setattr(LL, "RESUME_INFLIGHT_EVENTS", bound // 2)
    monkeypatch.setattr(LL, "MQTT_BATCH_MAX", batch)
    cfg, broker = station
    rg = RunningGateway(cfg)
    gw = await rg.start()
    release = threading.Event()
    try:
        l1 = lockers(broker.port, "l1").connect()
        l1.online()
        l1.birth()
        await until(lambda: gw.link.lockers["l1"].birth_at, what="birth")
        stall = asyncio.ensure_future(gw.outbox.run(lambda conn: release.wait(30)))
        await asyncio.sleep(0.1)
        before = gw.counters["mqtt_received"]
        await _burst([l1], 2000)  # every one of them taken by the broker
        client = gw.link._client
        await until(lambda: client.paused, what="the link paused")
        await asyncio.sleep(0.5)  # the link does not read on while paused
        taken = gw.counters["mqtt_received"] - before
        assert gw.link.in_flight <= bound + batch
        assert taken <= bound + batch, f"{taken} messages taken into memory"
        assert l1.eacks == [] and await rg.outbox_rows("evt") == []
        release.set()
        await stall
        await until(lambda: l1.acked() == 2000, timeout=30, what="all 2000 eacked")
        assert [r.seq for r in await rg.outbox_rows("evt")] == list(range(1, 2001))
        assert gw.counters["link_pauses"] > 0 and not client.paused
    finally:
        release.set()
        await rg.close()
