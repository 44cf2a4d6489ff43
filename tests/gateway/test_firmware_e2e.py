"""The whole station: the real firmware (MicroPython) as locker l1, the real broker, the gateway."""

import asyncio

import httpx

import pytest

from gateway.consent import FixedConsent
from gateway.terminal import hash_pin
from gwkit import COURIER, SECRET_L1, RunningGateway, courier_api, make_config, until

pytestmark = pytest.mark.micropython


async def test_deposit_and_pickup_with_the_real_firmware(gateway, tmp_path):
    sim_mod = pytest.importorskip("simulator.locker")
    cfg = sim_mod.make_locker_config(
        "demo-01", "l1", mqtt_host="127.0.0.1", mqtt_port=gateway.broker.port, password="l1-pass-1234",
        secret=SECRET_L1, comps=[{"n": 1, "size": "S"}, {"n": 2, "size": "M"}, {"n": 3, "size": "L"}], tele_s=1)
    sim = sim_mod.SimLocker(tmp_path / "l1", cfg)
    th = asyncio.to_thread  # the firmware's control channel blocks; the gateway shares this loop
    await th(sim.start)
    try:
        link = gateway.gw.link
        await until(lambda: link.lockers["l1"].birth_at, timeout=15, what="firmware birth")
        await until(lambda: all(c.st == "empty" for c in link.lockers["l1"].comps.values()), timeout=10)
        async with courier_api(gateway.gw) as http:
            r = await http.post("/api/v1/deposits", json={
                "consent_asked": True, "waybill": "SF1001", "phone": "13800000001", "carrier": "顺丰", "size": "M"})
            assert r.status_code == 201, r.text
            d = r.json()
            c = d["c"]
            await th(sim.wait_for, lambda st: any(x["n"] == c and x["st"] == "deposit" for x in st["comps"]))
            # the courier opens the door, puts the parcel in and closes it
            await th(sim.open_door, c)
            await th(sim.set_occupied, c, True)
            await asyncio.sleep(0.3)
            await th(sim.close_door, c)
            codes = []

            async def code_issued():
                codes[:] = [r.body for r in await gateway.outbox_rows("code")]
                return codes
            for _ in range(300):
                if await code_issued():
                    break
                await asyncio.sleep(0.05)
            assert codes and codes[0]["ref"] == d["ref"]
            for _ in range(300):
                act = await gateway.gw.codes.active("l1")
                if act and act[0]["synced"]:
                    break
                await asyncio.sleep(0.05)
            assert act[0]["synced"], "the firmware acked the code_put"
            assert (await http.get(f"/api/v1/deposits/{d['ref']}")).json()["state"] == "deposited"

            # the villager types the SMS code on the keypad; the compartment opens and is emptied
            await th(sim.press, codes[0]["code"] + "#")
            await th(sim.wait_for, lambda st: any(x["n"] == c and x["st"] == "pickup" for x in st["comps"]))
            await th(sim.open_door, c)
            await th(sim.set_occupied, c, False)
            await asyncio.sleep(0.3)
            await th(sim.close_door, c)
            await until(lambda: link.lockers["l1"].comps[c].st == "empty", timeout=10, what="pickup seen")
            for _ in range(200):
                if not await gateway.gw.codes.active("l1"):
                    break
                await asyncio.sleep(0.05)
            assert await gateway.gw.codes.active("l1") == [], "a used code is retired"

        # every event the firmware made is held once by the gateway, and all of them are acked
        ledger = await th(sim.ledger)
        made = sorted((e["boot"], e["seq"]) for e in ledger if "seq" in e and "boot" in e)
        await until(lambda: link.lockers["l1"].acked == max(s for _, s in made), timeout=10, what="all eacked")
        held = sorted((r.boot, r.seq) for r in await gateway.outbox_rows("evt"))
        assert held == made
        types = [r.body["type"] for r in await gateway.outbox_rows("evt")]
        assert "deposit" in types and "code_ok" in types and "pickup" in types
    finally:
        await th(sim.stop)


