"""The durable outbox: order, dedupe, ack deletion, restarts, bounds and a full disk."""

import asyncio
import subprocess
import sys
import textwrap

import pytest

from gateway.errors import OutboxError, OutboxFull, Unstorable
from gateway.stationdb import Outbox, Record

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def evt(seq, boot="5f0c3a9e", src="l1", pad=0):
    return Record(src=src, kind="evt", boot=boot, seq=seq,
                  body={"v": 1, "boot": boot, "seq": seq, "type": "door", "c": 1, "open": True, "pad": "x" * pad})


def tele(pad=0):
    return Record(src="l1", kind="tele", body={"v": 1, "boot": "5f0c3a9e", "up": 1, "pad": "x" * pad})


@pytest.fixture
async def box(tmp_path):
    ob = Outbox(tmp_path / "gw.db")
    await ob.open()
    yield ob
    await ob.close()


async def test_order_dedupe_and_ack_deletion(box):
    results = await asyncio.gather(*(box.append(evt(s)) for s in (1, 2, 3)))
    assert results == [True, True, True]
    assert await box.append(evt(2)) is False, "a re-sent event is stored once"
    assert await box.append(evt(2, boot="aaaaaaaa")) is True, "same seq of another boot is another event"
    parcel = Record(src="gw", kind="parcel", body={"ref": "p-1"})
    assert await box.append(parcel)
    assert parcel.boot == box.epoch and parcel.seq == 1
    batch = await box.read_batch(10)
    assert [(r.src, r.boot, r.seq) for r in batch] == [
        ("l1", "5f0c3a9e", 1), ("l1", "5f0c3a9e", 2), ("l1", "5f0c3a9e", 3), ("l1", "aaaaaaaa", 2),
        ("gw", box.epoch, 1)]
    assert batch[0].body["seq"] == 1
    assert await box.delete([r.id for r in batch[:2]]) == 2
    left = await box.read_batch(10)
    assert [r.seq for r in left] == [3, 2, 1]
    assert (await box.read_batch(2))[0].seq == 3
    assert (await box.stats())["depth"] == 3
    assert box.counters["outbox_duplicates"] == 1


async def test_group_commit_of_many_concurrent_appends(box):
    res = await asyncio.gather(*(box.append(evt(s)) for s in range(1, 1001)))
    assert all(res)
    assert [r.seq for r in await box.read_batch(2000)] == list(range(1, 1001))


async def test_epoch_and_gateway_numbering_survive_reopen(tmp_path):
    ob = Outbox(tmp_path / "gw.db")
    await ob.open()
    epoch = ob.epoch
    for _ in range(3):
        await ob.append(Record(src="gw", kind="code", body={}))
    await ob.close()
    ob = Outbox(tmp_path / "gw.db")
    await ob.open()
    try:
        r = Record(src="gw", kind="code", body={})
        await ob.append(r)
        assert ob.epoch == epoch and r.seq == 4
    finally:
        await ob.close()


