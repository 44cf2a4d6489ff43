"""The locker link against a real Mosquitto, with paho clients speaking as lockers."""

import asyncio
import json

from gateway.eacks import EACK_INTERVAL_S
from gwkit import RunningGateway, make_config, until


async def test_birth_gives_live_state_and_a_clock(gateway, lockers):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth([{"n": 1, "size": "S", "st": "empty", "door": "closed", "occ": False},
              {"n": 2, "size": "M", "st": "occupied", "door": "closed", "occ": True, "ref": "p-7f3a1c"},
              {"n": 3, "size": "L", "st": "disabled", "door": "closed", "occ": False}])
    ls = gateway.gw.link.lockers["l1"]
    await until(lambda: ls.birth_at is not None, what="birth")
    assert ls.online and ls.boot == l1.boot
    assert {c.n: (c.st, c.ref) for c in ls.comps.values()} == {
        1: ("empty", None), 2: ("occupied", "p-7f3a1c"), 3: ("disabled", None)}
    await until(lambda: any(c["op"] == "time" for c in l1.cmds), what="time command")
    assert abs([c for c in l1.cmds if c["op"] == "time"][0]["ts"] - __import__("time").time()) < 5
    await until(lambda: gateway.gw.link.online_count() == 1)
    kinds = [r.kind for r in await gateway.outbox_rows()]
    assert "birth" in kinds and "status" in kinds
    births = await gateway.outbox_rows("birth")
    assert births[0].src == "l1" and births[0].boot == gateway.gw.outbox.epoch and births[0].body["boot"] == l1.boot


async def test_events_stored_once_and_acked_cumulatively(gateway, lockers):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth()
    for _ in range(3):
        l1.evt("door", c=1, open=True)
    l1.evt("door", seq=2, c=1, open=True)  # re-sent: its eack was lost
    await until(lambda: l1.acked() == 3, what="eack 3")
    evts = await gateway.outbox_rows("evt")
    assert [(r.src, r.boot, r.seq) for r in evts] == [("l1", l1.boot, 1), ("l1", l1.boot, 2), ("l1", l1.boot, 3)]
    # a re-send after the eack is answered again, not stored again
    n = len(l1.eacks)
    l1.evt("door", seq=3, c=1, open=True)
    await until(lambda: len(l1.eacks) > n, what="eack for a duplicate")
    assert l1.eacks[-1]["seq"] == 3
    assert len(await gateway.outbox_rows("evt")) == 3
    # the watermark survives a gateway restart: the locker's re-send is still recognised
    await gateway.close()
    await gateway.start()
    n = len(l1.eacks)
    l1.evt("door", seq=2, c=1, open=True)
    await until(lambda: len(l1.eacks) > n, what="eack after restart")
    assert l1.eacks[-1] == {"v": 1, "boot": l1.boot, "seq": 3}
    assert len(await gateway.outbox_rows("evt")) == 3


async def test_eack_only_after_the_event_is_durable(station, lockers, tmp_path):
    cfg0, broker = station
    # the empty station database takes about 0.15 MB (schema version 4): room for a few records beyond it
    cfg = make_config(tmp_path, broker.port, outbox={"max_db_mb": 0.17, "retry_s": 0.05})
    rg = RunningGateway(cfg)
    gw = await rg.start()
    try:
        l1 = lockers(broker.port, "l1").connect()
        l1.online()
        l1.birth()
        l1.evt("door", c=1, open=True)
        await until(lambda: l1.acked() == 1)
        # fill the database with the gateway's own records, which are never dropped
        pending = None
        for _ in range(400):
            from gateway.stationdb import Record
            pending = gw.outbox.submit(Record(src="gw", kind="parcel", body={"pad": "p" * 400}))
            await asyncio.wait([pending], timeout=0.5)
            if not pending.done():
                break
        assert gw.counters["disk_full"] > 0
        l1.evt("deposit", c=2, ref="p-abc")
        await asyncio.sleep(0.8)
        assert l1.acked() == 1, "an event the gateway could not store must not be acked"
        health = await gw.health()
        assert health["ok"] is False and health["counters"]["disk_full"] > 0
        # the cloud drains the outbox: space frees, the event is stored, and only now acked
        rows = await rg.outbox_rows()
        await gw.outbox.delete([r.id for r in rows])
        await until(lambda: l1.acked() == 2, what="eack after space freed")
        evts = await rg.outbox_rows("evt")
        assert [(r.seq, r.body["type"]) for r in evts] == [(2, "deposit")]
    finally:
        await rg.close()


