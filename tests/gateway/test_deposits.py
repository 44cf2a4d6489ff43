"""Courier deposit flow through the local HTTP API, with a paho client as the locker."""

import asyncio


from gateway.protocol import code_hash
from gwkit import SECRET_L1, courier_api, until


def api(gw):
    return courier_api(gw)


async def ready_locker(gateway, lockers, comps=None):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth(comps)
    await until(lambda: gateway.gw.link.lockers["l1"].birth_at, what="birth")
    return l1


async def wait_state(http, ref, state):
    for _ in range(250):
        got = (await http.get(f"/api/v1/deposits/{ref}")).json()["state"]
        if got == state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"parcel {ref} stayed {got}, expected {state}")


def deposit_cmds(lk):
    return [c for c in lk.cmds if c["op"] == "deposit"]


async def code_records(gateway):
    return [r.body for r in await gateway.outbox_rows("code")]


async def test_deposit_issues_a_code_and_reuses_it_for_the_same_phone(gateway, lockers):
    l1 = await ready_locker(gateway, lockers)
    async with api(gateway.gw) as http:
        r = await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "SF100", "phone": "13800000001",
            "carrier": "顺丰", "size": "M"})
        assert r.status_code == 201, r.text
        d = r.json()
        assert d["locker"] == "l1" and d["c"] == 2 and d["size"] == "M" and d["ref"].startswith("p-")
        assert deposit_cmds(l1)[-1] | {"id": None} == {"v": 1, "id": None, "op": "deposit", "c": 2, "ref": d["ref"]}
        assert (await http.get(f"/api/v1/deposits/{d['ref']}")).json()["state"] == "opening"
        parcels = [r.body for r in await gateway.outbox_rows("parcel")]
        # the carrier as its code (jincun/carriers.py), whatever name the courier's app sent
        assert parcels == [{"ref": d["ref"], "waybill": "SF100", "carrier": "SF", "phone": "13800000001",
                            "locker": "l1", "c": 2, "size": "M",
                            "courier": "k-desk", "consent": "courier_asked"}]

        l1.evt("deposit", c=2, ref=d["ref"])
        await until(lambda: any(c["op"] == "code_put" for c in l1.cmds), what="code_put")
        put = [c for c in l1.cmds if c["op"] == "code_put"][-1]
        codes = await code_records(gateway)
        assert len(codes) == 1 and codes[0]["ref"] == d["ref"] and codes[0]["phone"] == "13800000001"
        code = codes[0]["code"]
        assert len(code) == 6 and code.isdigit()
        assert put["h"] == code_hash(SECRET_L1, code), "the locker gets the hash of the code sent by SMS"
        assert put["cs"] == [2] and 0 < put["exp"] <= 604800
        assert "code" not in str(put).replace("code_put", "")
        await wait_state(http, d["ref"], "deposited")
        assert (await http.get(f"/api/v1/deposits/{d['ref']}")).json() == {
            "ref": d["ref"], "state": "deposited", "locker": "l1", "c": 2}

        # a second parcel for the same villager at this locker: same code, now opening both compartments
        r2 = (await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "YT200", "phone": "13800000001",
            "carrier": "圆通", "size": "S"})).json()
        assert r2["c"] == 1
        l1.evt("deposit", c=1, ref=r2["ref"])
        await until(lambda: len([c for c in l1.cmds if c["op"] == "code_put"]) == 2, what="second code_put")
        put2 = [c for c in l1.cmds if c["op"] == "code_put"][-1]
        assert put2["h"] == put["h"] and put2["cs"] == [1, 2]
        codes = await code_records(gateway)
        assert [c["code"] for c in codes] == [code, code]

        # another villager gets another code
        r3 = (await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "ZT300", "phone": "13900000002",
            "carrier": "中通", "size": "S"})).json()
        assert r3["c"] == 3, "no S or M left: the next larger size is used"
        l1.evt("deposit", c=3, ref=r3["ref"])
        await until(lambda: len([c for c in l1.cmds if c["op"] == "code_put"]) == 3)
        codes = await code_records(gateway)
        assert codes[-1]["code"] != code and codes[-1]["phone"] == "13900000002"
        for _ in range(100):  # the locker's ack marks a code synced a moment after the locker got it
            active = await gateway.gw.codes.active("l1")
            if all(a["synced"] for a in active):
                break
            await asyncio.sleep(0.02)
        assert sorted((a["phone"], tuple(a["cs"])) for a in active) == [
            ("13800000001", (1, 2)), ("13900000002", (3,))]
        assert all(a["synced"] for a in active)

        # the locker is full now
        r4 = await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "X", "phone": "13800000003",
            "carrier": "EMS", "size": "S"})
        assert r4.status_code == 409 and r4.json()["detail"]["error"] == "no_compartment"

        # pickups take compartments off the code; the last one retires it and wipes the plain code
        l1.evt("pickup", c=1, ref=r2["ref"])
        l1.evt("pickup", c=2, ref=d["ref"])
        await until(lambda: l1.acked() == l1.seq, what="pickups acked")

        async def retired():
            return [a for a in await gateway.gw.codes.active("l1") if a["phone"] == "13800000001"] == []
        for _ in range(100):
            if await retired():
                break
            await asyncio.sleep(0.02)
        assert await retired()
        plain = await gateway.gw.outbox.query(lambda conn: conn.execute(
            "SELECT code FROM codes WHERE phone='13800000001'").fetchall())
        assert plain == [(None,)]


