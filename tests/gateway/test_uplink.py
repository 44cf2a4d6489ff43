"""Uplink to a real HTTP server implementing §5.1's dedupe, through outages and replays."""

import asyncio
import contextlib

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request

from gateway.config import CloudConfig
from gateway.counters import Counters
from gateway.stationdb import Outbox, Record
from gwkit import free_port, until

API_KEY = "station-key-demo-01"


class Sink:
    """A small cloud: dedupes by (station, src, boot, seq), counts every application."""

    def __init__(self):
        self.applied: list[tuple] = []
        self.held: set[tuple] = set()
        self.duplicates = 0
        self.fail_after_apply = 0
        self.requests = 0
        self.app = FastAPI()

        @self.app.post("/api/v1/gateway/ingest")
        async def ingest(request: Request, authorization: str = Header("")):
            self.requests += 1
            if authorization != f"Bearer {API_KEY}":
                raise HTTPException(403, "wrong key")
            batch = await request.json()
            results = []
            for it in batch["items"]:
                key = (batch["station"], it["src"], it["boot"], it["seq"])
                if it["body"].get("poison"):
                    status = "rejected"
                elif key in self.held:
                    status = "duplicate"
                    self.duplicates += 1
                else:
                    self.held.add(key)
                    self.applied.append(key)
                    status = "applied"
                results.append({"src": it["src"], "boot": it["boot"], "seq": it["seq"], "status": status})
            if self.fail_after_apply:
                self.fail_after_apply -= 1
                raise HTTPException(502, "bad gateway after commit")
            return {"batch": batch["batch"], "results": results,
                    **{s: sum(r["status"] == s for r in results) for s in ("applied", "duplicate", "rejected")}}


@contextlib.asynccontextmanager
async def serve(app, port):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, what="sink started")
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def box(tmp_path):
    ob = Outbox(tmp_path / "gw.db")
    await ob.open()
    yield ob
    await ob.close()


def cloud_cfg(port, **kw):
    return CloudConfig(url=f"http://127.0.0.1:{port}", api_key=kw.pop("api_key", API_KEY), poll_s=0.05,
                       backoff_min_s=0.05, backoff_max_s=0.2, timeout_s=2, **kw)


