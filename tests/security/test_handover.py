"""Dishonest agent: the hand-over opens door-to-door parcels only, a few at a time, each one recorded."""

import httpx
import pytest

from gateway.consent import FixedConsent
from gateway.terminal import HANDOVER_LIMITS, hash_pin
from gwkit import COURIER, COURIER_PIN, RunningGateway, courier_api, free_port, make_config, until

ASSIST = "13700000007"
AGENT_PIN = "735190"


@pytest.fixture
async def station_with_parcels(station, tmp_path, lockers):
    """Locker l1 with 3 parcels: one for a villager on the door-to-door list, two for others."""
    _, broker = station
    port = free_port()
    agent = {"id": "a-li", "name": "李大姐", "role": "agent", "pin_hash": hash_pin(AGENT_PIN, iterations=1000)}
    top = {"terminal": {"users": [COURIER, agent], "assist_phones": [ASSIST]}}
    rg = RunningGateway(make_config(tmp_path, broker.port, top=top, http={"port": port}),
                        consent=FixedConsent({ASSIST: ("granted", True), "13800000001": ("granted", False)}))
    await rg.start()
    l1 = lockers(broker.port, "l1").connect()
    l1.online()
    l1.birth()
    await until(lambda: rg.gw.link.lockers["l1"].birth_at, what="birth")
    refs = {}
    async with courier_api(rg.gw) as http:
        for phone, size in ((ASSIST, "S"), ("13800000001", "M"), ("13800000001", "L")):
            r = await http.post("/api/v1/deposits", json={"waybill": f"SF{size}1", "phone": phone, "size": size,
                                                          "carrier": "SF"})
            assert r.status_code == 201, r.text
            d = r.json()
            l1.evt("deposit", c=d["c"], ref=d["ref"])
            refs.setdefault(phone, []).append(d["ref"])
    await until(lambda: all(c.st == "occupied" for c in rg.gw.link.lockers["l1"].comps.values()), what="deposits")
    rg.url, rg.l1, rg.refs = f"http://127.0.0.1:{port}/api/v1/terminal", l1, refs
    try:
        yield rg
    finally:
        await rg.close()


async def test_handover_opens_only_door_to_door_parcels(station_with_parcels):
    rg = station_with_parcels
    async with httpx.AsyncClient(base_url=rg.url) as http:
        tok = (await http.post("/login", json={"user": "a-li", "pin": AGENT_PIN})).json()["token"]
        h = {"Authorization": f"Bearer {tok}"}
        for ref in rg.refs["13800000001"]:
            r = await http.post("/handover", headers=h, json={"ref": ref})
            assert r.status_code == 403 and r.json()["detail"]["error"] == "not_door_to_door"
        assert not [c for c in rg.l1.cmds if c["op"] == "open"], "no door opened for a parcel off the list"
        r = await http.post("/handover", headers=h, json={"ref": rg.refs[ASSIST][0]})
        assert r.status_code == 200, r.text
        ctok = (await http.post("/login", json={"user": COURIER["id"], "pin": COURIER_PIN})).json()["token"]
        r = await http.post("/handover", headers={"Authorization": f"Bearer {ctok}"}, json={"ref": rg.refs[ASSIST][0]})
        assert r.status_code == 403, "couriers hand over nothing"
    opens = [c for c in rg.l1.cmds if c["op"] == "open"]
    assert len(opens) == 1 and opens[0]["by"] == "a-li" and opens[0]["why"] == "door_to_door"
    (rec,) = [r.body for r in await rg.outbox_rows("handover")]
    assert rec["ref"] == rg.refs[ASSIST][0] and rec["by"] == "a-li", "the hand-over goes to the cloud"
    assert rg.gw.counters.snapshot()["handovers_refused"] == 2


async def test_handovers_are_rate_limited_per_agent(station_with_parcels):
    from gateway.terminal import Sessions
    rg = station_with_parcels
    sessions: Sessions = rg.gw.sessions
    agent = sessions.users["a-li"]
    h = {"Authorization": f"Bearer {sessions.open(agent)}"}
    per_minute = HANDOVER_LIMITS[0][0]
    async with httpx.AsyncClient(base_url=rg.url) as http:
        codes = []
        for _ in range(per_minute + 2):
            # one parcel stands in for a round of many: back to waiting before each try
            await rg.gw.outbox.run(lambda conn: conn.execute(
                "UPDATE parcels SET state='deposited' WHERE ref=?", (rg.refs[ASSIST][0],)))
            codes.append((await http.post("/handover", headers=h, json={"ref": rg.refs[ASSIST][0]})).status_code)
    assert codes == [200] * per_minute + [429] * 2
    assert rg.gw.counters.snapshot()["handovers_rate_limited"] == 2
    assert len([c for c in rg.l1.cmds if c["op"] == "open"]) == per_minute