async def test_bad_payloads_are_counted_and_dropped_without_losing_good_ones(gateway, lockers):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth()
    await until(lambda: gateway.gw.link.lockers["l1"].birth_at)
    l1.pub("evt", b"{not json")
    l1.pub("evt", b"\xff\xfe")
    l1.pub("evt", json.dumps({"v": 1, "boot": l1.boot, "seq": 1, "ts": 0, "mono": 0, "type": "door", "c": 1,
                              "open": True, "pad": "x" * 600}))
    l1.pub("birth", {"v": 2, "boot": l1.boot})
    l1.pub("tele", b"[1,2]", qos=0)
    # a malformed event that still names its (boot, seq) would be re-sent forever and block every later
    # eack: it is kept for the cloud's dead-letter table and acked, but changes no state
    bad = l1.evt("door", c=99, open=False)
    good = l1.evt("door", c=1, open=True)
    await until(lambda: l1.acked() == 2, what="both events acked")
    c = gateway.gw.counters
    await until(lambda: c["rejected_payloads"] == 6, what="six rejections")
    assert c["quarantined_events"] == 1
    evts = await gateway.outbox_rows("evt")
    assert [r.body for r in evts] == [bad, good]
    assert gateway.gw.link.lockers["l1"].comps[1].door == "open"
    # a locker the broker knows but this station does not: counted, nothing stored
    l3 = lockers(gateway.broker.port, "l3").connect()
    l3.evt("door", c=1, open=True)
    await until(lambda: c["unknown_lockers"] >= 1, what="unknown locker counted")
    assert len(await gateway.outbox_rows("evt")) == 2
    h = await gateway.gw.health()
    assert h["counters"]["rejected_payloads"] == 6 and h["counters"]["unknown_lockers"] >= 1


async def test_seq_gap_asks_for_a_rebirth_and_waits_for_the_missing_event(gateway, lockers):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth()
    await until(lambda: gateway.gw.link.lockers["l1"].birth_at)
    l1.evt("door", seq=1, c=1, open=True)
    await until(lambda: l1.acked() == 1)
    assert not any(c["op"] == "rebirth" for c in l1.cmds), "a locker that sent its birth needs no rebirth"
    l1.evt("door", seq=3, c=1, open=False)
    await until(lambda: any(c["op"] == "rebirth" for c in l1.cmds), what="rebirth command")
    assert gateway.gw.counters["seq_gaps"] == 1
    await asyncio.sleep(0.3)
    assert l1.acked() == 1, "eack is cumulative: it must not cover the missing seq 2"
    assert [r.seq for r in await gateway.outbox_rows("evt")] == [1], "nothing past the gap is stored"
    l1.evt("door", seq=2, c=1, open=True)  # the locker sends its unacked events again, oldest first
    l1.evt("door", seq=3, c=1, open=False)
    await until(lambda: l1.acked() == 3, what="eack 3 once the gap is filled")
    assert [r.seq for r in await gateway.outbox_rows("evt")] == [1, 2, 3], "stored in order"


async def test_last_will_marks_the_locker_offline(gateway, lockers):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth()
    ls = gateway.gw.link.lockers["l1"]
    await until(lambda: ls.online and ls.birth_at)
    l1.kill()
    await until(lambda: not ls.online, timeout=8, what="offline after last will")
    assert gateway.gw.counters["lockers_lost"] == 1
    statuses = [r.body["state"] for r in await gateway.outbox_rows("status")]
    assert statuses[-1] == "lost"
    assert (await gateway.gw.health())["lockers_online"] == 0


async def test_retained_status_after_gateway_restart_triggers_rebirth(gateway, lockers):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth()
    await until(lambda: gateway.gw.link.lockers["l1"].birth_at)
    await gateway.close()
    l1.cmds.clear()
    await gateway.start()
    await until(lambda: any(c["op"] == "rebirth" for c in l1.cmds), what="rebirth after restart")
    assert gateway.gw.link.lockers["l1"].online


async def _burst(lks, n: int) -> None:
    """n events per locker, published back to back and interleaved across lockers (not one PUBACK at a
    time), so the gateway reads many events of several lockers per socket read."""
    infos = []
    for _ in range(n):
        for lk in lks:
            lk.seq += 1
            body = {"v": 1, "boot": lk.boot, "seq": lk.seq, "ts": 0, "mono": lk.seq, "type": "door", "c": 1,
                    "open": lk.seq % 2 == 0}
            infos.append(lk.c.publish(f"{lk.base}/evt", json.dumps(body), qos=1))
    for info in infos:
        await asyncio.to_thread(info.wait_for_publish, 10)


