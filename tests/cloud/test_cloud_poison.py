"""No poison item: whatever one item holds, the batch is answered item by item and the rest is applied."""

from __future__ import annotations

import json

from cloudkit import BOOT, STATION, STATION_KEY, birth, code_record, empty_comps, evt, parcel_record
from sqlalchemy import select

from cloud.models import DeadLetter, Event


def post(cloud, raw: bytes):
    return cloud.client.post("/api/v1/gateway/ingest", content=raw,
                             headers={"Authorization": f"Bearer {STATION_KEY}", "Content-Type": "application/json"})


def batch_bytes(items: list, batch: str = "poison-1") -> bytes:
    """The batch as JSON text; json.dumps writes a lone surrogate as the escape \\ud800, as a locker's JSON would."""
    return json.dumps({"station": STATION, "batch": batch, "items": items}).encode()


def dead_letters(cloud) -> list[DeadLetter]:
    with cloud.client.app.state.sessionmaker() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def ledger_seqs(cloud) -> list[int]:
    with cloud.client.app.state.sessionmaker() as session:
        return sorted(session.scalars(select(Event.seq).where(Event.kind == "evt")))


def test_lone_surrogate_rejects_only_its_item(cloud):
    """The poisoned event gets a per-item answer and a dead letter; a re-send is answered the same, never 500."""
    items = [evt(1, "door", c=1, open=True), evt(2, "door", c=1, open=False), evt(3, "alarm", kind="tamper"),
             evt(4, "door", c=2, open=True)]
    items[1]["body"]["note"] = "门\ud800"
    items[2]["body"]["kind"] = "\udfff"
    raw = batch_bytes(items)
    for attempt in (1, 2):
        resp = post(cloud, raw)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        statuses = [r["status"] for r in body["results"]]
        if attempt == 1:
            assert statuses == ["applied", "rejected", "rejected", "applied"]
        else:
            assert statuses == ["duplicate", "rejected", "rejected", "duplicate"]
        # the gateway settles each item by its key: the rejected ones carry theirs
        assert [(r["src"], r["boot"], r["seq"]) for r in body["results"]] == [("l1", BOOT, n) for n in (1, 2, 3, 4)]
        assert body["results"][1]["error"].startswith("bad_field")
    assert ledger_seqs(cloud) == [1, 4]
    dead = dead_letters(cloud)
    assert len(dead) == 2, "a replayed bad item is kept once"
    # kept readable: the item as text, the surrogate written as an escape
    kept = json.dumps(dead[0].raw)
    assert "\\\\ud800" in kept or "\\ud800" in kept
    assert cloud.counters()["ingest_rejected"] == 4
    # the locker's compartment took the good events
    station = next(s for s in cloud.admin_get("/api/v1/stations") if s["id"] == STATION)
    comps = {c["n"]: c for c in next(lk for lk in station["lockers"] if lk["id"] == "l1")["compartments"]}
    assert comps[2]["door"] == "open"


def test_lone_surrogate_in_keys_and_records(cloud):
    """A surrogate in a parcel ref (looked up before any effect), a record's field or an item's src."""
    items = [parcel_record(1, "p-good", c=2), birth(0, empty_comps(6), item_seq=0),
             evt(1, "deposit", c=2, ref="p-good"), evt(2, "deposit", c=3, ref="p-\ud800"),
             parcel_record(2, "p-\udbff", c=4), code_record(3, "p-good", "482913"),
             {"src": "l\ud800", "boot": BOOT, "seq": 9, "kind": "evt", "rx": 1.0, "body": {}}]
    resp = post(cloud, batch_bytes(items))
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["applied", "applied", "applied", "rejected", "rejected", "applied",
                                              "rejected"]
    # a src that is not text is answered as unreadable rather than echoed
    assert (results[6]["src"], results[6]["seq"]) == (None, None)
    assert cloud.admin_get("/api/v1/parcels/p-good")["status"] == "notified"
    assert len(dead_letters(cloud)) == 3


