"""The cloud's couriers and agents at the terminal: the cloud's list decides its own ids (c<n>, a<n>), hand-written
users stay, a retired person's sessions end, and the cached list comes back from the station database. The same
pull carries the station's retired lockers: no new deposit goes into one, its parcels are still picked up."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

import httpx
import pytest
import uvicorn
from fastapi import HTTPException
from gwkit import COURIER, COURIER_PIN, SECRET_L1, STATION, RunningGateway, courier_api, free_port, make_config, until

from gateway.config import TerminalUser
from gateway.counters import Counters
from gateway.lockerlink import LockerLink
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
        # the retired lockers beside them; an older cloud names none
        assert sync.parse_retired({"users": [], "retired_lockers": ["l2", "L 2", 7]}) == {"l2"}
        assert counters["staff_refused"] == 4 and sync.parse_retired({"users": []}) == set()
        with pytest.raises(ValueError):
            sync.parse_retired({"users": [], "retired_lockers": "l2"})
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
            conn.execute("INSERT INTO meta VALUES ('retired_lockers', '[\"l2\"]')")
        await outbox.run(store)
        sessions = Sessions(cfg.terminal, counters)
        link = LockerLink(cfg, outbox, counters)
        assert await StaffSync(cfg, outbox, sessions, counters, link=link).load() == 1
        _, u = await sessions.login("c1", PIN, "10.0.0.4")
        assert u.name == "王师傅" and COURIER["id"] in sessions.users
        # the lockers retired at the last pull stay retired after a restart offline
        assert link.retired() == ["l2"] and not link.lockers["l1"].retired
    finally:
        await outbox.close()


async def test_a_retired_persons_stored_sessions_end_and_stay_ended_after_a_restart(tmp_path):
    cfg = make_config(tmp_path)
    counters = Counters()
    outbox = Outbox(cfg.gateway.db, counters)
    await outbox.open()
    try:
        sessions = Sessions(cfg.terminal, counters, db=outbox)
        c1, c2 = _user("c1"), _user("c2")
        sessions.set_synced([c1, c2])
        tok1, _ = await sessions.login("c1", PIN, "10.0.0.2")
        tok2, _ = await sessions.login("c2", PIN, "10.0.0.2")
        assert sessions.set_synced([c2]) == {"c1"}
        with pytest.raises(HTTPException):
            sessions.user(tok1)
        await outbox.run(lambda conn: None)  # the deletion has committed
    finally:
        await outbox.close()
    outbox = Outbox(cfg.gateway.db, counters)
    await outbox.open()
    try:
        # the restart: the cached list (c2 alone, as the last pull left it) and then the stored sessions
        await outbox.run(lambda conn: conn.executemany(
            "INSERT INTO staff_users VALUES (?,?,?,?,?)", [(c2.id, c2.name, c2.role, c2.carrier, c2.pin_hash)]))
        await outbox.run(lambda conn: conn.execute("INSERT INTO staff_sync VALUES (1, 1.0)"))
        sessions = Sessions(cfg.terminal, counters, db=outbox)
        await StaffSync(cfg, outbox, sessions, counters).load()
        assert await sessions.load() == 1
        assert sessions.user(tok2).id == "c2"
        with pytest.raises(HTTPException):
            sessions.user(tok1)
        rows = await outbox.query(lambda conn: conn.execute("SELECT user_id FROM terminal_sessions").fetchall())
        assert rows == [("c2",)]
    finally:
        await outbox.close()


@contextlib.asynccontextmanager
async def _serve(app, port):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, timeout=15, what="cloud started")
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def _cloud(tmp_path):
    """The cloud app on a fresh SQLite database, with the test station's lockers l1 and l2 and its key."""
    from cloud import migrate
    from cloud.app import create_app
    from cloud.seed import seed_station
    from cloud.settings import Settings
    from cloud.storage import make_engine, make_sessionmaker
    url = f"sqlite:///{tmp_path}/cloud.db"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with make_sessionmaker(engine)() as session:
        seed_station(session, station_id=STATION, name="示例村服务站", api_key="station-key-demo-01", lockers=[
            {"id": "l1", "comps": [{"n": 1, "size": "S"}, {"n": 2, "size": "M"}, {"n": 3, "size": "L"}]},
            {"id": "l2", "comps": [{"n": 1, "size": "M"}]}])
    engine.dispose()
    return create_app(Settings(database_url=url, admin_token=ADMIN, migrate_on_start=False))