@contextlib.asynccontextmanager
async def running(uplink):
    task = asyncio.create_task(uplink.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def evt(seq, src="l1", boot="5f0c3a9e", **body):
    return Record(src=src, kind="evt", boot=boot, seq=seq, body={"v": 1, "boot": boot, "seq": seq, **body})


async def test_cloud_down_then_up_drains_in_order_each_once(box):
    from gateway.uplink import Uplink
    port = free_port()
    counters = Counters()
    up = Uplink("demo-01", cloud_cfg(port, batch_max=200), box, counters)
    async with running(up):
        for s in range(1, 501):
            await box.append(evt(s))
        await box.append(Record(src="gw", kind="parcel", body={"ref": "p-1"}))
        await until(lambda: counters["uplink_failures"] >= 2, what="failed attempts")
        assert not up.up and up.last_error
        st = await box.stats()
        assert st["depth"] == 501 and st["oldest_rx"] is not None
        sink = Sink()
        async with serve(sink.app, port):
            await until(lambda: counters["uplink_applied"] == 501, what="drained")
            assert up.up
            assert (await box.stats())["depth"] == 0
            # recorded while the link is up: forwarded promptly too
            await box.append(evt(501))
            await until(lambda: counters["uplink_applied"] == 502)
    assert sink.applied[:500] == [("demo-01", "l1", "5f0c3a9e", s) for s in range(1, 501)]
    assert sink.applied[500] == ("demo-01", "gw", box.epoch, 1)
    assert len(set(sink.applied)) == len(sink.applied) and sink.duplicates == 0
    assert sink.requests == 4, "500 + 1 items in batches of 200, then one more"


async def test_5xx_after_apply_is_replayed_and_nothing_applied_twice(box):
    from gateway.uplink import Uplink
    port = free_port()
    counters = Counters()
    sink = Sink()
    sink.fail_after_apply = 2
    async with serve(sink.app, port):
        up = Uplink("demo-01", cloud_cfg(port), box, counters)
        for s in range(1, 51):
            await box.append(evt(s))
        async with running(up):
            await until(lambda: up.up, what="uplink up after replays")
            await until(lambda: counters["uplink_duplicate"] == 50)
    assert sink.applied == [("demo-01", "l1", "5f0c3a9e", s) for s in range(1, 51)]
    assert sink.duplicates == 100, "two replays of the whole batch, each answered duplicate"
    assert counters["uplink_failures"] == 2 and (await box.stats())["depth"] == 0


async def test_rejected_items_are_deleted_and_a_wrong_key_keeps_everything(box):
    from gateway.uplink import Uplink
    port = free_port()
    sink = Sink()
    async with serve(sink.app, port):
        await box.append(evt(1))
        await box.append(evt(2, poison=True))
        bad = Uplink("demo-01", cloud_cfg(port, api_key="some-other-key"), box, Counters())
        async with running(bad):
            await until(lambda: bad.last_error and "403" in bad.last_error, what="403")
        assert (await box.stats())["depth"] == 2 and sink.applied == []
        counters = Counters()
        up = Uplink("demo-01", cloud_cfg(port), box, counters)
        async with running(up):
            await until(lambda: counters["uplink_rejected"] == 1 and counters["uplink_applied"] == 1)
        assert (await box.stats())["depth"] == 0


def real_cloud(tmp_path):
    """The cloud app on a fresh SQLite database with station demo-01 (locker l1 of two compartments)."""
    cloud_app = pytest.importorskip("cloud.app")
    try:
        from cloud import migrate
        from cloud.seed import seed_station
        from cloud.settings import Settings
        from cloud.storage import make_engine, make_sessionmaker
    except ImportError as exc:
        pytest.skip(f"cloud package incomplete: {exc}")
    url = f"sqlite:///{tmp_path}/cloud.db"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with make_sessionmaker(engine)() as session:
        seed_station(session, station_id="demo-01", name="示例村服务站", api_key=API_KEY,
                     lockers=[{"id": "l1", "comps": [{"n": 1, "size": "S"}, {"n": 2, "size": "M"}]}])
    engine.dispose()
    return cloud_app.create_app(Settings(database_url=url, admin_token="uplink-test-admin-9k2Qx7", migrate_on_start=False))


async def test_forward_into_the_cloud_app(box, tmp_path):
    """When the cloud package is present, the gateway's items go through its real ingest route."""
    from gateway.uplink import Uplink
    app = real_cloud(tmp_path)
    port = free_port()
    boot = "5f0c3a9e"
    await box.append(Record(src="l1", kind="birth", body={
        "v": 1, "boot": boot, "fw": "0.1.0", "seq": 0, "ts": 0, "mono": 900, "outbox": 0, "vault": 0,
        "comps": [{"n": 1, "size": "S", "st": "empty", "door": "closed", "occ": False},
                  {"n": 2, "size": "M", "st": "empty", "door": "closed", "occ": False}]}))
    await box.append(Record(src="gw", kind="parcel", body={"ref": "p-0123456789ab", "waybill": "SF1",
                                                           "carrier": "顺丰", "phone": "13800000001",
                                                           "locker": "l1", "c": 2, "size": "M"}))
    sent = Record(src="l1", kind="evt", boot=boot, seq=1, body={
        "v": 1, "boot": boot, "seq": 1, "ts": 0, "mono": 1000, "type": "deposit", "c": 2, "ref": "p-0123456789ab"})
    await box.append(sent)
    counters = Counters()
    async with serve(app, port):
        up = Uplink("demo-01", cloud_cfg(port), box, counters)
        async with running(up):
            await until(lambda: counters["uplink_applied"] + counters["uplink_rejected"] == 3, timeout=15,
                        what="cloud settled all items")
        assert counters["uplink_rejected"] == 0, "the cloud refused what the gateway sent"
        # replaying the same item (a replay carries the same rx) changes nothing
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            items = [sent.item()]
            r = await http.post("/api/v1/gateway/ingest", json={"station": "demo-01", "batch": "x", "items": items})
            assert r.status_code == 200 and r.json()["results"][0]["status"] == "duplicate"


class RefusingSink(Sink):
    """A cloud that refuses, with 422, any batch holding an item it cannot read (here: marked "deep")."""

    def __init__(self, *, refuse_all: bool = False):
        super().__init__()
        self.refused = 0
        inner = self.app

        @inner.middleware("http")
        async def refuse(request: Request, call_next):
            body = await request.body()
            if refuse_all or b'"deep":true' in body:
                self.refused += 1
                from fastapi.responses import JSONResponse
                return JSONResponse({"detail": "batch nests deeper than the cloud reads"}, status_code=422)
            return await call_next(request)


async def test_a_batch_refused_whole_is_narrowed_down_and_its_bad_record_set_aside(box):
    """One record that makes the cloud refuse every batch holding it cannot hold back the station's uplink:
    batches are halved until it is sent alone, and then it is set aside, counted, kept in the database."""
    from gateway.uplink import Uplink
    port = free_port()
    counters = Counters()
    sink = RefusingSink()
    for s in range(1, 41):
        await box.append(evt(s, deep=s == 23))
    async with serve(sink.app, port):
        up = Uplink("demo-01", cloud_cfg(port, batch_max=16), box, counters)
        async with running(up):
            await until(lambda: counters["uplink_applied"] == 39, what="every good record applied")
            await box.append(evt(41))
            await until(lambda: counters["uplink_applied"] == 40, what="later records flow at full size")
    assert sink.applied == [("demo-01", "l1", "5f0c3a9e", s) for s in range(1, 42) if s != 23], "in order, once"
    assert counters["uplink_refused_items"] == 1 and counters["uplink_batches_narrowed"] >= 1
    kept = await box.query(lambda conn: conn.execute(
        "SELECT src, seq, status, reason FROM uplink_refused").fetchall())
    assert kept == [("l1", 23, 422, "HTTP 422: " + '{"detail":"batch nests deeper than the cloud reads"}')]
    assert (await box.stats())["depth"] == 0


async def test_a_cloud_refusing_every_batch_sets_nothing_aside(box):
    """If even an empty batch is refused, the fault is not a record's: everything stays in the outbox."""
    from gateway.uplink import Uplink
    port = free_port()
    counters = Counters()
    sink = RefusingSink(refuse_all=True)
    for s in range(1, 5):
        await box.append(evt(s))
    async with serve(sink.app, port):
        up = Uplink("demo-01", cloud_cfg(port), box, counters)
        async with running(up):
            await until(lambda: counters["uplink_failures"] >= 3, what="refused while narrowed to one record")
    assert (await box.stats())["depth"] == 4 and counters["uplink_refused_items"] == 0
    assert not up.up and "422" in up.last_error


async def test_a_record_the_real_cloud_refuses_in_any_batch_is_set_aside(box, tmp_path):
    """A stored record that makes the cloud refuse the whole batch (NaN sends it to the exact parser, which a
    nesting of 1,100 levels stops: 400) is narrowed down to and set aside; the events around it arrive."""
    from gateway.uplink import Uplink
    app = real_cloud(tmp_path)
    port = free_port()
    boot = "5f0c3a9e"
    for s in range(1, 4):
        await box.append(Record(src="l1", kind="evt", boot=boot, seq=s, body={
            "v": 1, "boot": boot, "seq": s, "ts": 0, "mono": 1000 + s, "type": "door", "c": 1, "open": s != 2}))
        if s == 2:
            await box.append(Record(src="l1", kind="tele", body=None, boot="a1b2c3d4", seq=1, raw=(
                '{"v":1,"boot":"5f0c3a9e","ts":0,"mono":5,"temp":NaN,"x":' + "[" * 1100 + "]" * 1100 + "}")))
    counters = Counters()
    async with serve(app, port):
        up = Uplink("demo-01", cloud_cfg(port), box, counters)
        async with running(up):
            await until(lambda: counters["uplink_applied"] == 3 and counters["uplink_refused_items"] == 1,
                        timeout=15, what="good events applied, the bad record set aside")
    assert (await box.stats())["depth"] == 0
    kept = await box.query(lambda conn: conn.execute("SELECT kind, seq, status FROM uplink_refused").fetchall())
    assert kept == [("tele", 1, 400)]