async def test_a_burst_is_stored_in_order_with_its_watermark_and_few_eacks(gateway, lockers):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l2 = lockers(gateway.broker.port, "l2").connect()
    for lk in (l1, l2):
        lk.online()
        lk.birth()
    await until(lambda: gateway.gw.link.lockers["l2"].birth_at, what="births")
    # the first events of a locker take the slow path (its topic is new), the rest the batch path
    await _burst([l1, l2], 400)
    await until(lambda: l1.acked() == 400 and l2.acked() == 400, timeout=15, what="eacks of the bursts")
    evts = await gateway.outbox_rows("evt")
    assert [r.seq for r in evts if r.src == "l1"] == list(range(1, 401))
    assert [r.seq for r in evts if r.src == "l2"] == list(range(1, 401))
    # cumulative: one eack per commit, not per event; the watermark is on disk before the last eack
    assert len(l1.eacks) < 200
    # eacks go out in rounds at most every EACK_INTERVAL_S, at QoS 0
    span = l1.eack_meta[-1][0] - l1.eack_meta[0][0]
    assert len(l1.eacks) <= span / EACK_INTERVAL_S + 3, (len(l1.eacks), span)
    assert {qos for _, qos in l1.eack_meta} == {0}
    links = await gateway.gw.outbox.query(lambda c: dict(c.execute("SELECT locker, acked FROM links")))
    assert links == {"l1": 400, "l2": 400}
    assert gateway.gw.link.lockers["l1"].comps[1].door == "open"  # seq 400 said open: applied last
    assert gateway.gw.counters["evt_duplicates"] == 0 and gateway.gw.counters["seq_gaps"] == 0


async def test_back_pressure_pauses_reading_and_loses_nothing(station, lockers, tmp_path, monkeypatch):
    import gateway.lockerlink as LL
    monkeypatch.setattr(LL, "MAX_INFLIGHT_EVENTS", 10)
    monkeypatch.setattr(LL, "RESUME_INFLIGHT_EVENTS", 5)
    cfg, broker = station
    rg = RunningGateway(cfg)
    gw = await rg.start()
    try:
        l1 = lockers(broker.port, "l1").connect()
        l1.online()
        l1.birth()
        await until(lambda: gw.link.lockers["l1"].birth_at, what="birth")
        await _burst([l1], 1000)
        await until(lambda: l1.acked() == 1000, timeout=20, what="eack 1000")
        assert gw.counters["link_pauses"] > 0, "the link stopped reading while the outbox was behind"
        assert [r.seq for r in await rg.outbox_rows("evt")] == list(range(1, 1001))
        assert gw.link._client is not None and not gw.link._client.paused
    finally:
        await rg.close()


async def test_text_with_a_lone_surrogate_is_refused_and_blocks_nothing(gateway, lockers):
    """A lone surrogate (valid JSON, not storable as UTF-8 text) in a tele, a birth or an event: the wire core's
    text rule refuses each (bad_field), the event is quarantined so it still gets its eack, and every later
    message is stored."""
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth()
    link = gateway.gw.link
    await until(lambda: link.lockers["l1"].birth_at, what="birth")
    c = gateway.gw.counters
    l1.pub("tele", {"v": 1, "boot": l1.boot, "ts": 0, "mono": 5, "fw": "0.1.\ud800"})
    l1.pub("birth", {"v": 1, "boot": l1.boot, "fw": "0.1.0", "seq": 0, "ts": 0, "mono": 900, "outbox": 0,
                     "vault": 0, "note": "\udfff", "comps": [{"n": 1, "size": "S", "st": "empty", "door": "closed",
                                                              "occ": False}]})
    good1 = l1.evt("door", c=1, open=True)
    # an unknown field, which the checks ignore (forward compatibility), holds the surrogate
    bad = l1.evt("door", c=2, open=True, note="门\ud800")
    good2 = l1.evt("door", c=1, open=False)
    await until(lambda: l1.acked() == 3, what="all three events acked")
    await until(lambda: c["rejected_payloads"] == 3, what="three refusals")
    assert c["quarantined_events"] == 1
    # the next, unrelated writes go through: a tele and the events after the refused one
    l1.pub("tele", {"v": 1, "boot": l1.boot, "ts": 0, "mono": 6, "rssi": -60})
    evts = await gateway.outbox_rows("evt")
    assert [r.body for r in evts] == [good1, bad, good2], "stored in order, the refused one kept for the cloud"
    teles = await until_rows(gateway, "tele", 1)
    assert teles[0].body["rssi"] == -60
    # the refused event changed no state
    assert link.lockers["l1"].comps[2].door == "closed"
    assert link.lockers["l1"].comps[1].door == "closed"
    assert not await gateway.gw.outbox.query(lambda conn: conn.in_transaction)
    assert c["outbox_write_errors"] == 0


async def until_rows(gateway, kind: str, n: int) -> list:
    rows: list = []

    async def enough() -> bool:
        rows[:] = await gateway.outbox_rows(kind)
        return len(rows) >= n
    for _ in range(100):
        if await enough():
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{n} {kind} rows not stored")
