"""The ledger against the cloud's real schema (SQLite and PostgreSQL): lost, duplicated, late, unexpected."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, inspect, text

from cloud.models import Base
from simulator.ledger import Ledger, Window

T0 = 1_800_000_000.0


def _cloud(url: str):
    eng = create_engine(url)
    Base.metadata.create_all(eng)
    if eng.dialect.name == "postgresql":
        # the ledger reads only events and parcel timelines: rows here need no stations or parcels behind them
        insp = inspect(eng)
        with eng.begin() as c:
            for table in ("events", "parcel_events"):
                for fk in insp.get_foreign_keys(table):
                    c.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{fk["name"]}"'))
    _engines.append(eng)
    return eng


_engines: list = []


@pytest.fixture(autouse=True)
def _dispose():
    yield
    while _engines:
        _engines.pop().dispose()


@contextmanager
def _begin(eng):
    with eng.begin() as conn:
        yield conn


def _held(eng, rows):
    with _begin(eng) as c:
        for st, src, boot, seq, month in rows:
            c.execute(text("INSERT INTO events (month, station_id, src, boot, seq, kind, type, ts, rx, body) "
                           "VALUES (:m, :st, :src, :boot, :seq, 'evt', 'door', 0, 0, '{}')"),
                      {"m": month, "st": st, "src": src, "boot": boot, "seq": seq})


def _produced(tmp_path, locker, events):
    p = tmp_path / f"{locker}.jsonl"
    with p.open("a") as f:
        for boot, seq, at, typ in events:
            f.write(json.dumps({"boot": boot, "seq": seq, "type": typ, "at": at}) + "\n")
    return p


def test_every_event_in_the_cloud_on_time_is_a_clean_ledger(tmp_path, db_url):
    eng = _cloud(db_url)
    files = {"l1": ("s1", _produced(tmp_path, "l1", [("aa", 1, T0, "door"), ("aa", 2, T0 + 1, "pickup")]))}
    led = Ledger(db_url, late_s=30)
    led.read_producers(files)
    assert led.pending() == 2
    _held(eng, [("s1", "l1", "aa", 1, 202611), ("s1", "l1", "aa", 2, 202611)])
    assert led.poll_cloud(now=T0 + 5) == 2
    assert led.counts() == {"events_sent": 2, "events_in_cloud": 2, "lost": 0, "duplicates": 0, "late": 0,
                            "delayed_by_faults": 0, "unexpected": 0}
    led.close()


def test_lost_late_duplicated_and_unexpected_events_are_each_counted(tmp_path, db_url):
    eng = _cloud(db_url)
    path = _produced(tmp_path, "l1", [("aa", 1, T0, "door"), ("aa", 2, T0, "door"), ("aa", 3, T0, "door")])
    led = Ledger(db_url, late_s=30)
    led.read_producers({"l1": ("s1", path)})
    _held(eng, [("s1", "l1", "aa", 1, 202611)])
    led.poll_cloud(now=T0 + 2)
    # seq 2 arrives 100 s late, twice (a replay in another month partition); a forged event nobody produced
    _held(eng, [("s1", "l1", "aa", 2, 202611), ("s1", "l1", "aa", 2, 202612), ("s1", "l1", "ff", 1, 202611)])
    led.poll_cloud(now=T0 + 100)
    with _begin(eng) as c:  # a parcel picked up twice is a transition applied twice
        for status in ("deposited", "picked_up", "picked_up"):
            c.execute(text("INSERT INTO parcel_events (parcel_id, status, at, source) VALUES (1, :s, 0, 'x')"),
                      {"s": status})
    got = led.counts()
    assert got["lost"] == 1 and got["late"] == 1 and got["unexpected"] == 1
    assert got["duplicates"] == 1 + 2  # one key held twice; picked_up entered right after itself, and twice
    led.close()


def test_an_event_held_back_by_a_scheduled_outage_is_delayed_not_late(tmp_path, db_url):
    eng = _cloud(db_url)
    path = _produced(tmp_path, "l1", [("aa", 1, T0 + 10, "pickup"), ("aa", 2, T0 + 10, "pickup")])
    led = Ledger(db_url, late_s=30)
    led.read_producers({"l1": ("s1", path), "l9": ("s2", _produced(tmp_path, "l9", [("bb", 1, T0 + 10, "door")]))})
    _held(eng, [("s1", "l1", "aa", 1, 202611), ("s1", "l1", "aa", 2, 202611), ("s2", "l9", "bb", 1, 202611)])
    led.poll_cloud(now=T0 + 500)
    outage = Window("uplink_down", {"s1"}, T0, T0 + 400)
    got = led.counts([outage], grace_s=20)
    assert got["delayed_by_faults"] == 2 and got["late"] == 1  # s2 had no outage: its event is late
    (c,) = led.catch_up([outage])
    assert c["events_held"] == 2 and c["arrived"] == 2 and c["catch_up_s"] == 100
    led.close()


def test_a_torn_last_line_is_read_once_complete(tmp_path, db_url):
    _cloud(db_url)
    p = tmp_path / "l1.jsonl"
    p.write_text(json.dumps({"boot": "aa", "seq": 1, "at": T0}) + "\n" + '{"boot": "aa", "se')
    led = Ledger(db_url)
    led.read_producers({"l1": ("s1", p)})
    assert len(led.produced) == 1
    with p.open("a") as f:
        f.write('q": 2, "at": 1}\n')
    led.read_producers({"l1": ("s1", p)})
    assert len(led.produced) == 2 and led.bad_lines == 0
    led.close()