async def test_deposit_void_and_offline_and_refused(gateway, lockers):
    l1 = await ready_locker(gateway, lockers)
    async with api(gateway.gw) as http:
        d = (await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "SF1", "phone": "13800000001",
            "carrier": "顺丰", "size": "L"})).json()
        l1.evt("deposit_void", c=3, ref=d["ref"])
        await until(lambda: l1.acked() == 1)
        await wait_state(http, d["ref"], "void")
        assert await code_records(gateway) == [], "no code for a parcel that was never deposited"
        assert gateway.gw.link.lockers["l1"].comps[3].st == "empty"

        # the locker refuses (compartment busy): 409, the parcel is void
        l1.ack_result["deposit"] = {"ok": False, "err": "busy"}
        r = await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "SF2", "phone": "13800000001",
            "carrier": "顺丰", "size": "L"})
        assert r.status_code == 409 and r.json()["detail"] == {"error": "locker_refused", "detail": "busy"}
        assert (await http.get("/api/v1/deposits/p-000000000000")).status_code == 404

        bad = await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "SF3", "phone": "not a phone",
            "carrier": "顺丰", "size": "XL"})
        assert bad.status_code == 422

        l1.kill()
        await until(lambda: not gateway.gw.link.lockers["l1"].online, timeout=8)
        r = await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "SF4", "phone": "13800000001",
            "carrier": "顺丰", "size": "S", "locker": "l1"})
        assert r.status_code == 503 and r.json()["detail"]["error"] == "locker_offline"
        lk = (await http.get("/api/v1/lockers")).json()
        assert [x["online"] for x in lk["lockers"]] == [False, False]
        h = (await http.get("/health")).json()
        assert h["lockers_online"] == 0 and h["outbox_depth"] > 0 and h["uplink"] == "down"


async def test_missed_deposit_event_is_settled_from_the_next_birth(gateway, lockers):
    l1 = await ready_locker(gateway, lockers)
    async with api(gateway.gw) as http:
        d = (await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "SF9", "phone": "13800000009",
            "carrier": "顺丰", "size": "S"})).json()
    # the gateway lost the event (e.g. it stopped right after storing it); the birth snapshot tells
    l1.birth([{"n": 1, "size": "S", "st": "occupied", "door": "closed", "occ": True, "ref": d["ref"]},
              {"n": 2, "size": "M", "st": "empty", "door": "closed", "occ": False},
              {"n": 3, "size": "L", "st": "empty", "door": "closed", "occ": False}])
    await until(lambda: any(c["op"] == "code_put" for c in l1.cmds), what="code after birth")
    assert (await gateway.gw.deposits.get(d["ref"]))["state"] == "deposited"
    assert len(await code_records(gateway)) == 1