def test_lone_surrogate_in_telemetry_and_birth(cloud):
    items = [birth(0, empty_comps(6), item_seq=0), evt(1, "door", c=1, open=True)]
    tele = {"src": "l1", "boot": "a1b2c3d4", "seq": 5, "kind": "tele", "rx": 1764355262.0,
            "body": {"v": 1, "boot": BOOT, "ts": 0, "mono": 1, "fw": "0.1.\ud800"}}
    bad_birth = birth(0, empty_comps(6), item_seq=6)
    bad_birth["body"]["comps"][0]["ref"] = "\ud800"
    resp = post(cloud, batch_bytes([*items, tele, bad_birth, evt(2, "door", c=1, open=False)]))
    assert resp.status_code == 200, resp.text
    assert [r["status"] for r in resp.json()["results"]] == ["applied", "applied", "rejected", "rejected", "applied"]
    assert ledger_seqs(cloud) == [1, 2]


def test_deep_nesting_in_an_item_is_rejected_per_item(cloud):
    """An item nested deeper than the JSON writer goes is rejected on its own, and still dead-lettered."""
    items = [evt(1, "door", c=1, open=True), evt(2, "door", c=1, open=False), evt(3, "door", c=1, open=True)]
    items[1]["body"]["x"] = "DEEP"
    raw = batch_bytes(items).replace(b'"DEEP"', b"[" * 990 + b"]" * 990)
    resp = post(cloud, raw)
    assert resp.status_code == 200, resp.text
    assert [r["status"] for r in resp.json()["results"]] == ["applied", "rejected", "applied"]
    dead = dead_letters(cloud)
    assert len(dead) == 1
    assert "…" in json.dumps(dead[0].raw, ensure_ascii=False), "kept down to a bounded depth"
    assert cloud.counters()["ingest_unusable_items"] >= 1


def test_deep_items_answered_per_item(cloud):
    """An item that is itself 1,000 arrays deep (within the fast parser's reach) is answered bad_item, next to a good one."""
    good = json.dumps(evt(1, "door", c=1, open=True))
    raw = ('{"station":"%s","batch":"deep-1","items":[%s,%s]}' % (STATION, "[" * 1000 + "]" * 1000, good)).encode()
    resp = post(cloud, raw)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "applied"]
    assert results[0]["error"].startswith("bad_item") and results[0]["src"] is None


def test_deep_batch_that_only_the_exact_parser_reads_is_a_400(cloud):
    """NaN sends a batch to the stdlib parser, which stops at Python's recursion limit: 400, not 500."""
    raw = ('{"station":"%s","batch":"deep-2","items":[%s,{"x":NaN}]}' % (STATION, "[" * 1100 + "]" * 1100)).encode()
    resp = post(cloud, raw)
    assert resp.status_code == 400, resp.text
    assert "deeper" in resp.json()["detail"]
    assert cloud.counters()["ingest_batches_refused"] == 1


def test_a_lone_surrogate_in_a_checked_request_is_a_422_not_a_500(cloud):
    """The request checks refuse it, and their answer, which echoes the input, is written with it escaped."""
    resp = cloud.client.post("/api/v1/gateway/couriers/verify", content=b'{"phone":"138\\ud800","pin":"1234"}',
                             headers={"Authorization": f"Bearer {STATION_KEY}", "Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "phone"]


def test_a_database_that_is_busy_is_a_503_and_no_dead_letter(pg_url):
    """A lock wait that times out says nothing about the data: the batch is answered 503 (sent again), and no
    item of it is rejected or kept as a dead letter."""
    import time

    import psycopg
    from cloudkit import Cloud, TestClient, make_settings, register

    from cloud.app import create_app
    from cloud.storage import PG_OPTIONS

    settings = make_settings(pg_url, pg_options=f"{PG_OPTIONS} -c lock_timeout=300")
    with TestClient(create_app(settings)) as client:
        register(client, STATION, STATION_KEY, "冯家村便民店", {"l1": 6})
        cloud = Cloud(client=client, settings=settings)
        deadline = time.monotonic() + 15
        while not cloud.counters().get("sweeps") and time.monotonic() < deadline:
            time.sleep(0.02)
        items = [evt(1, "door", c=1, open=True), evt(2, "alarm", kind="forced_open")]
        with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as other:
            # only the alarm's insert waits, in the batch pass and again item by item
            other.execute("LOCK TABLE alarms IN ACCESS EXCLUSIVE MODE")
            resp = cloud.ingest(items, batch="busy-1")
            assert resp.status_code == 503, resp.text
        resp = cloud.ingest(items, batch="busy-1")
        assert resp.status_code == 200, resp.text
        assert [r["status"] for r in resp.json()["results"]] == ["applied", "applied"]
        assert dead_letters(cloud) == []
        assert cloud.counters()["ingest_db_errors"] == 1
