"""The whole station: the real firmware (MicroPython) as locker l1, the real broker, the gateway."""

import asyncio

import pytest

from gwkit import SECRET_L1, courier_api, until

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