def test_committed_records_survive_a_killed_process(tmp_path):
    db = tmp_path / "gw.db"
    child = textwrap.dedent(f"""
        import asyncio, os, sys
        sys.path.insert(0, {str(REPO)!r})
        from gateway.stationdb import Outbox, Record
        async def main():
            ob = Outbox({str(db)!r})
            await ob.open()
            await asyncio.gather(*(ob.append(Record(src="l1", kind="evt", boot="5f0c3a9e", seq=s, body={{"seq": s}}))
                                   for s in range(1, 51)))
            print("durable", flush=True)
            os._exit(9)  # no close, no checkpoint
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert out.returncode == 9 and "durable" in out.stdout, out.stderr

    async def check():
        ob = Outbox(db)
        await ob.open()
        try:
            assert [r.seq for r in await ob.read_batch(100)] == list(range(1, 51))
        finally:
            await ob.close()
    asyncio.run(check())


async def test_row_bound_drops_telemetry_first_and_counts(tmp_path):
    ob = Outbox(tmp_path / "gw.db", max_rows=10)
    await ob.open()
    try:
        for _ in range(8):
            await ob.append(tele())
        for s in range(1, 6):
            await ob.append(evt(s))
        rows = await ob.read_batch(100)
        assert len(rows) == 10
        assert [r.kind for r in rows].count("evt") == 5, "no event dropped while telemetry is left"
        assert ob.counters["dropped_tele"] == 3
        assert ob.counters["dropped_events"] == 0
        await ob.append(Record(src="l1", kind="birth", body={"v": 1}))
        for s in range(6, 14):
            await ob.append(evt(s))
        rows = await ob.read_batch(100)
        assert len(rows) == 10 and all(r.kind == "evt" for r in rows)
        assert ob.counters["dropped_tele"] == 8 and ob.counters["dropped_state"] == 1
        # only when nothing else is left do the oldest events go, and each one is counted
        assert ob.counters["dropped_events"] == 3
        assert [r.seq for r in rows] == list(range(4, 14))
    finally:
        await ob.close()


async def schema_pages(tmp_path) -> int:
    """The pages an empty station database takes (its tables and indexes)."""
    empty = Outbox(tmp_path / "empty.db")
    await empty.open()
    try:
        return await empty.run(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        await empty.close()


async def test_full_disk_keeps_events_in_memory_until_space_frees(tmp_path):
    # 16 pages for records beyond the empty database's own
    ob = Outbox(tmp_path / "gw.db", max_pages=await schema_pages(tmp_path) + 16, retry_s=0.05, mem_queue_max=5)
    await ob.open()
    try:
        # fill the database with telemetry: a full disk makes room by dropping it, so events still go in
        for _ in range(200):
            await ob.append(tele(pad=300))
        assert ob.counters["dropped_tele"] > 0, "database never got full; test is not testing anything"
        tele_drops = ob.counters["dropped_tele"]
        seq = 0
        while ob.counters["disk_full"] == 0 and seq < 500:
            seq += 1
            stored = ob.submit(evt(seq, pad=300))
            await asyncio.wait([stored], timeout=1)
        assert ob.counters["disk_full"] > 0
        assert not stored.done(), "the event the database refused must wait, not be dropped or acked"
        assert ob.counters["dropped_events"] == 0 and ob.counters["dropped_tele"] >= tele_drops
        waiting = [stored] + [ob.submit(evt(s, pad=300)) for s in range(seq + 1, seq + 5)]
        with pytest.raises(OutboxFull):
            ob.submit(evt(seq + 5))
        assert ob.counters["outbox_refused"] == 1
        health = await ob.stats()
        assert health["pending"] == 5 and ob.disk_full
        # the cloud acks what it holds: space frees and the waiting events become durable in order
        rows = await ob.read_batch(1000)
        await ob.delete([r.id for r in rows])
        assert await asyncio.wait_for(asyncio.gather(*waiting), 5) == [True] * 5
        assert not ob.disk_full
        assert [r.seq for r in await ob.read_batch(100)] == list(range(seq, seq + 5))
    finally:
        await ob.close()


async def test_batches_in_one_transaction_share_a_before_commit_write(box):
    """Each batch's stage sees its own results; a write registered by several stages runs once, in the
    transaction, after all of them; what the stages return reaches each batch's future."""
    await box.run(lambda conn: conn.execute("CREATE TABLE IF NOT EXISTS marks (n INTEGER)"))
    staged, writes = [], []

    def stage(tag):
        def fn(recs, stored):
            staged.append((tag, stored))
            box.before_commit("marks", lambda conn: writes.append(conn.execute(
                "INSERT INTO marks VALUES (?)", (len(staged),)).rowcount))
            return tag, lambda: None
        return fn

    await box.append(evt(2))
    # queued before the writer wakes: one group, one transaction
    futs = [box.submit_many([evt(1), evt(2)], stage("a")), box.submit_many([evt(3)], stage("b"))]
    results = await asyncio.gather(*futs)
    assert results == [([True, False], "a"), ([True], "b")], "the re-sent seq 2 is found, the batch kept"
    assert staged == [("a", [True, False]), ("b", [True])]
    assert writes == [1], "the before-commit write ran once for the whole transaction"
    assert await box.query(lambda conn: conn.execute("SELECT n FROM marks").fetchall()) == [(2,)]
    assert [r.seq for r in await box.read_batch(10)] == [2, 1, 3]


async def test_a_failing_before_commit_write_stores_nothing_of_its_transaction(box):
    def stage(recs, stored):
        box.before_commit("bad", lambda conn: conn.execute("INSERT INTO no_such_table VALUES (1)"))
        return None, lambda: None

    with pytest.raises(Exception, match="no_such_table"):
        await box.submit_many([evt(1), evt(2)], stage)
    assert await box.read_batch(10) == [], "the events were not stored, so they were not acked either"
    assert await box.submit_many([evt(1), evt(2)]) == [True, True], "the lockers' re-send is stored"


async def test_delete_takes_exactly_the_acked_ids_whether_a_range_or_not(box):
    for s in range(1, 11):
        await box.append(evt(s))
    rows = await box.read_batch(10)
    ids = [r.id for r in rows]
    assert await box.delete(ids[2:5]) == 3, "a contiguous run"
    assert await box.delete([ids[0], ids[6], ids[9]]) == 3, "scattered ids"
    assert await box.delete(ids[2:5]) == 0, "deleting again deletes nothing"
    assert [r.seq for r in await box.read_batch(10)] == [2, 6, 8, 9]
    assert (await box.stats())["depth"] == 4


async def test_uplink_reads_see_each_commit(box):
    """Reads run on a connection of their own: each sees every commit made before it started."""
    for s in range(1, 4):
        await box.append(evt(s))
        assert [r.seq for r in await box.read_batch(10)] == list(range(1, s + 1))
    await box.delete([r.id for r in await box.read_batch(1)])
    assert [r.seq for r in await box.read_batch(10)] == [2, 3]
    assert (await box.stats())["depth"] == 2


async def test_a_failing_write_never_leaves_the_transaction_open(box):
    """Whatever fails inside a group (a value SQLite cannot bind, a bug in a before-commit write), the group is
    rolled back and the next, unrelated write succeeds."""
    def stage(recs, stored):
        # not an sqlite3.Error: text with a lone surrogate, which SQLite cannot take as UTF-8
        box.before_commit("bad", lambda conn: conn.execute("CREATE TABLE IF NOT EXISTS t (x TEXT)") and
                          conn.execute("INSERT INTO t VALUES (?)", ("\ud800",)))
        return None, lambda: None

    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises, the transaction must not stay open
        await box.submit_many([evt(1)], stage)
    assert not await box.query(lambda conn: conn.in_transaction), "no transaction left open"
    assert await box.append(evt(1)) is True, "the next write, unrelated, is stored"
    assert await box.run(lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)
    assert [r.seq for r in await box.read_batch(10)] == [1]
    assert box.counters["outbox_write_errors"] == 1


async def test_a_record_sqlite_cannot_take_is_stored_escaped_and_holds_nothing_back(box):
    """A tele with a lone surrogate is stored as the same JSON value in escaped text; the records queued in the
    same transaction are stored too."""
    bad = Record(src="l1", kind="tele", body={"v": 1, "boot": "5f0c3a9e", "fw": "0.\ud800"})
    # queued before the writer wakes: one group, one transaction
    results = await asyncio.gather(box.submit(evt(1)), box.submit(bad), box.submit(tele()),
                                   box.submit_many([evt(2), evt(3)]))
    assert results == [True, True, True, [True, True]]
    rows = await box.read_batch(10)
    assert [r.kind for r in rows] == ["evt", "tele", "tele", "evt", "evt"]
    assert rows[1].body["fw"] == "0.\ud800", "the same value comes back"
    raw = await box.read_batch(10, decode=False)
    assert "\\ud800" in raw[1].raw
    assert box.counters["outbox_escaped"] == 1
    assert await box.append(evt(4)) is True


async def test_a_batch_holding_an_unencodable_record_is_stored_whole(box):
    """In a many-record insert, the record with a lone surrogate is stored escaped, in its place."""
    recs = [evt(1), evt(2), evt(3)]
    recs[1].body["pad"] = "\udfff"
    assert await box.submit_many(recs) == [True, True, True]
    assert [r.body["pad"] for r in await box.read_batch(10)] == ["", "\udfff", ""]


async def test_a_body_that_cannot_be_written_is_refused_alone(box):
    """A body nested too deep for the JSON writer fails its own record only, and takes no gateway seq."""
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    bad = Record(src="l1", kind="tele", body={"v": 1, "x": deep})
    good = Record(src="gw", kind="parcel", body={"ref": "p-1"})
    res = await asyncio.gather(box.submit(bad), box.submit(good), return_exceptions=True)
    assert isinstance(res[0], OutboxError) and "cannot be written" in str(res[0])
    assert res[1] is True and good.seq == 1, "the numbering skipped nothing"
    assert box.counters["outbox_unwritable"] == 1


async def test_a_run_that_writes_unstorable_text_fails_alone_with_a_clear_error(box):
    await box.run(lambda conn: conn.execute("CREATE TABLE IF NOT EXISTS notes (x TEXT)"))
    with pytest.raises(Unstorable, match="lone surrogate"):
        await box.run(lambda conn: conn.execute("INSERT INTO notes VALUES (?)", ("门\ud800",)))
    assert box.counters["outbox_unstorable"] == 1
    await box.run(lambda conn: conn.execute("INSERT INTO notes VALUES (?)", ("门",)))
    assert await box.query(lambda conn: conn.execute("SELECT x FROM notes").fetchall()) == [("门",)]