async def test_a_waybill_the_station_cannot_store_is_refused_and_opens_nothing(gateway, lockers):
    """A lone surrogate in a deposit request (valid JSON, no UTF-8 text) is refused with 422 before any door
    opens (the answer, which echoes the input, escapes it); the next deposit goes through."""
    l1 = await ready_locker(gateway, lockers)
    async with api(gateway.gw) as http:
        r = await http.post("/api/v1/deposits", content=b'{"waybill":"SF\\ud800","phone":"13800000001",'
                            b'"carrier":"SF","size":"S"}', headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "waybill"]
        ok = await http.post("/api/v1/deposits", json={"waybill": "SF5", "phone": "13800000001", "carrier": "SF",
                                                       "size": "S", "consent_asked": True})
        assert ok.status_code == 201, ok.text
    await until(lambda: len(deposit_cmds(l1)) == 1, what="one door asked to open")
    assert deposit_cmds(l1)[0]["ref"] == ok.json()["ref"]


async def test_a_compartment_the_sensor_reads_full_is_never_assigned(gateway, lockers):
    # 1 is empty by state but its sensor reads full; 2 holds a found parcel (mismatch); only 3 is free
    l1 = await ready_locker(gateway, lockers, [
        {"n": 1, "size": "S", "st": "empty", "door": "closed", "occ": True},
        {"n": 2, "size": "M", "st": "empty", "door": "closed", "occ": False, "mm": True},
        {"n": 3, "size": "L", "st": "empty", "door": "closed", "occ": False}])
    comps = gateway.gw.link.lockers["l1"].comps
    async with api(gateway.gw) as http:
        async def post(size):
            return await http.post("/api/v1/deposits", json={"waybill": "SF7", "phone": "13800000007",
                                                            "carrier": "顺丰", "size": size, "consent_asked": True})
        r = await post("S")
        assert r.status_code == 201 and r.json()["c"] == 3, r.text
        l1.evt("deposit", c=3, ref=r.json()["ref"])
        await until(lambda: comps[3].st == "occupied", what="deposit applied")
        r = await post("S")
        assert r.status_code == 409 and r.json()["detail"]["error"] == "no_compartment"
        assert [c["op"] for c in l1.cmds].count("deposit") == 1

        # the next snapshot clears 1 and 2; then a parcel is found in 1, reported live by the alarm
        l1.birth([{"n": 1, "size": "S", "st": "empty", "door": "closed", "occ": False},
                  {"n": 2, "size": "M", "st": "empty", "door": "closed", "occ": False},
                  {"n": 3, "size": "L", "st": "occupied", "door": "closed", "occ": True, "ref": "p-x"}])
        await until(lambda: not comps[2].mm and not comps[1].occ, what="birth applied")
        l1.evt("alarm", kind="occupancy_mismatch", c=1, occ=True)
        await until(lambda: comps[1].mm, what="mismatch applied")
        assert comps[1].view()["occ"] is True
        r = await post("S")
        assert r.status_code == 201 and r.json()["c"] == 2, r.text
        # a fake sign-off's mismatch (the sensor read empty) leaves the compartment assignable
        l1.evt("deposit_void", c=2, ref=r.json()["ref"])
        l1.evt("alarm", kind="occupancy_mismatch", c=2, occ=False)
        await until(lambda: l1.acked() == l1.seq, what="events stored")
        assert comps[2].assignable() and not comps[1].assignable()
        # the agent takes the found parcel out with a remote open: the controller reports 1 empty again
        l1.evt("state", c=1, st="empty")
        await until(lambda: comps[1].assignable(), what="found parcel cleared")
        r = await post("S")
        assert r.status_code == 201 and r.json()["c"] == 1, r.text
