"""The ingest's fast paths answer exactly as the exact ones: size limits, big integers, SMS dispatch, row locks."""

from __future__ import annotations

import random
import threading
import time

import pytest
from cloudkit import STATION, STATION_KEY, evt, make_settings, register, TestClient

from cloud.app import create_app
from cloud.protocol import _compact_len, _within, decode_batch, parse_item
from cloud.errors import ItemRejected


def _value(rng: random.Random, depth: int):
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return rng.choice([0.1, 1e16, 1e-7, -2.2250738585072014e-308, 123456.789, float("inf"), 5e-324, 100.0])
    if pick == 1:
        return struct_float(rng)
    if pick == 2:
        return rng.randint(-10**18, 10**18)
    if pick == 3:
        return "".join(rng.choice('ab"\\\n\t\x01中文\u2028e.E ') for _ in range(rng.randrange(12)))
    if pick == 4:
        return rng.choice([True, False, None])
    if pick == 5:
        return 10**25  # beyond 64 bits
    if pick in (6, 7):
        return {f"k{i}": _value(rng, depth + 1) for i in range(rng.randrange(5))}
    return [_value(rng, depth + 1) for _ in range(rng.randrange(5))]


def struct_float(rng: random.Random) -> float:
    return rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)


def test_size_check_agrees_with_the_exact_length():
    rng = random.Random(7)
    for _ in range(3000):
        payload = {f"f{i}": _value(rng, 0) for i in range(rng.randrange(1, 8))}
        exact = _compact_len(payload)
        for limit in (exact - 1, exact, exact + 1, exact + 40, 512):
            assert _within(payload, limit) == (exact <= limit), (payload, limit)


def test_long_integers_in_a_batch_stay_exact_integers():
    seq = 10**20
    data = (b'{"station":"s1","batch":"b1","items":[{"src":"l1","boot":"5f0c3a9e","seq":%d,"kind":"evt",'
            b'"rx":1.5,"body":{}}]}' % seq)
    item = decode_batch(data).items[0]
    assert item["seq"] == seq and isinstance(item["seq"], int)
    with pytest.raises(ItemRejected) as info:
        parse_item(item)
    assert info.value.code == "bad_item"  # the envelope seq is out of range, as the exact parser sees it


def test_nan_in_a_batch_rejects_only_its_item():
    batch = decode_batch(b'{"station":"s1","batch":"b1","items":[{"x":NaN},{"y":1}]}')
    assert batch.items == [{"x": "<NaN>"}, {"y": 1}]


class GatedNotifier:
    """Holds the first send until released, so a second dispatch request arrives while one runs."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, phone: str, text: str, message=None) -> None:
        self.entered.set()
        assert self.release.wait(10)
        self.sent.append(phone)


def test_sms_dispatch_requested_meanwhile_is_done_by_the_running_one(pg_url):
    """(PostgreSQL: on SQLite the running dispatch holds the write lock, so nothing is queued meanwhile.)"""
    from cloud import migrate
    from cloud.counters import Counters
    from cloud.models import Notification
    from cloud.sms import DispatchGate
    from cloud.storage import make_engine, make_sessionmaker

    engine = make_engine(pg_url)
    try:
        migrate.upgrade(engine)
        factory = make_sessionmaker(engine)

        def queue(phone: str) -> None:
            with factory() as session:
                session.add(Notification(phone=phone, text="t", status="queued", attempts=0, created_at=time.time()))
                session.commit()

        queue("13800000001")
        gate, notifier, counters = DispatchGate(), GatedNotifier(), Counters()
        first = threading.Thread(target=gate.run, args=(factory, notifier, counters))
        first.start()
        assert notifier.entered.wait(10)
        queue("13800000002")
        gate.run(factory, notifier, counters)  # returns at once: the running dispatch goes round again
        assert counters.get("sms_dispatch_coalesced") == 1 and notifier.sent == []
        notifier.release.set()
        first.join(10)
        assert sorted(notifier.sent) == ["13800000001", "13800000002"]
        with factory() as session:
            assert {n.status for n in session.query(Notification).all()} == {"sent"}
    finally:
        engine.dispose()


def test_concurrent_batches_of_one_station_all_apply(pg_url):
    """Batches of one station updating the same compartments in different orders neither deadlock nor fail."""
    with TestClient(create_app(make_settings(pg_url))) as client:
        register(client, STATION, STATION_KEY, "冯家村便民店", {"l1": 6, "l2": 6})
        answers: list = []

        def sender(n: int) -> None:
            rng = random.Random(n)
            for b in range(4):
                items = []
                for i in range(60):
                    seq = 1 + n * 1000 + b * 100 + i
                    items.append(evt(seq, "door", src=rng.choice(("l1", "l2")), c=rng.randint(1, 6),
                                     open=bool(i % 2)))
                resp = client.post("/api/v1/gateway/ingest", json={"station": STATION, "batch": f"t{n}-{b}",
                                                                   "items": items},
                                   headers={"Authorization": f"Bearer {STATION_KEY}"})
                answers.append((resp.status_code, resp.json()))

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert [code for code, _ in answers] == [200] * 16
        assert sum(a["applied"] for _, a in answers) == 16 * 60
        health = client.get("/api/v1/health").json()["counters"]
        assert health.get("ingest_db_errors", 0) == 0 and health.get("ingest_slow_batches", 0) == 0