async def test_a_found_parcel_becomes_the_agents_task_and_reaches_its_recipient(station, tmp_path):
    """A parcel left in an empty compartment (a forced open) is registered where it lies from the agent's
    terminal: the firmware confirms it with a deposit event, the code goes out, and the villager's code opens it."""
    sim_mod = pytest.importorskip("simulator.locker")
    _, broker = station
    top = {"terminal": {"users": [COURIER, {"id": "a-li", "name": "李大姐", "role": "agent",
                                            "pin_hash": hash_pin("135790")}]}}
    rg = RunningGateway(make_config(tmp_path, broker.port, top=top),
                        consent=FixedConsent({"13800000001": ("granted", False)}))
    await rg.start()
    cfg = sim_mod.make_locker_config(
        "demo-01", "l1", mqtt_host="127.0.0.1", mqtt_port=broker.port, password="l1-pass-1234",
        secret=SECRET_L1, comps=[{"n": 1, "size": "S"}, {"n": 2, "size": "M"}, {"n": 3, "size": "L"}])
    sim = sim_mod.SimLocker(tmp_path / "l1", cfg)
    th = asyncio.to_thread
    await th(sim.start)
    try:
        link = rg.gw.link
        comps = link.lockers["l1"].comps
        await until(lambda: link.lockers["l1"].birth_at, timeout=15, what="firmware birth")
        await until(lambda: all(c.st == "empty" for c in comps.values()), timeout=10)
        # compartment 2 is forced open and a parcel is left inside
        await th(sim.open_door, 2)
        await th(sim.set_occupied, 2, True)
        await asyncio.sleep(0.3)
        await th(sim.close_door, 2)
        await until(lambda: comps[2].mm and comps[2].st == "fault", timeout=10, what="found parcel reported")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rg.gw.app), base_url="http://gw") as http:
            tok = (await http.post("/api/v1/terminal/login", json={"user": "a-li", "pin": "135790"})).json()["token"]
            auth = {"Authorization": f"Bearer {tok}"}
            found = (await http.get("/api/v1/terminal/found", headers=auth)).json()["found"]
            assert found == [{"locker": "l1", "c": 2, "size": "M", "online": True}]
            # a courier is never given the compartment with the found parcel
            async with courier_api(rg.gw) as desk:
                r = await desk.post("/api/v1/deposits", json={"waybill": "SF2001", "phone": "13800000001",
                                                              "carrier": "顺丰", "size": "M", "consent_asked": True})
            assert r.status_code == 201 and r.json()["c"] == 3, r.text
            # the agent scans the waybill and types the recipient's phone
            r = await http.post("/api/v1/terminal/found", headers=auth, json={
                "locker": "l1", "c": 2, "waybill": "YT3003", "phone": "13800000001", "carrier": "圆通"})
            assert r.status_code == 201, r.text
            ref = r.json()["ref"]
            again = await http.post("/api/v1/terminal/found", headers=auth, json={
                "locker": "l1", "c": 2, "waybill": "YT3003", "phone": "13800000001", "carrier": "圆通"})
            assert again.status_code == 409 and again.json()["detail"]["error"] == "not_found_parcel"
            codes = []
            for _ in range(300):
                codes = [r.body for r in await rg.outbox_rows("code") if r.body["ref"] == ref]
                if codes:
                    break
                await asyncio.sleep(0.05)
            assert codes and codes[0]["phone"] == "13800000001", "the code goes to the recipient as for a deposit"
            assert (await rg.gw.deposits.get(ref))["state"] == "deposited"
            assert (await http.get("/api/v1/terminal/found", headers=auth)).json()["found"] == []
            parcels = [r.body for r in await rg.outbox_rows("parcel") if r.body["ref"] == ref]
            assert parcels[0]["found"] is True and parcels[0]["agent"] == "a-li"
            for _ in range(300):
                act = await rg.gw.codes.active("l1")
                if any(a["synced"] and a["cs"] == [2] for a in act):
                    break
                await asyncio.sleep(0.05)
            assert any(a["synced"] and a["cs"] == [2] for a in act), "the firmware acked the code_put"
        # the villager types the code: compartment 2 opens and is emptied
        await th(sim.press, codes[0]["code"] + "#")
        await th(sim.wait_for, lambda st: any(x["n"] == 2 and x["st"] == "pickup" for x in st["comps"]))
        await th(sim.open_door, 2)
        await th(sim.set_occupied, 2, False)
        await asyncio.sleep(0.3)
        await th(sim.close_door, 2)
        await until(lambda: comps[2].st == "empty" and comps[2].assignable(), timeout=10, what="pickup seen")
        ledger = await th(sim.ledger)
        assert [(e["c"], e["ref"]) for e in ledger if e["type"] == "pickup"] == [(2, ref)]
    finally:
        await th(sim.stop)
        await rg.close()
