"""The cloud's couriers and agents at the terminal: the cloud's list decides its own ids (c<n>, a<n>), hand-written
users stay, a retired person's sessions end, and the cached list comes back from the station database."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from gwkit import COURIER, COURIER_PIN, make_config

from gateway.config import TerminalUser
from gateway.counters import Counters
from gateway.pins import Sessions
from gateway.staff import StaffSync
from gateway.stationdb import Outbox
from jincun.pins import hash_pin

PIN = "482913"


def _user(uid: str, pin: str = PIN, role: str = "courier") -> TerminalUser:
    return TerminalUser(id=uid, name=f"name-{uid}", role=role, carrier="ZTO" if role == "courier" else "",
                        pin_hash=hash_pin(pin, iterations=1000))


async def test_the_cloud_list_replaces_its_own_ids_and_ends_retired_sessions(tmp_path):
    cfg = make_config(tmp_path, top={"terminal": {"users": [COURIER, _user("c7").model_dump()]}})
    sessions = Sessions(cfg.terminal, Counters())
    # before any list from the cloud, station.json's c7 (written at enrollment) may log in
    tok7, _ = await sessions.login("c7", PIN, "10.0.0.2")
    desk, _ = await sessions.login(COURIER["id"], COURIER_PIN, "10.0.0.2")

    agent = _user("a3", role="agent")
    gone = sessions.set_synced([_user("c8"), agent])
    assert gone == {"c7"}, "c7 is no longer listed by the cloud: retired"
    assert set(sessions.users) == {COURIER["id"], "c8", "a3"}
    with pytest.raises(HTTPException) as exc:
        sessions.user(tok7)
    assert exc.value.status_code == 401
    assert sessions.user(desk).id == COURIER["id"], "a hand-written user keeps their session"
    with pytest.raises(HTTPException):
        await sessions.login("c7", PIN, "10.0.0.3")
    tok8, u8 = await sessions.login("c8", PIN, "10.0.0.3")
    assert u8.carrier == "ZTO"

    # a changed PIN ends that person's sessions too; the others keep theirs
    assert sessions.set_synced([_user("c8", "999999"), agent]) == {"c8"}
    with pytest.raises(HTTPException):
        sessions.user(tok8)
    # a list naming an id outside the cloud's own cannot touch a hand-written user
    sessions.set_synced([_user(COURIER["id"], "000000")])
    assert sessions.users[COURIER["id"]].pin_hash == COURIER["pin_hash"]


async def test_the_cached_list_survives_a_restart(tmp_path):
    cfg = make_config(tmp_path)
    counters = Counters()
    outbox = Outbox(cfg.gateway.db, counters)
    await outbox.open()
    try:
        sync = StaffSync(cfg, outbox, Sessions(cfg.terminal, counters), counters)
        assert await sync.load() == 0 and sync.synced_at is None
        # the answer as the cloud gives it; a malformed entry is skipped and counted
        users = sync.parse({"users": [_user("c1").model_dump(), {"id": "c2", "name": "x"},
                                      _user("x-9").model_dump()]})
        assert [u.id for u in users] == ["c1"] and counters["staff_refused"] == 2
        with pytest.raises(ValueError):
            sync.parse({"users": "everyone"})
    finally:
        await outbox.close()
    # the cloud is unreachable (nothing listens at the configured address): the cache is all there is
    outbox = Outbox(cfg.gateway.db, counters)
    await outbox.open()
    try:
        sync = StaffSync(cfg, outbox, Sessions(cfg.terminal, counters), counters)
        assert await sync.sync_once() is False and counters["staff_sync_failures"] == 1

        def store(conn):
            conn.execute("INSERT INTO staff_users VALUES ('c1', '王师傅', 'courier', 'ZTO', ?)",
                         (_user("c1").pin_hash,))
            conn.execute("INSERT INTO staff_sync VALUES (1, 1.0)")
        await outbox.run(store)
        sessions = Sessions(cfg.terminal, counters)
        assert await StaffSync(cfg, outbox, sessions, counters).load() == 1
        _, u = await sessions.login("c1", PIN, "10.0.0.4")
        assert u.name == "王师傅" and COURIER["id"] in sessions.users
    finally:
        await outbox.close()