ADMIN = "retire-test-admin-7Qk2x9"
SYNC_S = 1.0  # the pull interval of this station (30 s by default)


@pytest.mark.micropython
async def test_a_locker_retired_in_the_cloud_takes_no_deposit_and_gives_up_its_parcels(station, lockers, tmp_path):
    """The county retires locker l1 (the real firmware) while a parcel waits in it: within one pull the terminal
    refuses a deposit into l1 with its reason, sends new parcels elsewhere and shows l1 as retired, while the
    villager's SMS code still opens the compartment and every event of l1 reaches the cloud once."""
    sim_mod = pytest.importorskip("simulator.locker")
    _, broker = station
    port = free_port()
    async with _serve(_cloud(tmp_path), port):
        cloud = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN}"})
        cfg = make_config(tmp_path, broker.port, f"http://127.0.0.1:{port}", cloud={"downlink_wait_s": 1},
                          top={"terminal": {"users": [COURIER], "staff_sync_s": SYNC_S}})
        rg = RunningGateway(cfg)
        gw = await rg.start()
        sim = sim_mod.SimLocker(tmp_path / "l1", sim_mod.make_locker_config(
            STATION, "l1", mqtt_host="127.0.0.1", mqtt_port=broker.port, password="l1-pass-1234", secret=SECRET_L1,
            comps=[{"n": 1, "size": "S"}, {"n": 2, "size": "M"}, {"n": 3, "size": "L"}]))
        th = asyncio.to_thread  # the firmware's control channel blocks; the gateway shares this loop
        await th(sim.start)
        l2 = lockers(broker.port, "l2").connect()
        try:
            link = gw.link
            l2.online()
            l2.birth([{"n": 1, "size": "M", "st": "empty", "door": "closed", "occ": False}])
            await until(lambda: link.lockers["l1"].birth_at and link.lockers["l2"].birth_at, timeout=15,
                        what="both lockers born")
            await until(lambda: all(c.st == "empty" for c in link.lockers["l1"].comps.values()), timeout=10)
            async with courier_api(gw) as desk:
                # a parcel goes into l1 before it is retired
                r = await desk.post("/api/v1/deposits", json={"waybill": "ZT5001", "phone": "13800000007",
                                                              "carrier": "ZTO", "size": "M", "locker": "l1",
                                                              "consent_asked": True})
                assert r.status_code == 201, r.text
                ref, c = r.json()["ref"], r.json()["c"]
                await th(sim.wait_for, lambda st: any(x["n"] == c and x["st"] == "deposit" for x in st["comps"]))
                await th(sim.open_door, c)
                await th(sim.set_occupied, c, True)
                await asyncio.sleep(0.3)
                await th(sim.close_door, c)
                sms: list[str] = []

                async def villager_sms():
                    got = (await cloud.get("/api/v1/notifications")).json()
                    sms[:] = [n["text"] for n in got if n["ref"] == ref]
                    return sms
                for _ in range(300):
                    if await villager_sms():
                        break
                    await asyncio.sleep(0.05)
                assert sms, "the villager got the pickup SMS"
                code = re.search(r"(?<!\d)\d{6}(?!\d)", sms[0]).group(0)
                await until(lambda: gw.staff.synced_at, timeout=10, what="first pull")
                assert link.lockers["l1"].retired is False

                # the county retires l1
                r = await cloud.post(f"/api/v1/admin/stations/{STATION}/lockers/l1/retire", json={"reason": "撤柜"})
                assert r.status_code == 200, r.text
                retired_at = time.monotonic()
                await until(lambda: link.lockers["l1"].retired, timeout=SYNC_S + 5, what="retirement pulled")
                assert time.monotonic() - retired_at <= SYNC_S + 2, "learnt within the pull interval"

                # a deposit into l1 is refused, and says why
                r = await desk.post("/api/v1/deposits", json={"waybill": "ZT5002", "phone": "13800000008",
                                                              "carrier": "ZTO", "size": "S", "locker": "l1",
                                                              "consent_asked": True})
                assert r.status_code == 409 and r.json()["detail"] == {"error": "locker_retired", "locker": "l1"}
                r = await desk.post("/api/v1/terminal/keypad", json={"locker": "l1", "parcels": [
                    {"waybill": "ZT5003", "phone": "13800000008", "size": "S", "consent_asked": True,
                     "carrier": "ZTO"}]})
                assert r.status_code == 409 and r.json()["detail"]["error"] == "locker_retired"
                words = (await desk.get("/terminal/words.json")).json()
                assert "停用" in words["zh"]["locker_retired"] and "retired" in words["en"]["locker_retired"]
                # l1's free compartments are offered no more: an L parcel finds none, an S one goes to l2
                r = await desk.post("/api/v1/terminal/deposit", json={"waybill": "ZT5004", "phone": "13800000008",
                                                                      "size": "L", "consent_asked": True,
                                                                      "carrier": "ZTO"})
                assert r.status_code == 409 and r.json()["detail"]["error"] == "no_compartment"
                r = await desk.post("/api/v1/terminal/deposit", json={"waybill": "ZT5005", "phone": "13800000008",
                                                                      "size": "S", "consent_asked": True,
                                                                      "carrier": "ZTO"})
                assert r.status_code == 201 and r.json()["locker"] == "l2", r.text
                # the maintenance views show it retired, and still online
                health = (await desk.get("/health")).json()
                assert health["lockers_retired"] == ["l1"]
                # and the health the station reports to the cloud counts the lockers in service only
                report = gw.tele_body(await gw.outbox.stats())
                assert (report["lockers_online"], report["lockers_total"]) == (1, 1)
                view = {lk["id"]: lk for lk in (await desk.get("/api/v1/lockers")).json()["lockers"]}
                assert view["l1"]["retired"] is True and view["l1"]["online"] is True
                assert view["l2"]["retired"] is False
                info = {lk["id"]: lk for lk in (await desk.get("/api/v1/terminal/info")).json()["lockers"]}
                assert info["l1"]["retired"] is True and info["l2"]["retired"] is False

            # the villager's code still opens the parcel in the retired locker
            await th(sim.press, code + "#")
            await th(sim.wait_for, lambda st: any(x["n"] == c and x["st"] == "pickup" for x in st["comps"]))
            await th(sim.open_door, c)
            await th(sim.set_occupied, c, False)
            await asyncio.sleep(0.3)
            await th(sim.close_door, c)
            await until(lambda: link.lockers["l1"].comps[c].st == "empty", timeout=10, what="pickup seen")

            # every event l1 made reaches the cloud, once; the parcel is picked up there
            made = sorted((e["boot"], e["seq"]) for e in await th(sim.ledger) if "seq" in e and "boot" in e)
            assert made

            async def in_cloud():
                led = (await cloud.get("/api/v1/admin/ledger", params={"station": STATION})).json()
                return sorted((b, s) for src, b, s in led["events"] if src == "l1"), led["parcel_transitions"]
            for _ in range(300):
                held, transitions = await in_cloud()
                if held == made and transitions.get("picked_up"):
                    break
                await asyncio.sleep(0.1)
            assert held == made, "each event of the retired locker reached the cloud exactly once"
            assert transitions.get("picked_up") == 1
            parcel = (await cloud.get(f"/api/v1/parcels/{ref}")).json()
            assert parcel["status"] == "picked_up"

            # the county adds l1 again: within one pull it takes deposits again
            r = await cloud.post(f"/api/v1/admin/stations/{STATION}/lockers", json={"id": "l1", "comps": [
                {"n": 1, "size": "S"}, {"n": 2, "size": "M"}, {"n": 3, "size": "L"}]})
            assert r.status_code == 201, r.text
            await until(lambda: not link.lockers["l1"].retired, timeout=SYNC_S + 5, what="return pulled")
            async with courier_api(gw) as desk:
                assert (await desk.get("/health")).json()["lockers_retired"] == []
                r = await desk.post("/api/v1/terminal/deposit", json={"waybill": "ZT5006", "phone": "13800000008",
                                                                      "size": "L", "consent_asked": True,
                                                                      "carrier": "ZTO"})
                assert r.status_code == 201 and r.json()["locker"] == "l1", r.text
        finally:
            l2.close()
            await th(sim.stop)
            await rg.close()
            await cloud.aclose()
